"""Reading an input file into DuckDB as the `raw` relation, with row numbers.

Parquet is read by DuckDB directly, out of core. CSV and JSON Lines go through
Python's readers, which give exact row numbers for malformed records. Those
records become quarantine entries instead of stopping the run, and so do
records whose text is not valid Unicode: bytes that are not UTF-8, or a JSON
escape of a lone surrogate such as \\ud800. A Parquet row whose text is not
UTF-8 is quarantined too (see `_register_parquet`).

Reading may write temporary files; `Source.remove_temporary_files` deletes them
once nothing reads `raw` any more.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import logging
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from greenloop.pipeline.mapping import ROW_NUMBER_COLUMN

logger = logging.getLogger(__name__)

FORMATS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}
EXPECTED_FORMS = (
    "CSV with a header row (.csv, .tsv), Parquet (.parquet) or JSON Lines "
    "with one object per line (.jsonl, .ndjson)"
)
BATCH_ROWS = 200_000
# The relation of the malformed records' cells that could be read, with the
# columns of `raw`. The ingest step reads their purchase ids from it.
MALFORMED_CELLS = "raw_malformed"
# The rows of a Parquet input that hold text which is not UTF-8, with the
# names of those columns. The `raw` view leaves these rows out.
INVALID_TEXT_ROWS = "raw_invalid_text_rows"

# Reasons of the quarantine entries that reading finds. Each kind of problem
# has one reason, so the report counts rows per kind. What differs from row to
# row (a byte, an offset, a parser message) goes in the entry's detail.
NOT_UTF8 = "not valid UTF-8; save the file as UTF-8"
NOT_UTF8_PARQUET = (
    "not valid UTF-8; write the column's text as UTF-8 when making the file"
)
LONE_SURROGATE = (
    "not valid Unicode, a JSON \\u escape gives one half of a surrogate pair; "
    "write the character itself or the escapes of both halves"
)
WRONG_FIELD_COUNT = (
    "malformed CSV record: wrong number of fields (an unquoted delimiter inside "
    "a value?)"
)
UNREADABLE_CSV = (
    "unreadable CSV from here on: no later record was read; fix this record and "
    "run again"
)
INVALID_JSON = "invalid JSON: give one JSON object per line"
NOT_AN_OBJECT = "a JSON Lines record must be an object"
REPEATED_KEY = "repeated key in a JSON object: give each key once per object"
# The detail names at most this many bad bytes or surrogates of one value.
MAX_DETAIL_ITEMS = 5


class InputError(ValueError):
    """The input file cannot be read at all."""


# The text reader decodes each byte that is not UTF-8 to a code point from
# U+DC80 to U+DCFF (Python's surrogateescape), and a JSON escape can yield any
# surrogate. Neither is a Unicode character, so Arrow cannot store them.
SURROGATE = re.compile(r"[\ud800-\udfff]")
ESCAPED_BYTES = range(0xDC80, 0xDD00)


@dataclass
class MalformedRecord:
    """A record that could not be read as columns, or one column's unusable text.

    `reason` is the same for every record with the same kind of problem, and
    `detail` names what differs, such as the bytes that are not UTF-8.
    """

    row: int
    reason: str
    text: str
    column: str = "(record)"
    detail: str | None = None


@dataclass
class Source:
    """An input registered in DuckDB as `raw`, with what reading it found.

    Registering also creates the table MALFORMED_CELLS, with one row per
    malformed record whose other cells could be read. A cell that could not be
    read is NULL there.
    """

    path: Path
    format: str
    sha256: str
    columns: list[str]
    malformed: list[MalformedRecord] = field(default_factory=list)
    column_types: dict[str, str] = field(default_factory=dict)
    # Files that `raw` reads besides the input, such as the text copy of a
    # Parquet JSON column (see `_copy_json_text`).
    temporary_files: list[Path] = field(default_factory=list)

    def remove_temporary_files(self) -> None:
        """Delete `temporary_files`, after which `raw` may no longer be read."""
        for temporary in self.temporary_files:
            temporary.unlink(missing_ok=True)
        self.temporary_files.clear()


def file_sha256(path: Path) -> str:
    """Return the SHA-256 of a file's bytes, in hex."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def detect_format(path: Path) -> str:
    """Return `parquet`, `csv` or `jsonl` from the file name, or raise InputError."""
    found = FORMATS.get(path.suffix.lower())
    if found is None:
        raise InputError(
            f"cannot read {path}: unknown file type {path.suffix!r}; expected "
            f"{EXPECTED_FORMS}"
        )
    return found


