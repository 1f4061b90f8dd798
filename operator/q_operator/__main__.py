"""`python -m q_operator` is the same as the `q-operator` console script."""

from q_operator.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
