"""``python -m adaptergit`` runs the CLI."""

from adaptergit.cli import run

run()