def register_source(
    connection: duckdb.DuckDBPyConnection, path: Path, temp_dir: Path | None = None
) -> Source:
    """Register `path` in `connection` as the relation `raw` with a `__row__` column.

    Temporary files go to `temp_dir`, or to Python's temporary folder when it is
    None. The caller deletes them with `Source.remove_temporary_files`.
    """
    if not path.is_file():
        raise InputError(
            f"cannot read {path}: file not found; expected {EXPECTED_FORMS}"
        )
    kind = detect_format(path)
    sha256 = file_sha256(path)
    if kind == "parquet":
        return _register_parquet(connection, path, sha256, temp_dir)
    if kind == "csv":
        return _register_batches(connection, path, sha256, kind, _csv_batches(path))
    return _register_batches(connection, path, sha256, kind, _jsonl_batches(path))


def _register_parquet(
    connection: duckdb.DuckDBPyConnection,
    path: Path,
    sha256: str,
    temp_dir: Path | None,
) -> Source:
    """Register a Parquet file as the view `raw`.

    DuckDB stops a query at the first string value that is not UTF-8, so one
    scan first reads every text value. When it fails, pyarrow, which reads the
    bytes without checking them, finds each such value, and `raw` leaves out
    their rows, which become malformed records.
    """
    scan = _parquet_scan(path, "strict")
    try:
        connection.execute(f"CREATE OR REPLACE VIEW raw AS {_numbered_rows(scan)}")
        described = connection.execute("DESCRIBE raw").fetchall()
    except duckdb.Error as error:
        raise InputError(
            f"cannot read {path} as Parquet: {error}; expected {EXPECTED_FORMS}"
        ) from error
    types = {row[0]: str(row[1]) for row in described if row[0] != ROW_NUMBER_COLUMN}
    _check_parquet_names(path, list(types))
    # A nested type such as VARCHAR[] or STRUCT(name VARCHAR) has text too.
    text_columns = [
        name for name, kind in types.items() if "VARCHAR" in kind or kind == "JSON"
    ]
    failure = _text_failure(connection, scan, text_columns)
    if failure is None:
        connection.execute(
            f"CREATE OR REPLACE TABLE {MALFORMED_CELLS} AS SELECT * FROM raw LIMIT 0"
        )
        return Source(path, "parquet", sha256, list(types), column_types=types)
    source = Source(path, "parquet", sha256, list(types), column_types=types)
    try:
        source.malformed = _leave_out_invalid_text(
            connection, source, text_columns, failure, temp_dir
        )
    except BaseException:
        source.remove_temporary_files()
        raise
    return source


def _check_parquet_names(path: Path, columns: list[str]) -> None:
    """Raise InputError when two columns of the file have the same name.

    DuckDB 2.0.1 reads the second of two such columns as `name_1`, so a mapping
    would silently read the first one. DuckDB renames a name that repeats an
    earlier one ignoring case in the same way (Title to Title_1). That rename is
    kept, because a mapping must then name Title_1, and a warning names it.
    """
    try:
        file_names = pq.ParquetFile(path).schema_arrow.names
    except (pa.ArrowException, OSError) as error:
        raise InputError(
            f"cannot read {path} as Parquet: {error}; expected {EXPECTED_FORMS}"
        ) from error
    repeated = _repeated_names(file_names)
    if repeated:
        raise InputError(
            f"cannot read {path}: {_describe_repeats(repeated)}, so no mapping can "
            "tell them apart; rename the columns in the file so that each has a "
            "name of its own"
        )
    if len(file_names) == len(columns):
        _warn_renamed(path, file_names, columns)


def _warn_renamed(path: Path, file_names: list[str], columns: list[str]) -> None:
    """Log a warning for each column that DuckDB reads under a name of its own.

    DuckDB matches column names ignoring the case of ASCII letters, so it reads
    a column whose name repeats an earlier one's that way as `name_1`.
    """
    for position, (file_name, name) in enumerate(
        zip(file_names, columns, strict=True), start=1
    ):
        if file_name != name:
            logger.warning(
                "%s: column %d, %r, is read as %r, because its name repeats an "
                "earlier column's name ignoring case; map %r to read it",
                path,
                position,
                file_name,
                name,
                name,
            )


