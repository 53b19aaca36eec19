"""Reading market-data CSV files with exact error locations: the reader every CSV source uses.

Binance public data and Tardis both arrive as CSV, plain, gzipped or in a one-file zip, with or
without a header. :func:`read_csv` parses with pyarrow (fast) against a column :class:`Layout`
chosen by column count; when a value does not parse, a Python scan names the exact ``file:line``
and column. Empty fields and NaN/inf are errors too. :class:`CsvTable` carries the table and
where each row came from, so a parser's own checks (:meth:`CsvTable.require`) name the line too.
Every such error is a :class:`DataFileError`.

>>> import tempfile
>>> path = Path(tempfile.mkdtemp()) / "t.csv"
>>> _ = path.write_text("id,price\\n1,10.5\\n2,x\\n")
>>> read_csv(path, [Layout.of("id:i,price:f")])
Traceback (most recent call last):
...
training.data.csv.DataFileError: ...t.csv:3: column 'price': bad value 'x'
>>> to_ns(np.array([1723161599999, 1735689600000123])).tolist()
[1723161599999000000, 1735689600000123000]
"""

from __future__ import annotations

import contextlib
import gzip
import io
import zipfile
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from training.errors import BadInputError

__all__ = [
    "CsvTable",
    "DataFileError",
    "Layout",
    "input_files",
    "line_of_row",
    "open_source",
    "read_csv",
    "sniff",
    "to_ns",
]


class DataFileError(BadInputError):
    """A bad input file or row; the message starts with ``file:line`` and names the column
    (``field``), ``line`` is the 1-based line when known."""

    def __init__(
        self,
        message: str,
        *,
        path: Path | str | None = None,
        field: str | None = None,
        line: int | None = None,
    ) -> None:
        super().__init__(message, field=field, line=line)
        self.path = path

    def __str__(self) -> str:  # the message already names the file and line
        return self.message


def input_files(paths: Iterable[str | Path]) -> list[Path]:
    """``paths`` as Paths, each an existing file; none at all is an error too."""
    out = [Path(p) for p in paths]
    if not out:
        raise DataFileError("no input files")
    for p in out:
        if not p.is_file():
            raise DataFileError(f"{p}: no such file", path=p)
    return out


@dataclass(frozen=True)
class Layout:
    """One CSV column layout: names and Arrow types in file order."""

    names: tuple[str, ...]
    types: tuple[pa.DataType, ...]

    @classmethod
    def of(cls, spec: str) -> Layout:
        """``"id:i,price:f,side:s,maker:b"`` → Layout (i=int64, f=float64, s=string, b=bool)."""
        codes = {"i": pa.int64(), "f": pa.float64(), "s": pa.string(), "b": pa.bool_()}
        pairs = [item.split(":") for item in spec.split(",")]
        return cls(tuple(n for n, _ in pairs), tuple(codes[t] for _, t in pairs))


@contextlib.contextmanager
def open_source(path: Path) -> Iterator[IO[bytes]]:
    """Open a plain, gzip or single-member zip file as a binary stream (told by magic bytes)."""
    with open(path, "rb") as raw:
        magic = raw.read(4)
    if magic == b"PK\x03\x04":
        with zipfile.ZipFile(path) as zf:
            members = [n for n in zf.namelist() if not n.endswith("/")]
            if len(members) != 1:
                raise DataFileError(
                    f"{path}: expected one file in the zip, found {members}", path=path
                )
            with zf.open(members[0]) as f:
                yield f
    elif magic[:2] == b"\x1f\x8b":
        with gzip.open(path, "rb") as f:
            yield f
    else:
        with open(path, "rb") as f:
            yield f


