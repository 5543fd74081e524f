"""``python -m yarnit`` runs the CLI."""

from yarnit.cli.app import main

main()