def _repeated_names(names: list[str]) -> dict[str, list[int]]:
    """Return each name given to more than one column, with the columns' positions."""
    positions: dict[str, list[int]] = {}
    for position, name in enumerate(names, start=1):
        positions.setdefault(name, []).append(position)
    return {name: found for name, found in positions.items() if len(found) > 1}


def _describe_repeats(repeated: dict[str, list[int]]) -> str:
    """Return a phrase such as: columns 4 and 8 share the name 'title'."""
    phrases = []
    for name, positions in repeated.items():
        numbers = [str(position) for position in positions]
        listed = ", ".join(numbers[:-1]) + " and " + numbers[-1]
        phrases.append(f"columns {listed} share the name {name!r}")
    return ", and ".join(phrases)


def _parquet_scan(path: Path, utf8_validation: str) -> str:
    quoted = str(path).replace("'", "''")
    return (
        f"read_parquet('{quoted}', file_row_number = true, "
        f"utf8_validation = '{utf8_validation}')"
    )


def _numbered_rows(scan: str) -> str:
    return (
        f"SELECT file_row_number + 1 AS {ROW_NUMBER_COLUMN}, "
        f"* EXCLUDE (file_row_number) FROM {scan}"
    )


def _text_failure(
    connection: duckdb.DuckDBPyConnection, scan: str, text_columns: list[str]
) -> duckdb.InvalidInputException | UnicodeDecodeError | None:
    """Read every value of `text_columns` and return DuckDB's error, or None.

    A hash needs every byte of every value, so DuckDB decodes, and so checks,
    each one. In DuckDB 2.0.1 cheaper queries skip the check: count(column)
    reads the row group statistics, and strlen(column) is computed in the scan.
    """
    if not text_columns:
        return None
    columns = ", ".join(_quote(name) for name in text_columns)
    try:
        connection.execute(f"SELECT bit_xor(hash({columns})) FROM {scan}").fetchall()
    except duckdb.InvalidInputException as error:
        return error
    except UnicodeDecodeError as error:
        # DuckDB 2.0.1 raises an error whose message quotes the bad bytes for a
        # column of the Parquet JSON type, and the client cannot decode it.
        return error
    return None


def _leave_out_invalid_text(
    connection: duckdb.DuckDBPyConnection,
    source: Source,
    text_columns: list[str],
    failure: duckdb.InvalidInputException | UnicodeDecodeError,
    temp_dir: Path | None,
) -> list[MalformedRecord]:
    """Register `raw` without rows whose text is not UTF-8 and return their entries.

    The scans read text with utf8_validation 'ignore', which drops bytes that
    are not UTF-8 instead of stopping. That changes no row that `raw` keeps,
    because DuckDB 2.0.1 and Python reject the same byte sequences. The tests
    check stray, overlong and truncated sequences, surrogates and code points
    above U+10FFFF, and that valid text such as U+FFFE or NUL is kept whole.
    """
    path, types = source.path, source.column_types
    try:
        malformed, columns_by_row = _find_invalid_text(path, list(types), text_columns)
    except (pa.ArrowException, OSError) as error:
        raise InputError(
            f"cannot read {path} as Parquet: {failure}; pyarrow cannot read it "
            f"either ({error}); expected {EXPECTED_FORMS}"
        ) from error
    if not malformed:
        raise InputError(
            f"cannot read {path} as Parquet: {failure}; expected {EXPECTED_FORMS}"
        )
    if len(columns_by_row) == pq.ParquetFile(path).metadata.num_rows:
        first = malformed[0]
        raise InputError(
            f"cannot read {path}: no row could be read (row {first.row}, column "
            f"{first.column}: {first.reason}; {first.detail})"
        )
    rows = sorted(columns_by_row)
    invalid = pa.table(
        {
            "row": pa.array(rows, pa.int64()),
            "columns": pa.array(
                [columns_by_row[row] for row in rows], pa.list_(pa.string())
            ),
        }
    )
    connection.register("invalid_text_batch", invalid)
    connection.execute(
        f"CREATE OR REPLACE TABLE {INVALID_TEXT_ROWS} AS "
        "SELECT * FROM invalid_text_batch"
    )
    connection.unregister("invalid_text_batch")
    unreadable = {record.column for record in malformed}
    json_columns = [
        name for name in types if name in unreadable and types[name] == "JSON"
    ]
    numbered = _numbered_rows(_parquet_scan(path, "ignore"))
    if json_columns:
        copy = _copy_json_text(path, list(types), json_columns, temp_dir)
        source.temporary_files.append(copy)
        _check_json_documents(connection, path, copy, json_columns)
        numbered = _numbered_rows_with_copy(path, copy, json_columns)
    connection.execute(
        f"CREATE OR REPLACE VIEW raw AS SELECT * FROM ({numbered}) "
        f"WHERE {ROW_NUMBER_COLUMN} NOT IN (SELECT row FROM {INVALID_TEXT_ROWS})"
    )
    blanked = ", ".join(
        f"CASE WHEN list_contains(invalid.columns, {_literal(name)}) THEN NULL "
        f"ELSE file.{_quote(name)} END AS {_quote(name)}"
        for name in text_columns
        if name in unreadable
    )
    connection.execute(
        f"""
        CREATE OR REPLACE TABLE {MALFORMED_CELLS} AS
        SELECT file.* REPLACE ({blanked})
        FROM ({numbered}) AS file
        JOIN {INVALID_TEXT_ROWS} AS invalid ON invalid.row = file.{ROW_NUMBER_COLUMN}
        """
    )
    return malformed