def _data_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, text) of every non-empty line."""
    with open_source(path) as f:
        for lineno, raw in enumerate(io.TextIOWrapper(f, encoding="utf-8", newline=""), 1):
            text = raw.rstrip("\r\n")
            if text:
                yield lineno, text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def sniff(path: Path) -> tuple[bool, int]:
    """(has header, number of columns) from the first non-empty line."""
    for _, text in _data_lines(path):
        fields = text.split(",")
        return not _is_number(fields[0].strip().strip('"')), len(fields)
    raise DataFileError(f"{path}: empty file", path=path)


def _convert(value: str, typ: pa.DataType) -> object:
    if pa.types.is_integer(typ):
        return int(value)
    if pa.types.is_floating(typ):
        out = float(value)
        if not np.isfinite(out):
            raise ValueError("not finite")
        return out
    if pa.types.is_boolean(typ):
        low = value.strip().lower()
        if low not in ("true", "false", "1", "0"):
            raise ValueError("not a boolean")
        return low in ("true", "1")
    if value == "":
        raise ValueError("empty")
    return value


def _rows(path: Path, header: bool) -> Iterator[tuple[int, str]]:
    lines = _data_lines(path)
    if header:
        next(lines, None)
    return lines


def _locate_bad_field(path: Path, layout: Layout, header: bool) -> DataFileError | None:
    """Scan rows in Python to name the first unparsable line and column (error path only)."""
    for lineno, text in _rows(path, header):
        fields = text.split(",")
        if len(fields) != len(layout.names):
            return DataFileError(
                f"{path}:{lineno}: expected {len(layout.names)} columns, got {len(fields)}",
                path=path,
                line=lineno,
            )
        for name, typ, value in zip(layout.names, layout.types, fields, strict=True):
            try:
                _convert(value.strip('"'), typ)
            except ValueError:
                return DataFileError(
                    f"{path}:{lineno}: column {name!r}: bad value {value!r}",
                    path=path,
                    field=name,
                    line=lineno,
                )
    return None


def line_of_row(path: Path, header: bool, row: int) -> int:
    """File line number of data row ``row`` (0-based, empty lines skipped)."""
    for i, (lineno, _) in enumerate(_rows(path, header)):
        if i == row:
            return lineno
    raise IndexError(row)


@dataclass(frozen=True)
class CsvTable:
    """A parsed CSV: the Arrow table and where its rows came from (for error messages)."""

    path: Path
    header: bool
    table: pa.Table

    def column(self, name: str) -> np.ndarray:
        return self.table.column(name).to_numpy()

    def fail(self, row: int, column: str, what: str) -> DataFileError:
        """The error for data row ``row`` (0-based) of ``column``, naming its file line."""
        value = self.table.column(column)[row].as_py()
        line = line_of_row(self.path, self.header, row)
        return DataFileError(
            f"{self.path}:{line}: column {column!r}: {what} (got {value!r})",
            path=self.path,
            field=column,
            line=line,
        )

    def codes(self, column: str, allowed: Sequence[str]) -> np.ndarray:
        """Index of each value in ``allowed`` (case-insensitive); others fail with ``file:line``."""
        lowered = pc.utf8_lower(self.table.column(column))
        value_set = pa.array([a.lower() for a in allowed])
        idx = pc.index_in(lowered, value_set=value_set).fill_null(-1).to_numpy()
        self.require(idx < 0, column, f"expected one of {list(allowed)}")
        return idx

    def ns(self, column: str) -> np.ndarray:
        """A timestamp column (ms/µs/ns by magnitude) as ns; non-positive or beyond year 2200
        values fail with ``file:line``."""
        ts = self.column(column)
        self.require(ts <= 0, column, "timestamp must be > 0")
        self.require((ts >= 7_258_118_400_000) & (ts < 10**14), column, "timestamp out of range")
        return to_ns(ts)

    def require(self, bad: np.ndarray, column: str, what: str) -> None:
        """Raise naming the first row where ``bad`` is true."""
        if bad.any():
            raise self.fail(int(np.argmax(bad)), column, what)


def read_csv(path: Path, layouts: Sequence[Layout]) -> CsvTable:
    """Read ``path`` with the layout whose column count matches; every value must parse."""
    header, ncols = sniff(path)
    by_count = {len(layout.names): layout for layout in layouts}
    layout = by_count.get(ncols)
    if layout is None:
        raise DataFileError(
            f"{path}:1: {ncols} columns; this kind has {sorted(by_count)} (wrong --kind?)",
            path=path,
            line=1,
        )
    read_options = pacsv.ReadOptions(column_names=list(layout.names), skip_rows=int(header))
    convert = pacsv.ConvertOptions(
        column_types=dict(zip(layout.names, layout.types, strict=True)),
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    try:
        with open_source(path) as f:
            table = pacsv.read_csv(f, read_options=read_options, convert_options=convert)
    except pa.ArrowInvalid as exc:
        located = _locate_bad_field(path, layout, header)
        raise (located or DataFileError(f"{path}: {exc}", path=path)) from exc
    out = CsvTable(path, header, table)
    for name in layout.names:
        col = table.column(name)
        if col.null_count:
            row = int(np.argmax(col.is_null().to_numpy(zero_copy_only=False)))
            line = line_of_row(path, header, row)
            raise DataFileError(
                f"{path}:{line}: column {name!r}: empty or NaN value",
                path=path,
                field=name,
                line=line,
            )
        if pa.types.is_floating(col.type):
            out.require(~np.isfinite(col.to_numpy()), name, "not a finite number")
    return out


def to_ns(ts: np.ndarray) -> np.ndarray:
    """Epoch timestamps in ms, µs or ns (told apart by magnitude, per value) → ns int64."""
    ts = np.asarray(ts, dtype=np.int64)
    if len(ts) == 0:
        return ts.copy()
    scale_of = np.array([1_000_000, 1_000, 1], dtype=np.int64)
    lo, hi = np.searchsorted([10**14, 10**17], [ts.min(), ts.max()], side="right")
    if lo == hi:  # one unit for the whole file: the usual case
        return ts * scale_of[lo]
    return ts * scale_of[np.searchsorted([10**14, 10**17], ts, side="right")]
