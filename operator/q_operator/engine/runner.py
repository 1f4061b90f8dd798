"""Placeholder: filled in by the engine issue."""

from collections.abc import Sequence


def run_operator(argv: Sequence[str]) -> int:
    print("not implemented yet")
    return 1