# DuckDB 2.0.1 reads no value of a column of the Parquet JSON type once one
# value is not UTF-8, with any utf8_validation setting, but it reads the same
# bytes in a plain string column. So such columns are copied, without the JSON
# type, to a Parquet file of their own, which `raw` reads beside the input with
# a POSITIONAL JOIN (row n of one file beside row n of the other). The copy is
# written one record batch at a time, so its memory use does not grow with the
# file, and it has only the copied columns, so every other column is read from
# the input as before.
def _copy_json_text(
    path: Path, columns: list[str], json_columns: list[str], temp_dir: Path | None
) -> Path:
    """Write `json_columns` of the Parquet file as plain text to a temporary file.

    `columns` are DuckDB's names of all the file's columns, and the copy names
    its columns with DuckDB's names. The bytes of each value are kept as they
    are, including those that are not UTF-8.
    """
    parquet = pq.ParquetFile(path)
    file_name = {name: file for file, name in _duckdb_names(parquet, columns).items()}
    selected = [file_name[name] for name in json_columns]
    with tempfile.NamedTemporaryFile(
        prefix="greenloop-json-text-", suffix=".parquet", dir=temp_dir, delete=False
    ) as handle:
        copy = Path(handle.name)
    try:
        writer: pq.ParquetWriter | None = None
        for batch in parquet.iter_batches(columns=selected):
            arrays = [
                column.storage if isinstance(column, pa.ExtensionArray) else column
                for column in batch.columns
            ]
            plain = pa.RecordBatch.from_arrays(arrays, names=json_columns)
            if writer is None:
                writer = pq.ParquetWriter(copy, plain.schema)
            writer.write_batch(plain)
        if writer is not None:
            writer.close()
    except BaseException:
        copy.unlink(missing_ok=True)
        raise
    return copy


def _check_json_documents(
    connection: duckdb.DuckDBPyConnection,
    path: Path,
    copy: Path,
    json_columns: list[str],
) -> None:
    """Raise InputError at the first copied value that is not a JSON document.

    DuckDB stops at such a value of a JSON column of the input itself, and
    `raw` casts the copied text back to JSON, which would stop the run later.
    """
    scan = _parquet_scan(copy, "ignore")
    for name in json_columns:
        [(row,)] = connection.execute(
            f"SELECT min(file_row_number) + 1 FROM {scan} "
            f"WHERE NOT json_valid({_quote(name)})"
        ).fetchall()
        if row is not None:
            raise InputError(
                f"cannot read {path}: the value of the JSON column {name!r} in row "
                f"{row} is not a JSON document; write valid JSON in that column"
            )


def _numbered_rows_with_copy(path: Path, copy: Path, json_columns: list[str]) -> str:
    """Return the numbered rows of `path` with `json_columns` read from `copy`."""
    replaced = ", ".join(
        f"CAST(copy.{_quote(name)} AS JSON) AS {_quote(name)}" for name in json_columns
    )
    return (
        f"SELECT file.file_row_number + 1 AS {ROW_NUMBER_COLUMN}, "
        f"file.* EXCLUDE (file_row_number) REPLACE ({replaced}) "
        f"FROM {_parquet_scan(path, 'ignore')} AS file "
        f"POSITIONAL JOIN {_parquet_scan(copy, 'ignore')} AS copy"
    )


