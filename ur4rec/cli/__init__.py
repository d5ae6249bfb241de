"""The `ur4rec` command line (`ur4rec.cli.app`) and the error boundary it shares with the DVC stages."""
