"""Placeholder: filled in by its issue."""

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    print("not implemented yet")
    return 1