def _find_invalid_text(
    path: Path, columns: list[str], text_columns: list[str]
) -> tuple[list[MalformedRecord], dict[int, list[str]]]:
    """Return an entry per Parquet value that is not UTF-8, and each row's columns.

    `columns` are DuckDB's names of all the file's columns, in order. pyarrow
    reads the strings without checking them. A batch whose column passes
    Arrow's own UTF-8 check is not looked at value by value.
    """
    parquet = pq.ParquetFile(path)
    duckdb_name = _duckdb_names(parquet, columns)
    file_name = {name: file for file, name in duckdb_name.items()}
    malformed: list[MalformedRecord] = []
    columns_by_row: dict[int, list[str]] = {}
    first_row = 1
    selected = [file_name[name] for name in text_columns]
    for batch in parquet.iter_batches(columns=selected):
        for read_name, column in zip(batch.schema.names, batch.columns, strict=True):
            name = duckdb_name[read_name]
            try:
                column.validate(full=True)
                continue
            except pa.ArrowInvalid:
                pass
            if isinstance(column, pa.ExtensionArray):
                column = column.storage  # such as the text of the Arrow JSON type
            values = column.cast(_with_binary_text(column.type)).to_pylist()
            for index, value in enumerate(values):
                text = _decoded_text(value)
                if text is None or SURROGATE.search(text) is None:
                    continue
                row = first_row + index
                _, detail = _text_problem(text, lambda _: True)
                malformed.append(
                    MalformedRecord(
                        row,
                        f"invalid text: {NOT_UTF8_PARQUET}",
                        _printable(text),
                        name,
                        detail,
                    )
                )
                columns_by_row.setdefault(row, []).append(name)
        first_row += batch.num_rows
    return malformed, columns_by_row


def _duckdb_names(parquet: pq.ParquetFile, columns: list[str]) -> dict[str, str]:
    """Return DuckDB's name for each column name of the Parquet file.

    DuckDB renames a column whose name repeats an earlier one's, ignoring case
    (Title to Title_1), and pyarrow skips names it does not know, so the file's
    names are matched to DuckDB's `columns` by position.
    """
    file_names = parquet.schema_arrow.names
    if len(file_names) != len(columns):
        file_names = columns
    return dict(zip(file_names, columns, strict=True))


def _with_binary_text(kind: pa.DataType) -> pa.DataType:
    """Return `kind` with binary in place of each string type, even when nested."""
    if pa.types.is_string(kind):
        return pa.binary()
    if pa.types.is_large_string(kind):
        return pa.large_binary()
    if pa.types.is_string_view(kind):
        return pa.binary_view()
    if pa.types.is_dictionary(kind):
        # pyarrow reads a column written from a pandas categorical as one.
        return pa.dictionary(
            kind.index_type, _with_binary_text(kind.value_type), kind.ordered
        )
    if pa.types.is_list(kind):
        return pa.list_(_with_binary_text(kind.value_type))
    if pa.types.is_large_list(kind):
        return pa.large_list(_with_binary_text(kind.value_type))
    if pa.types.is_fixed_size_list(kind):
        return pa.list_(_with_binary_text(kind.value_type), kind.list_size)
    if pa.types.is_map(kind):
        return pa.map_(
            _with_binary_text(kind.key_type), _with_binary_text(kind.item_type)
        )
    if pa.types.is_struct(kind):
        return pa.struct(
            [field.with_type(_with_binary_text(field.type)) for field in kind]
        )
    return kind


def _decoded_text(value: object) -> str | None:
    """Return a Parquet value read as binary as text, with a surrogate per bad byte.

    A nested value becomes JSON text, as a JSON Lines input gives it.
    """
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="surrogateescape")
    return json.dumps(_text_tree(value), ensure_ascii=False, default=str)


