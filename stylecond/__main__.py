"""``python -m stylecond`` is the ``stylecond`` console script."""

from stylecond.cli import main

if __name__ == "__main__":
    main()
