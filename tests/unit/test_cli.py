"""The command line explains itself and its subcommands exist."""

import subprocess
import sys


def test_help_lists_every_subcommand() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "q_operator", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in ("run", "crds", "emulate", "apiserver", "demo"):
        assert command in out
