"""`python -m fsync` runs the command line."""

from fsync.cli import main

main()
