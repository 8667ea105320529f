"""`python -m transferkit …`: the same command line as `transferkit …`."""

from transferkit.commands import main

main()
