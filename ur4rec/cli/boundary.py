"""The one error boundary of the CLI and the DVC stages.

An expected failure (a `UserError`: bad input, a bad setting, a model that cannot load; a missing file; a full
disk; an artifact damaged on disk: a Parquet or safetensors file cut short or changed) prints one line and
exits non-zero. Anything else is a bug: its traceback is printed, followed by a line saying where to report
it (the `Issues` address that pyproject.toml's [project.urls] declares, read from the package metadata).
"""

from __future__ import annotations

import contextlib
import errno
import importlib.metadata
import os
import re
import sys
import traceback
from pathlib import Path
from typing import Callable, Iterator

from ur4rec.errors import UserError

ARTIFACT_SUFFIXES = (".parquet", ".safetensors")
# What the readers say about a file that is cut short or changed (pyarrow, polars, safetensors); anything else
# they raise (a missing column, a wrong type asked for) stays a bug.
_DAMAGE = re.compile(
    r"magic bytes|file size is 0|out of specification|deserializ|unexpected end|end of stream|checksum|"
    r"corrupt|truncated|incomplete metadata|header too small|invalid header|not fully covered|Invalid data",
    re.IGNORECASE)
_QUOTED_PATH = re.compile(r"""['"]([^'"]+\.(?:parquet|safetensors))['"]""")


def report_address() -> str:
    """Where bugs are reported: [project.urls] Issues of the installed package, else where it is declared."""
    try:
        for entry in importlib.metadata.metadata("ur4rec").get_all("Project-URL") or []:
            label, _, url = entry.partition(",")
            if label.strip().lower() == "issues" and url.strip():
                return url.strip()
    except importlib.metadata.PackageNotFoundError:
        pass
    return "the issue tracker that pyproject.toml's [project.urls] Issues names"


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
    except Exception as exc:  # noqa: BLE001 - a damaged artifact is the reader's complaint about a file
        damaged = damaged_artifact(exc)
        if damaged is None:
            _other(exc)
        else:
            print(f"error: {damaged}", file=sys.stderr)
            sys.exit(1)


def _other(exc: Exception) -> None:
    """Everything that is not a damaged artifact: a missing file or a full disk is one line, the rest a bug."""
    try:
        raise exc
    except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        sys.exit(1)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            print(f"error: disk full while writing ({one_line(exc)}); free space and rerun (finished work is kept)",
                  file=sys.stderr)
            sys.exit(1)
        if exc.errno == errno.EROFS:
            print(f"error: {one_line(exc)}: the file system is read-only; write the outputs elsewhere or remount it",
                  file=sys.stderr)
            sys.exit(1)
        _bug()
    except Exception:  # noqa: BLE001 - the boundary: anything unexpected is a bug, reported as one
        if type(exc).__module__.startswith(("click.", "typer.")):
            raise  # the CLI's own control flow: usage errors, --help, typer.Exit
        _bug()


def damaged_artifact(exc: BaseException) -> str | None:
    """The one-line message for a reader's complaint about a damaged Parquet / safetensors file, else None.

    The file is the one the complaint quotes, else the innermost reader's argument naming an existing artifact
    (the frames' locals: `pq.read_table(path)`, `load_file(filename)`); the fix names the stage that writes it.
    """
    module = type(exc).__module__
    from_reader = module.startswith(("pyarrow", "polars", "safetensors")) or (
        type(exc) is OSError and "page integrity" in str(exc))  # pyarrow's page checksum: a plain OSError
    if not from_reader or not _DAMAGE.search(str(exc)):
        return None
    path = _artifact_path(exc)
    if path is None:
        return None
    from ur4rec.cli.producers import producing_stage

    stage = producing_stage(path)
    fix = (f"rerun the stage that writes it (`dvc repro {stage}`; `dvc checkout` restores DVC's cached copy if "
           "it has one) or delete it and rerun" if stage else "delete it and rerun the command that wrote it")
    return f"{path} is damaged or cut short ({_first_line(exc)}): {fix}"


def _artifact_path(exc: BaseException) -> str | None:
    quoted = _QUOTED_PATH.search(str(exc))
    if quoted and _is_file(quoted.group(1)):
        return quoted.group(1)
    frames = [frame for frame, _ in traceback.walk_tb(exc.__traceback__)]
    for frame in reversed(frames):  # innermost first: the reader's own argument
        for value in frame.f_locals.values():
            if isinstance(value, (str, os.PathLike)):
                text = os.fspath(value)
                if isinstance(text, str) and text.endswith(ARTIFACT_SUFFIXES) and _is_file(text):
                    return text
    return None


def _is_file(text: str) -> bool:
    try:
        return Path(text).is_file()
    except (OSError, ValueError):  # a name no file system accepts
        return False


_OPENING = re.compile(r"^Could not open Parquet input source '[^']*':\s*")


def _first_line(exc: BaseException) -> str:
    """The reader's complaint in brief: its first line, without the path the message names anyway."""
    text = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
    text = _OPENING.sub("", text)
    return text if len(text) <= 100 else text[:100].rsplit(" ", 1)[0] + " ..."


def _bug() -> None:
    traceback.print_exc()
    print(f"this is a bug in ur4rec, not in your input: please report it at {report_address()} with the command "
          "and the traceback above", file=sys.stderr)
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
