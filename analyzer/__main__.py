"""`python -m analyzer` runs the `callflow` command."""

from .cli import main

main()
