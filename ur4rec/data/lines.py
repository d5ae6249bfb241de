"""Reading raw text files line by line, vectorised, without losing the line numbers errors must name."""

from __future__ import annotations

import codecs
import gzip
import zlib
from pathlib import Path

import polars as pl

from ur4rec.data.schema import BadLines, DataFormatError, brief
from ur4rec.data.text import parse_record

LINE = "line"
# A UTF-16/32 text has a NUL beside every ASCII byte: line by line it would be one bad line after another.
WIDE_BOMS = {codecs.BOM_UTF32_LE: "UTF-32", codecs.BOM_UTF32_BE: "UTF-32", codecs.BOM_UTF16_LE: "UTF-16",
             codecs.BOM_UTF16_BE: "UTF-16"}


def source(path: Path) -> list[pl.Expr]:
    """The `file` and `line` columns every interactions table carries."""
    return [pl.lit(str(path)).alias("file"), pl.col(LINE)]


def read_bytes(path: Path) -> bytes:
    """The file's bytes, transparently gunzipped when the name ends in `.gz`, without a UTF-8 byte-order mark.

    A gzip stream cut short or corrupt, or a UTF-16/32 text, is a defect of the whole file, whatever the
    bad-line policy: no line of it can be trusted or counted.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataFormatError(
            f"{path}: not a whole gzip stream ({brief(exc)}); the file is cut short or corrupt, fetch it again"
        ) from exc
    except OSError as exc:
        raise DataFormatError(f"{path}: cannot read ({exc.strerror or brief(exc)})") from exc
    for bom, name in WIDE_BOMS.items():
        if data.startswith(bom):
            raise DataFormatError(f"{path}: {name} text; save it as UTF-8 (or the format's own encoding) and rerun")
    return data.removeprefix(codecs.BOM_UTF8)


def read_lines(path: Path, bad: BadLines, encoding: str = "utf-8") -> pl.DataFrame:
    """Non-blank lines of a text file as a frame (`line` 1-based number, `text`).

    Undecodable lines follow the bad-line policy (`bad_encoding`) instead of failing the whole file.
    """
    raw_lines = read_bytes(path).split(b"\n")
    try:
        texts = b"\n".join(raw_lines).decode(encoding).split("\n")
        numbers = list(range(1, len(texts) + 1))
    except UnicodeDecodeError:
        texts, numbers = _decode_each(path, raw_lines, bad, encoding)
    frame = pl.DataFrame({LINE: pl.Series(numbers, dtype=pl.Int64), "text": pl.Series(texts, dtype=pl.String)})
    return frame.with_columns(pl.col("text").str.strip_suffix("\r")).filter(pl.col("text").str.strip_chars() != "")


def _decode_each(path: Path, raw_lines: list[bytes], bad: BadLines, encoding: str) -> tuple[list[str], list[int]]:
    texts, numbers = [], []
    for number, raw in enumerate(raw_lines, start=1):
        try:
            texts.append(raw.decode(encoding))
            numbers.append(number)
        except UnicodeDecodeError as exc:
            bad.report("bad_encoding", f"{path}:{number}", f"not {encoding}: {exc.reason} at byte {exc.start}")
    return texts, numbers


def split_fields(
    lines: pl.DataFrame, path: Path, sep: str, names: list[str], bad: BadLines, min_fields: int | None = None
) -> pl.DataFrame:
    """Split each line on `sep` into the named string columns, keeping `line`.

    Lines with fewer than `min_fields` (default: all of `names`) or more than `len(names)` fields are bad input
    (`wrong_field_count`); missing trailing optional fields become null.
    """
    need = len(names) if min_fields is None else min_fields
    parts = lines.select(LINE, pl.col("text").str.split(sep).alias("parts"))
    n = pl.col("parts").list.len()
    wrong = parts.filter((n < need) | (n > len(names)))
    bad.report_many(
        "wrong_field_count",
        (f"{path}:{k}" for k in wrong[LINE]),
        f"expected {need}..{len(names)} fields separated by {sep!r}" if need != len(names)
        else f"expected {len(names)} fields separated by {sep!r}",
    )
    parts = parts.filter((n >= need) & (n <= len(names)))
    return parts.select(LINE, *[pl.col("parts").list.get(i, null_on_oob=True).alias(name) for i, name in enumerate(names)])


def cast_checked(
    frame: pl.DataFrame, path: Path, casts: dict[str, pl.DataType], bad: BadLines, required: tuple[str, ...] = ()
) -> pl.DataFrame:
    """Cast string columns; a value that does not parse (or a missing required one) is a bad line."""
    out = frame.with_columns(pl.col(c).str.strip_chars().cast(t, strict=False).alias(c) for c, t in casts.items())
    failed = pl.lit(False)
    for column in casts:
        failed = failed | (out[column].is_null() & frame[column].is_not_null() & (frame[column].str.strip_chars() != ""))
    for column in required:
        failed = failed | out[column].is_null() | (out[column].cast(pl.String).str.strip_chars() == "")
    bad_rows = out.filter(failed)
    bad.report_many(
        "unparseable_value",
        (f"{path}:{k}" for k in bad_rows[LINE]),
        f"columns {sorted(set(casts) | set(required))} must be present and parse as {[str(t) for t in casts.values()]}",
    )
    return out.filter(~failed)


def iter_records(path: Path, bad: BadLines):
    """(line number, record) for every line that parses as JSON or a Python dict literal; the others are
    reported to `bad` as malformed, naming file and line."""
    for number, text in read_lines(path, bad).iter_rows():
        try:
            record = parse_record(text)
        except ValueError as exc:
            bad.report("malformed_line", f"{path}:{number}", str(exc))
            continue
        yield number, record
