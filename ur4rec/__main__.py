"""`python -m ur4rec ...`: the CLI without its console script (e.g. under torchrun, or another environment)."""

from ur4rec.cli.app import main

main()
