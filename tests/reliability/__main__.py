"""`python -m tests.reliability [--quick] [--only NAME ...] [--seed N]`: run them, print the table."""

from __future__ import annotations

from tests.reliability.runner import main

raise SystemExit(main())
