"""``python -m yarnit`` runs the CLI."""

from yarnit.cli.app import main

if __name__ == "__main__":  # a process that imports this module (multiprocessing's children) runs nothing
    main()
