"""The one error boundary of the CLI and the DVC stages.

An expected failure (a `UserError`: bad input, a bad setting, a model that cannot load; a missing file; a full
disk) prints one line and exits non-zero. Anything else is a bug: its traceback is printed, followed by a line
saying where to report it.
"""

from __future__ import annotations

import contextlib
import errno
import sys
import traceback
from typing import Callable, Iterator

from ur4rec.errors import UserError

REPORT_AT = "https://github.com/ur4rec/ur4rec/issues"


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


@contextlib.contextmanager
def boundary() -> Iterator[None]:
    try:
        yield
    except SystemExit:
        raise
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume where it stopped", file=sys.stderr)
        sys.exit(130)
    except UserError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        sys.exit(1)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            print(f"error: disk full while writing ({one_line(exc)}); free space and rerun (finished work is kept)",
                  file=sys.stderr)
            sys.exit(1)
        _bug()
    except Exception as exc:  # noqa: BLE001 - the boundary: anything unexpected is a bug, reported as one
        if type(exc).__module__.startswith(("click.", "typer.")):
            raise  # the CLI's own control flow: usage errors, --help, typer.Exit
        _bug()


def _bug() -> None:
    traceback.print_exc()
    print(f"this is a bug in ur4rec, not in your input: please report it at {REPORT_AT} with the command and the "
          "traceback above", file=sys.stderr)
    sys.exit(2)


def stage_main(run: Callable[..., object], usage: str, load: Callable[[], object], argv: list[str] | None = None) -> None:
    """Entry point of a DVC stage script: `load` parses and checks the params the stage reads (its own
    settings loader, so the stage's code holds only those sections' config code), then the stage runs on its
    arguments."""
    args = sys.argv[1:] if argv is None else argv
    with boundary():
        n_args = len(usage.split())
        if len(args) != n_args:
            print(f"usage: python {sys.argv[0]} {usage}", file=sys.stderr)
            sys.exit(2)
        run(load(), *args)
