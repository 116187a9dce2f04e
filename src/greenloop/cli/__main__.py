"""Run the command line with `python -m greenloop.cli`."""

from greenloop.cli import main

main()