def _text_tree(value: object) -> object:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="surrogateescape")
    if isinstance(value, dict):
        return {key: _text_tree(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_text_tree(item) for item in value]
    return value


@dataclass
class _Batches:
    columns: list[str]
    tables: Iterator[pa.Table]
    malformed: list[MalformedRecord]
    # The readable cells of each malformed record, by row. It is complete only
    # once `tables` is exhausted.
    readable: dict[int, dict[str, str | None]]


def _register_batches(
    connection: duckdb.DuckDBPyConnection,
    path: Path,
    sha256: str,
    kind: str,
    batches: _Batches,
) -> Source:
    schema = pa.schema(
        [(ROW_NUMBER_COLUMN, pa.int64())]
        + [(name, pa.string()) for name in batches.columns]
    )
    connection.execute("DROP TABLE IF EXISTS raw")
    connection.execute("DROP VIEW IF EXISTS raw")
    empty = schema.empty_table()
    connection.register("raw_empty", empty)
    connection.execute("CREATE TABLE raw AS SELECT * FROM raw_empty")
    connection.unregister("raw_empty")
    rows = 0
    for table in batches.tables:
        connection.register("raw_batch", table)
        connection.execute("INSERT INTO raw SELECT * FROM raw_batch")
        connection.unregister("raw_batch")
        rows += table.num_rows
    if rows == 0 and batches.malformed:
        first = batches.malformed[0]
        detail = f"; {first.detail}" if first.detail else ""
        raise InputError(
            f"cannot read {path}: no record could be read (row {first.row}, column "
            f"{first.column}: {first.reason}{detail}); expected {EXPECTED_FORMS}"
        )
    # DuckDB renames a column whose name repeats an earlier one's ignoring case
    # (Title after title becomes Title_1), so the source takes the names of `raw`.
    described = connection.execute("DESCRIBE raw").fetchall()
    columns = [row[0] for row in described if row[0] != ROW_NUMBER_COLUMN]
    _warn_renamed(path, batches.columns, columns)
    _store_readable_cells(connection, batches.columns, batches.readable)
    types = dict.fromkeys(columns, "VARCHAR")
    return Source(path, kind, sha256, columns, batches.malformed, types)


def _store_readable_cells(
    connection: duckdb.DuckDBPyConnection,
    columns: list[str],
    readable: dict[int, dict[str, str | None]],
) -> None:
    rows = sorted(readable)
    values = [[readable[row].get(name) for row in rows] for name in columns]
    connection.register("readable_batch", _to_table(columns, rows, values))
    connection.execute(
        f"CREATE OR REPLACE TABLE {MALFORMED_CELLS} AS SELECT * FROM readable_batch"
    )
    connection.unregister("readable_batch")


def _csv_batches(path: Path) -> _Batches:
    stream = _open_text(path)
    sample = stream.read(64 * 1024)
    stream.seek(0)
    delimiter = "\t" if path.suffix.lower() == ".tsv" else _sniff_delimiter(sample)
    reader = csv.reader(stream, delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise InputError(
            f"cannot read {path}: the file is empty; expected {EXPECTED_FORMS}"
        ) from None
    except csv.Error as error:
        raise InputError(f"cannot read {path} as CSV: {error}") from error
    header = [name.strip() for name in header]
    for name in header:
        if SURROGATE.search(name) is not None:
            stream.close()
            _, detail = _text_problem(name, lambda _: True)
            raise InputError(
                f"cannot read {path}: the column name '{_printable(name)}' in line 1 "
                f"(the header row) is not valid UTF-8 ({detail}); save the file as "
                "UTF-8 or give Parquet"
            )
    if not all(header):
        raise InputError(
            f"cannot read {path}: the header row must name every column, found "
            f"{header!r}; give each column a name"
        )
    repeated = _repeated_names(header)
    if repeated:
        raise InputError(
            f"cannot read {path}: in the header row, {_describe_repeats(repeated)}, "
            "so no mapping can tell them apart; rename the columns so that each has "
            "a name of its own"
        )
    malformed: list[MalformedRecord] = []
    readable: dict[int, dict[str, str | None]] = {}

    def tables() -> Iterator[pa.Table]:
        width = len(header)
        row_numbers: list[int] = []
        values: list[list[str | None]] = [[] for _ in header]
        row = 0
        try:
            for record in reader:
                row += 1
                if len(record) != width:
                    if not any(cell.strip() for cell in record):
                        continue
                    # The fields may be shifted, so no cell counts as readable.
                    malformed.append(
                        MalformedRecord(
                            row,
                            WRONG_FIELD_COUNT,
                            _printable(delimiter.join(record)[:200]),
                            detail=f"expected {width} fields, found {len(record)}",
                        )
                    )
                    continue
                invalid = _invalid_cells(row, header, record)
                if invalid:
                    malformed.extend(invalid)
                    readable[row] = _readable_cells(zip(header, record, strict=True))
                    continue
                row_numbers.append(row)
                for index, cell in enumerate(record):
                    values[index].append(cell if cell != "" else None)
                if len(row_numbers) >= BATCH_ROWS:
                    yield _to_table(header, row_numbers, values)
                    row_numbers = []
                    values = [[] for _ in header]
        except csv.Error as error:
            malformed.append(
                MalformedRecord(row + 1, UNREADABLE_CSV, "", detail=str(error))
            )
        finally:
            if row_numbers:
                yield _to_table(header, row_numbers, values)
            stream.close()

    return _Batches(header, tables(), malformed, readable)


def _jsonl_batches(path: Path) -> _Batches:
    stream = _open_text(path)
    columns: list[str] = []
    records: list[tuple[int, dict[str, object]]] = []
    malformed: list[MalformedRecord] = []
    readable: dict[int, dict[str, str | None]] = {}
    # The keys that the objects of one record give more than once.
    repeats: list[dict[str, int]] = []
    read_object = functools.partial(_json_object, repeats=repeats)
    with stream:
        for row, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            repeats.clear()
            try:
                document = json.loads(line, object_pairs_hook=read_object)
            except json.JSONDecodeError as error:
                # Bytes that are not UTF-8 in the line are the likelier cause.
                if SURROGATE.search(line) is not None:
                    problem, detail = _text_problem(line, lambda _: True)
                    reason = f"invalid text: {problem}"
                else:
                    reason = INVALID_JSON
                    detail = f"{error.msg} at column {error.colno}"
                malformed.append(
                    MalformedRecord(row, reason, _printable(line[:200]), detail=detail)
                )
                continue
            if not isinstance(document, dict):
                malformed.append(
                    MalformedRecord(row, NOT_AN_OBJECT, _printable(line[:200]))
                )
                continue
            invalid = _invalid_fields(row, line, document)
            invalid += _repeated_keys(row, line, repeats)
            if invalid:
                malformed.extend(invalid)
                readable[row] = _readable_cells(
                    (key, _json_text(value))
                    for key, value in document.items()
                    if key not in repeats[-1]
                )
                continue
            for key in document:
                if key not in columns:
                    columns.append(key)
            records.append((row, document))

    def tables() -> Iterator[pa.Table]:
        for start in range(0, len(records), BATCH_ROWS):
            chunk = records[start : start + BATCH_ROWS]
            values = [
                [_json_text(doc.get(name)) for _, doc in chunk] for name in columns
            ]
            yield _to_table(columns, [row for row, _ in chunk], values)

    return _Batches(columns, tables(), malformed, readable)


def _json_object(
    pairs: list[tuple[str, object]], repeats: list[dict[str, int]]
) -> dict[str, object]:
    """Return the pairs of a JSON object as a dict and record its repeated keys.

    Each entry of `repeats` maps each key that the object gives more than once
    to its count. json.loads builds the outer object last, so its entry is last.
    """
    counts: dict[str, int] = {}
    for key, _ in pairs:
        counts[key] = counts.get(key, 0) + 1
    repeats.append({key: count for key, count in counts.items() if count > 1})
    return dict(pairs)


def _repeated_keys(
    row: int, line: str, repeats: list[dict[str, int]]
) -> list[MalformedRecord]:
    """Return one entry per key that a JSON record gives more than once.

    json.loads keeps only the last value of such a key, so the record cannot
    be read as the file gives it. A key repeated in a nested object is an entry
    of the whole record.
    """
    text = _printable(line[:200])
    entries = [
        MalformedRecord(row, REPEATED_KEY, text, key, f"the key appears {count} times")
        for key, count in repeats[-1].items()
    ]
    nested = [
        f"{key!r} {count} times"
        for found in repeats[:-1]
        for key, count in found.items()
    ]
    if nested:
        detail = "a nested object gives the key " + ", ".join(nested)
        entries.append(MalformedRecord(row, REPEATED_KEY, text, detail=detail))
    return entries


def _json_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)


def _readable_cells(
    cells: Iterable[tuple[str, str | None]],
) -> dict[str, str | None]:
    """Return the cells whose name and text are valid, with None for an empty one."""
    return {
        name: text or None
        for name, text in cells
        if SURROGATE.search(name) is None and SURROGATE.search(text or "") is None
    }


def _invalid_cells(
    row: int, header: list[str], record: list[str]
) -> list[MalformedRecord]:
    """Return one entry per cell of a CSV record whose bytes are not UTF-8."""
    invalid = []
    for name, cell in zip(header, record, strict=True):
        if SURROGATE.search(cell) is not None:
            problem, detail = _text_problem(cell, lambda _: True)
            invalid.append(
                MalformedRecord(
                    row, f"invalid text: {problem}", _printable(cell), name, detail
                )
            )
    return invalid


def _invalid_fields(
    row: int, line: str, document: dict[str, object]
) -> list[MalformedRecord]:
    """Return one entry per field of a JSON record whose text is not valid Unicode.

    A surrogate that is in `line` itself came from bytes that are not UTF-8.
    Any other came from a JSON escape.
    """
    invalid = []

    def from_bytes(surrogate: str) -> bool:
        return surrogate in line

    for key, value in document.items():
        if SURROGATE.search(key) is not None:
            problem, detail = _text_problem(key, from_bytes)
            invalid.append(
                MalformedRecord(
                    row,
                    f"invalid column name: {problem}",
                    _printable(line[:200]),
                    detail=f"in the name '{_printable(key)}': {detail}",
                )
            )
            continue
        text = _json_text(value) or ""
        if SURROGATE.search(text) is not None:
            problem, detail = _text_problem(text, from_bytes)
            invalid.append(
                MalformedRecord(
                    row, f"invalid text: {problem}", _printable(text), key, detail
                )
            )
    return invalid


def _text_problem(text: str, from_bytes: Callable[[str], bool]) -> tuple[str, str]:
    """Return the problem of text that contains surrogates, and its detail.

    The problem is NOT_UTF8 or LONE_SURROGATE, after the first surrogate, and
    `from_bytes(surrogate)` returns whether a surrogate is a byte of the file.
    The detail names each bad byte or surrogate with its offset: the number of
    bytes before it in the text's UTF-8 form, where a bad byte counts one and a
    lone surrogate three.
    """
    problem = None
    items = []
    offset = 0
    position = 0
    for found in SURROGATE.finditer(text):
        offset += len(text[position : found.start()].encode("utf-8"))
        position = found.end()
        code = ord(found.group())
        if code in ESCAPED_BYTES and from_bytes(found.group()):
            problem = problem or NOT_UTF8
            items.append(f"byte 0x{code - 0xDC00:02X} at offset {offset}")
            offset += 1
        else:
            problem = problem or LONE_SURROGATE
            items.append(f"U+{code:04X} at offset {offset}")
            offset += 3
    if problem is None:
        raise ValueError("the text contains no surrogate")
    listed = items[:MAX_DETAIL_ITEMS]
    if len(items) > len(listed):
        listed.append(f"{len(items) - len(listed)} more")
    return problem, ", ".join(listed)


def _printable(text: str) -> str:
    """Return `text` with each surrogate written as an escape (\\xff or \\ud800)."""

    def escape(found: re.Match[str]) -> str:
        code = ord(found.group())
        if code in ESCAPED_BYTES:
            return f"\\x{code - 0xDC00:02x}"
        return f"\\u{code:04x}"

    return SURROGATE.sub(escape, text)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _to_table(
    columns: list[str], row_numbers: list[int], values: list[list[str | None]]
) -> pa.Table:
    arrays = [pa.array(row_numbers, pa.int64())]
    arrays += [pa.array(column, pa.string()) for column in values]
    return pa.Table.from_arrays(arrays, names=[ROW_NUMBER_COLUMN, *columns])


def _open_text(path: Path) -> io.TextIOWrapper:
    """Open `path` as UTF-8 text in which each invalid byte becomes a surrogate.

    The readers quarantine the records that contain such bytes, so one bad
    record does not stop the run.
    """
    return io.TextIOWrapper(
        path.open("rb"), encoding="utf-8-sig", errors="surrogateescape", newline=""
    )


def _sniff_delimiter(sample: str) -> str:
    try:
        return (
            csv.Sniffer().sniff(sample.split("\n", 1)[0], delimiters=",;\t|").delimiter
        )
    except csv.Error:
        return ","
