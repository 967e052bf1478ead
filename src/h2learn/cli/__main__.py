"""``python -m h2learn.cli`` runs the command line."""

from h2learn.cli.app import main

main()
