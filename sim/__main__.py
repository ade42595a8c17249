"""``python -m sim``: the same command line as ``sim``."""

from sim.cli.main import main

main()
