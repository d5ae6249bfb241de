"""The `ur4rec` command line: one command per pipeline stage, plus tools (doctor, cache, compare, dag).

Heavy libraries (torch, vllm, transformers) are imported inside the commands so `ur4rec --help` is instant.
Every command runs inside the error boundary: a bad input or setting is one `error: ...` line, a bug a
traceback and where to report it. `python -m ur4rec.cli.app` and `python -m ur4rec` run it too.
"""

from __future__ import annotations

# Each module adds its commands to `app`; the order here is the order in --help.
from ur4rec.cli import doctor, data, llm, encode, runs, report, share, exp, dag_cmd  # noqa: F401
from ur4rec.cli.boundary import boundary
from ur4rec.cli.command import app


def main() -> None:
    with boundary():
        app()


if __name__ == "__main__":
    main()
