"""Parse the MovieLens 1M ``.dat`` files into pandas frames.

Malformed rows
--------------
The loaders reject a file that contains a malformed row: they raise :class:`DataError`
and never skip a row, so no rating is dropped without notice. The message lists the
first 10 bad rows as ``line N: reason`` (1-based line numbers in the file) and the
total number of bad rows. A row is malformed when it:

- is empty or has the wrong number of fields,
- contains a non-integer in an integer column (ids, rating, timestamp, age, occupation),
- contains a value out of range: an id or age below 1, a negative timestamp or
  occupation, a rating outside 1-5, or a number too large for the column's dtype,
- or repeats the key of an earlier row: the (user_id, movie_id) pair in ratings.dat, the
  movie_id in movies.dat, the user_id in users.dat.

Blank lines at the end of a file are allowed, and so are CRLF line endings.

``load_ratings`` first parses the whole file with the pandas C parser and checks the
columns with vectorised operations. Only when that fails does it scan the file line by
line, which is slower but finds the line number of every problem.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .movielens import DATA_DIR_ENV, DATA_URL, DataError

logger = logging.getLogger(__name__)

MAX_REPORTED_ROWS = 10

_FIELD_SEPARATOR = b"::"
# The fast parser replaces "::" by this byte, which never occurs in a valid ratings file.
_FAST_SEPARATOR = b"\x1f"
_INTEGER_FILE_BYTES = b"0123456789\r\n" + _FAST_SEPARATOR
_INTEGER_PATTERN = re.compile(rb"-?[0-9]+")



# --- parsing --------------------------------------------------------------------


@dataclass(frozen=True)
class _Column:
    name: str
    # numpy integer dtype of the column, or None for text.
    dtype: str | None = None
    low: int = 0
    # Upper bound of the values. None means the maximum of ``dtype``.
    high: int | None = None

    @property
    def max_value(self) -> int:
        return self.high if self.high is not None else int(np.iinfo(self.dtype).max)

    def out_of_range_reason(self, value: int) -> str | None:
        """Return why ``value`` is out of range, or None when it is in range."""
        if self.high is not None and not self.low <= value <= self.high:
            return f"{self.name} {value} is outside {self.low}-{self.high}"
        if value < self.low:
            return f"{self.name} {value} is below {self.low}"
        if value > self.max_value:
            return f"{self.name} {value} is above {self.max_value}"
        return None


@dataclass(frozen=True)
class _FileLayout:
    kind: str
    columns: tuple[_Column, ...]
    # Columns whose combined value must be unique within the file.
    key: tuple[str, ...]

    @property
    def integer_only(self) -> bool:
        return all(column.dtype is not None for column in self.columns)


_RATINGS = _FileLayout(
    kind="ratings",
    columns=(
        _Column("user_id", "int32", low=1),
        _Column("movie_id", "int32", low=1),
        _Column("rating", "int8", low=1, high=5),
        # Unix time in seconds.
        _Column("timestamp", "int64", low=0),
    ),
    key=("user_id", "movie_id"),
)
_MOVIES = _FileLayout(
    kind="movies",
    columns=(_Column("movie_id", "int32", low=1), _Column("title"), _Column("genres")),
    key=("movie_id",),
)
_USERS = _FileLayout(
    kind="users",
    columns=(
        _Column("user_id", "int32", low=1),
        _Column("gender"),
        # Age group code (1 means under 18) and occupation code, as listed in the release's README.
        _Column("age", "int8", low=1),
        _Column("occupation", "int8", low=0),
        _Column("zip_code"),
    ),
    key=("user_id",),
)
# movies.dat is latin-1. ratings.dat and users.dat are plain ASCII, which latin-1 decodes too.
_ENCODING = "latin-1"


def load_ratings(path: str | os.PathLike) -> pd.DataFrame:
    """Parse ``ratings.dat`` into a frame of ratings.

    Returns
    -------
    pandas.DataFrame
        Columns ``user_id`` (int32), ``movie_id`` (int32), ``rating`` (int8, 1-5) and
        ``timestamp`` (int64, Unix seconds), one row per line in file order.

    Raises
    ------
    DataError
        If the file is missing, unreadable, empty or contains a malformed row (see the
        module docstring for what counts as malformed).
    """
    return _load_table(Path(path), _RATINGS)


def load_movies(path: str | os.PathLike) -> pd.DataFrame:
    """Parse ``movies.dat`` (latin-1) into a frame of movies.

    Returns
    -------
    pandas.DataFrame
        Columns ``movie_id`` (int32), ``title`` (str, with the year in brackets) and
        ``genres`` (str, genres separated by ``|``), one row per line in file order.

    Raises
    ------
    DataError
        If the file is missing, unreadable, empty or contains a malformed row.
    """
    return _load_table(Path(path), _MOVIES)


def load_users(path: str | os.PathLike) -> pd.DataFrame:
    """Parse ``users.dat`` into a frame of users.

    Returns
    -------
    pandas.DataFrame
        Columns ``user_id`` (int32), ``gender`` (str), ``age`` (int8 age-group code),
        ``occupation`` (int8 code) and ``zip_code`` (str), one row per line in file order.

    Raises
    ------
    DataError
        If the file is missing, unreadable, empty or contains a malformed row.
    """
    return _load_table(Path(path), _USERS)


def _load_table(path: Path, layout: _FileLayout) -> pd.DataFrame:
    started = time.perf_counter()
    content = _read_file(path, layout)

    frame = None
    if layout.integer_only:
        frame = _parse_integers_fast(content, layout)
        if frame is not None and _has_valid_values(frame, layout):
            frame = _cast_columns(frame, layout)
        else:
            frame = None
    if frame is None:
        frame = _parse_lines(content, layout, path)

    if frame.empty:
        raise DataError(
            f"{layout.kind} file {path} contains no rows. "
            f"Replace it with {path.name} from ml-1m.zip ({DATA_URL})."
        )
    logger.debug("parsed %d rows from %s in %.2f s", len(frame), path, time.perf_counter() - started)
    return frame


def _read_file(path: Path, layout: _FileLayout) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(
            f"{layout.kind} file not found at {path}; download ml-1m.zip from {DATA_URL} and unzip it "
            f"so that this file exists, or set {DATA_DIR_ENV} to a folder that contains "
            f"ratings.dat, movies.dat and users.dat."
        ) from None
    except OSError as error:
        raise DataError(f"cannot read {layout.kind} file {path}: {error}") from error


def _parse_integers_fast(content: bytes, layout: _FileLayout) -> pd.DataFrame | None:
    """Parse a file whose columns are all integers with the pandas C parser, as int64.

    Returns None when the file contains anything but digits, separators and line ends,
    or when pandas cannot parse it, so that the caller falls back to the line scanner.
    Rejecting every other byte keeps pandas from accepting values that the line scanner
    rejects, such as ``+5``, `` 5``, ``5.0`` or ``1e3``.
    """
    body = content.rstrip(b"\r\n")
    if not body:
        return None
    # pandas also ends a line at a lone "\r", the line scanner only at "\n".
    if b"\r" in body and body.count(b"\r") != body.count(b"\r\n"):
        return None
    body = body.replace(_FIELD_SEPARATOR, _FAST_SEPARATOR)
    if body.translate(None, _INTEGER_FILE_BYTES):
        return None

    try:
        frame = pd.read_csv(
            io.BytesIO(body),
            sep=_FAST_SEPARATOR.decode(),
            header=None,
            engine="c",
            dtype=np.int64,
            quoting=csv.QUOTE_NONE,
            na_filter=False,
            skip_blank_lines=False,
        )
    except (ValueError, OverflowError):
        # Includes pandas' ParserError (a wrong field count) and empty fields.
        return None
    if frame.shape[1] != len(layout.columns):
        return None
    frame.columns = [column.name for column in layout.columns]
    return frame


def _has_valid_values(frame: pd.DataFrame, layout: _FileLayout) -> bool:
    """Return whether every value of a fast-parsed int64 frame is in range and every key unique."""
    for column in layout.columns:
        values = frame[column.name].to_numpy()
        if values.min() < column.low or values.max() > column.max_value:
            return False
    return not frame.duplicated(subset=list(layout.key)).any()


def _cast_columns(frame: pd.DataFrame, layout: _FileLayout) -> pd.DataFrame:
    return frame.astype({column.name: column.dtype for column in layout.columns})


def _parse_lines(content: bytes, layout: _FileLayout, path: Path) -> pd.DataFrame:
    """Parse the file line by line and raise DataError listing the malformed rows, if any.

    The loop only splits and converts. Rows that fail are described afterwards by
    ``_describe_row``, and duplicate keys are found with pandas, which keeps a scan of
    ratings.dat to a few seconds.
    """
    lines = content.replace(b"\r\n", b"\n").split(b"\n")
    while lines and not lines[-1]:
        lines.pop()

    converters = [_make_converter(column) for column in layout.columns]
    values_by_column: list[list] = [[] for _ in layout.columns]
    line_numbers: list[int] = []
    problems: dict[int, list[str]] = {}

    for line_number, line in enumerate(lines, start=1):
        fields = line.split(_FIELD_SEPARATOR)
        values = _convert_fields(fields, converters)
        if values is None:
            problems[line_number] = _describe_row(fields, layout)
            continue
        for column_values, value in zip(values_by_column, values, strict=True):
            column_values.append(value)
        line_numbers.append(line_number)

    frame = pd.DataFrame({
        column.name: pd.Series(values, dtype=column.dtype)
        for column, values in zip(layout.columns, values_by_column, strict=True)
    })
    _add_duplicate_key_problems(frame, np.asarray(line_numbers), layout, problems)
    if problems:
        raise DataError(_malformed_file_message(path, layout, problems))
    return frame


def _make_converter(column: _Column):
    """Return a function that converts a field of ``column`` and raises ValueError if it is invalid."""
    if column.dtype is None:
        return lambda field: field.decode(_ENCODING)

    low, high = column.low, column.max_value

    def convert_integer(field: bytes) -> int:
        # Unlike int(), bytes.isdigit() rejects " 5", "+5" and "5_0". The pattern also accepts a minus sign.
        if not (field.isdigit() or _INTEGER_PATTERN.fullmatch(field)):
            raise ValueError(field)
        value = int(field)
        if not low <= value <= high:
            raise ValueError(field)
        return value

    return convert_integer


def _convert_fields(fields: list[bytes], converters: list) -> list | None:
    if len(fields) != len(converters):
        return None
    try:
        return [convert(field) for convert, field in zip(converters, fields, strict=True)]
    except ValueError:
        return None


def _describe_row(fields: list[bytes], layout: _FileLayout) -> list[str]:
    """Return the reasons why a row that failed conversion is malformed."""
    if fields == [b""]:
        return ["empty line"]
    if len(fields) != len(layout.columns):
        return [f"expected {len(layout.columns)} fields separated by '::', found {len(fields)}"]

    reasons = []
    for column, field in zip(layout.columns, fields, strict=True):
        if column.dtype is None:
            continue
        if not _INTEGER_PATTERN.fullmatch(field):
            reasons.append(f"{column.name} {_quote(field)} is not an integer")
            continue
        reason = column.out_of_range_reason(int(field))
        if reason is not None:
            reasons.append(reason)
    return reasons


def _add_duplicate_key_problems(
    frame: pd.DataFrame, line_numbers: np.ndarray, layout: _FileLayout, problems: dict[int, list[str]]
) -> None:
    """Add a problem for every row whose key already appeared on an earlier line.

    ``line_numbers[i]`` is the line of row ``i`` of ``frame``.
    """
    key_columns = list(layout.key)
    is_duplicate = frame.duplicated(subset=key_columns).to_numpy()
    if not is_duplicate.any():
        return

    first_lines = (
        pd.Series(line_numbers).groupby([frame[name] for name in key_columns]).transform("min").to_numpy()
    )
    keys = frame[key_columns].to_numpy()
    for row in np.flatnonzero(is_duplicate):
        reason = f"duplicate {_describe_key(layout, keys[row])}, first seen on line {first_lines[row]}"
        problems.setdefault(int(line_numbers[row]), []).append(reason)


def _quote(field: bytes, max_chars: int = 40) -> str:
    text = field.decode(_ENCODING)
    if len(text) > max_chars:
        text = text[:max_chars] + "..."
    return repr(text)


def _describe_key(layout: _FileLayout, key: np.ndarray) -> str:
    if len(key) == 1:
        return f"{layout.key[0]} {key[0]}"
    return f"({', '.join(layout.key)}) pair ({', '.join(str(value) for value in key)})"


def _malformed_file_message(path: Path, layout: _FileLayout, problems: dict[int, list[str]]) -> str:
    n_bad_rows = len(problems)
    shown_lines = sorted(problems)[:MAX_REPORTED_ROWS]
    listing = "; ".join(f"line {number}: {' and '.join(problems[number])}" for number in shown_lines)
    if n_bad_rows > len(shown_lines):
        heading = f"First {len(shown_lines)} malformed rows"
    else:
        heading = "Malformed rows" if n_bad_rows > 1 else "Malformed row"
    row_word = "row" if n_bad_rows == 1 else "rows"
    return (
        f"{layout.kind} file {path} contains {n_bad_rows:,} malformed {row_word}, so it was rejected "
        f"(rows are never skipped). {heading}: {listing}. "
        f"Fix these rows or replace the file with {path.name} from ml-1m.zip ({DATA_URL})."
    )
