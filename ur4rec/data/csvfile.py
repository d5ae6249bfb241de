"""Reading a CSV table with a header line, keeping the line each record starts on.

Python's csv module rather than polars: polars fills a short row with nulls without a word, rejects a long
one for the whole file with a hint about an option that is not ours, and numbers neither. Here a record with
the wrong number of fields, undecodable bytes or a field past the size limit is a bad record (named by file
and line, or skipped and counted per line it spans); a file without a readable header is an error of the file.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import polars as pl

from ur4rec.data.lines import LINE, read_bytes
from ur4rec.data.schema import BadLines, DataFormatError, brief

# Bytes that are not UTF-8, kept through decoding as lone surrogates so the record holding them can be named.
UNDECODED = re.compile("[\udc80-\udcff]")


def read_csv(path: Path, bad: BadLines, required: tuple[str, ...] = ()) -> pl.DataFrame:
    """Every well-formed record as string columns (empty fields null) plus `line`; `required` columns must be
    in the header."""
    text, undecoded = _decode(read_bytes(path))
    records = csv.reader(io.StringIO(text, newline=""))
    header = _header(path, records, undecoded)
    missing = [c for c in required if c not in header]
    if missing:
        raise DataFormatError(f"{path}: missing column(s) {missing}; the header has {header}")
    columns: list[list[str | None]] = [[] for _ in header]
    lines: list[int] = []
    for line, record in _records(path, records, len(header), undecoded, bad):
        lines.append(line)
        for column, value in zip(columns, record):
            column.append(value or None)
    data = {name: pl.Series(name, values, dtype=pl.String) for name, values in zip(header, columns)}
    return pl.DataFrame({LINE: pl.Series(LINE, lines, dtype=pl.Int64), **data})


def _decode(data: bytes) -> tuple[str, bool]:
    """The text, and whether some bytes were not UTF-8 (then present as lone surrogates)."""
    try:
        return data.decode("utf-8"), False
    except UnicodeDecodeError:
        return data.decode("utf-8", errors="surrogateescape"), True


def _header(path: Path, records, undecoded: bool) -> list[str]:
    try:
        header = next(records, None)
    except csv.Error as exc:
        raise DataFormatError(f"{path}:1: unreadable header line ({brief(exc)})") from exc
    if not header or not any(name.strip() for name in header):
        raise DataFormatError(f"{path}: empty file or blank first line; the first line must name the columns")
    header = [name.strip() for name in header]
    if undecoded and any(UNDECODED.search(name) for name in header):
        raise DataFormatError(f"{path}:1: the header line is not UTF-8; save the file as UTF-8")
    if LINE in header:
        raise DataFormatError(f"{path}:1: column {LINE!r} is reserved for the line number; rename it")
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise DataFormatError(f"{path}:1: column(s) {repeated} named more than once in the header")
    return header


def _records(path: Path, records, width: int, undecoded: bool, bad: BadLines):
    """(first line, fields) of every well-formed, non-blank record after the header."""
    end = records.line_num
    while True:
        start = end + 1
        try:
            record = next(records)
        except StopIteration:
            return
        except csv.Error as exc:
            end = records.line_num
            bad.report("malformed_line", f"{path}:{start}", brief(exc), count=end - start + 1)
            continue
        end = records.line_num
        if not record or (len(record) == 1 and not record[0].strip()):
            continue  # a blank line
        if len(record) != width:
            bad.report("wrong_field_count", f"{path}:{start}", f"expected {width} fields, found {len(record)}",
                       count=end - start + 1)
        elif undecoded and any(UNDECODED.search(value) for value in record):
            bad.report("bad_encoding", f"{path}:{start}", "not UTF-8", count=end - start + 1)
        else:
            yield start, record
