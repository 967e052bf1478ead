"""``python -m h2learn`` (and ``torchrun ... -m h2learn train``) runs the CLI."""

from h2learn.cli import main

main()
