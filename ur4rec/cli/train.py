"""CLI commands for the train part of the pipeline."""

from __future__ import annotations

from ur4rec.cli import app  # noqa: F401
