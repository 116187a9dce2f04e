"""Input text that is not valid Unicode: the record is quarantined, the run goes on."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from greenloop.pipeline.ingest import ingest
from greenloop.pipeline.mapping import (
    ColumnMapping,
    ColumnSpec,
    MappingError,
    identity_mapping,
    load_mapping,
)
from greenloop.pipeline.sources import (
    NOT_UTF8_PARQUET,
    REPEATED_KEY,
    InputError,
    register_source,
)

RUN_STARTED = datetime(2026, 12, 1, tzinfo=UTC)
HEADER = b"purchase_id,occurred_at,user_id,title,quantity,amount,currency\n"


def _ingest(path: Path, mapping: str | None = None):
    connection = duckdb.connect()
    source = register_source(connection, path)
    chosen = load_mapping(mapping) if mapping else identity_mapping(source.columns)
    counts = ingest(connection, source, chosen, RUN_STARTED)
    return connection, counts


def _quarantine(connection: duckdb.DuckDBPyConnection) -> list[tuple]:
    return connection.execute(
        'SELECT row, "column", value, reason FROM quarantine ORDER BY row, "column"'
    ).fetchall()


def _purchase_ids(connection: duckdb.DuckDBPyConnection) -> dict[int, str | None]:
    return dict(
        connection.execute("SELECT row, purchase_id FROM quarantine").fetchall()
    )


def _details(connection: duckdb.DuckDBPyConnection) -> list[str]:
    return [
        detail
        for (detail,) in connection.execute(
            'SELECT detail FROM quarantine ORDER BY row, "column"'
        ).fetchall()
    ]


def _jsonl_line(purchase_id: str, title: str) -> str:
    record = {
        "purchase_id": purchase_id,
        "occurred_at": "2026-05-01 10:00:00",
        "user_id": "u1",
        "title": title,
        "quantity": 1,
        "amount": 12.5,
        "currency": "CNY",
    }
    return json.dumps(record)


def _csv_line(purchase_id: str, title: bytes) -> bytes:
    return purchase_id.encode() + b",2026-05-01 10:00:00,u1," + title + b",1,4,CNY\n"


def test_jsonl_lone_surrogate_quarantined(tmp_path):
    # json.dumps writes the lone surrogate as the six characters \ud800.
    lines = [
        _jsonl_line("j1", "有机大米"),
        _jsonl_line("j2", "Metro ride"),
        _jsonl_line("j3", "bad \ud800 title"),
        _jsonl_line("j4", "Kettle"),
    ]
    assert "\\ud800" in lines[2]
    path = tmp_path / "purchases.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    connection, counts = _ingest(path)
    assert counts.rows_read == 4
    assert counts.purchases == 3
    assert counts.quarantined_rows == 1
    [(row, column, value, reason)] = _quarantine(connection)
    assert (row, column) == (3, "title")
    assert value == "bad \\ud800 title"
    assert reason.startswith("invalid text: not valid Unicode")
    assert _details(connection) == ["U+D800 at offset 4"]


def test_jsonl_surrogate_pair_accepted(tmp_path):
    path = tmp_path / "purchases.jsonl"
    path.write_text(_jsonl_line("j1", "grin \U0001f600") + "\n", encoding="utf-8")
    connection, counts = _ingest(path)
    assert counts.purchases == 1
    title = connection.execute("SELECT title FROM purchases").fetchall()[0][0]
    assert title == "grin \U0001f600"


def test_jsonl_invalid_bytes_quarantined(tmp_path):
    good = _jsonl_line("j1", "Kettle").encode("utf-8")
    bad = _jsonl_line("j2", "bad @ title").encode("utf-8").replace(b"@", b"\xff")
    path = tmp_path / "purchases.jsonl"
    path.write_bytes(good + b"\n" + bad + b"\n")
    connection, counts = _ingest(path)
    assert counts.purchases == 1
    assert counts.quarantined_rows == 1
    [(row, column, value, reason)] = _quarantine(connection)
    assert (row, column) == (2, "title")
    assert value == "bad \\xff title"
    assert reason.startswith("invalid text: not valid UTF-8")
    assert _details(connection) == ["byte 0xFF at offset 4"]


def test_jsonl_surrogate_in_nested_value(tmp_path):
    record = json.loads(_jsonl_line("j2", "ok"))
    record["label_codes"] = ["eco", "\udc00"]
    path = tmp_path / "purchases.jsonl"
    lines = [_jsonl_line("j1", "Kettle"), json.dumps(record)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    connection, counts = _ingest(path)
    assert counts.purchases == 1
    [(row, column, _, reason)] = _quarantine(connection)
    assert (row, column) == (2, "label_codes")
    assert reason.startswith("invalid text: not valid Unicode")
    # The offset counts the bytes of the list's JSON text before it, ["eco", ".
    assert _details(connection) == ["U+DC00 at offset 9"]


def test_jsonl_surrogate_in_key(tmp_path):
    path = tmp_path / "purchases.jsonl"
    lines = [_jsonl_line("j1", "Kettle"), '{"purchase_id": "j2", "t\\udfffx": 1}']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    connection, counts = _ingest(path)
    assert counts.purchases == 1
    assert counts.quarantined_rows == 1
    [(row, column, _, reason)] = _quarantine(connection)
    assert (row, column) == (2, "(record)")
    assert reason.startswith("invalid column name: not valid Unicode")


def test_one_problem_per_bad_field(tmp_path):
    record = json.loads(_jsonl_line("j2", "\ud800"))
    record["user_id"] = "\udbff"
    path = tmp_path / "purchases.jsonl"
    lines = [_jsonl_line("j1", "Kettle"), json.dumps(record)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    connection, counts = _ingest(path)
    assert counts.rows_read == 2
    assert counts.quarantined_rows == 1
    assert counts.quarantine_problems == 2
    columns = [column for _, column, _, _ in _quarantine(connection)]
    assert columns == ["title", "user_id"]


@pytest.mark.parametrize("rows_before", [1, 2_000], ids=["first-block", "later"])
def test_csv_invalid_bytes_quarantined(tmp_path, rows_before):
    # 2,000 rows put the bad one beyond the first 64 KiB of the file.
    lines = [_csv_line(f"c{i}", b"Metro ride") for i in range(rows_before)]
    lines.append(_csv_line("bad", b"caf\xe9 \xff"))
    lines.append(_csv_line("last", b"Kettle"))
    path = tmp_path / "purchases.csv"
    path.write_bytes(HEADER + b"".join(lines))
    connection, counts = _ingest(path)
    assert counts.rows_read == rows_before + 2
    assert counts.purchases == rows_before + 1
    assert counts.quarantined_rows == 1
    [(row, column, value, reason)] = _quarantine(connection)
    assert (row, column) == (rows_before + 1, "title")
    assert value == "caf\\xe9 \\xff"
    assert reason.startswith("invalid text: not valid UTF-8")
    assert _details(connection) == ["byte 0xE9 at offset 3, byte 0xFF at offset 5"]
    titles = connection.execute("SELECT DISTINCT title FROM purchases").fetchall()
    assert not any("\ufffd" in title for (title,) in titles)


def test_csv_invalid_header_rejected(tmp_path):
    path = tmp_path / "purchases.csv"
    path.write_bytes(HEADER.replace(b"title", b"t\xfftle") + _csv_line("c1", b"x"))
    with pytest.raises(InputError, match=r"column name 't\\xfftle' in line 1 .*0xFF"):
        register_source(duckdb.connect(), path)


def test_csv_in_other_encoding_rejected(tmp_path):
    path = tmp_path / "purchases.csv"
    path.write_bytes(HEADER + _csv_line("c1", "有机大米".encode("gb18030")))
    with pytest.raises(InputError, match="not valid UTF-8"):
        register_source(duckdb.connect(), path)


def test_csv_invalid_cell_keeps_purchase_id(tmp_path):
    path = tmp_path / "purchases.csv"
    lines = [_csv_line("c1", b"Kettle"), _csv_line("bad", b"caf\xe9"), b"c\xff3"]
    lines[2] += b",2026-05-01 10:00:00,u1,Kettle,1,4,CNY\n"
    path.write_bytes(HEADER + b"".join(lines))
    connection, counts = _ingest(path)
    assert counts.quarantined_rows == 2
    # A purchase id that is itself not UTF-8 cannot be read, so it stays empty.
    assert _purchase_ids(connection) == {2: "bad", 3: None}


def test_jsonl_invalid_field_keeps_purchase_id(tmp_path):
    path = tmp_path / "purchases.jsonl"
    lines = [_jsonl_line("j1", "Kettle"), _jsonl_line("j2", "bad \ud800")]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    connection, _ = _ingest(path)
    assert _purchase_ids(connection) == {2: "j2"}


def test_mapped_purchase_id_of_malformed_record(tmp_path):
    # The online-retail mapping makes the id from two columns, as InvoiceNo:StockCode.
    path = tmp_path / "invoices.csv"
    header = b"InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,"
    header += b"CustomerID,Country\n"
    good = b"536365,85123A,LANTERN,6,2010-12-01 08:26:00,2.55,17850,United Kingdom\n"
    bad = good.replace(b"LANTERN", b"CAF\xc9 LANTERN")
    path.write_bytes(header + good + bad)
    connection, counts = _ingest(path, "online-retail")
    assert counts.purchases == 1
    # The id is the file's own, without the :2 that marks a repeated id.
    assert _purchase_ids(connection) == {2: "536365:85123A"}


def test_reader_reasons_grouped_by_kind(tmp_path):
    lines = [_csv_line("ok", b"Kettle")]
    lines += [
        _csv_line(f"b{i}", b"caf" + bytes([byte]))
        for i, byte in enumerate(b"\xe9\xff\x80")
    ]
    lines += [b"w1,2026-05-01 10:00:00,u1,a,b,1,4,CNY\n"]
    lines += [b"w2,2026-05-01 10:00:00,u1,a,b,c,1,4,CNY\n"]
    path = tmp_path / "purchases.csv"
    path.write_bytes(HEADER + b"".join(lines))
    connection, counts = _ingest(path)
    assert counts.quarantined_rows == 5
    groups = connection.execute(
        "SELECT reason, count(*) FROM quarantine GROUP BY 1 ORDER BY 2 DESC"
    ).fetchall()
    assert [n for _, n in groups] == [3, 2]
    assert groups[0][0].startswith("invalid text: not valid UTF-8")
    assert groups[1][0].startswith("malformed CSV record: wrong number of fields")
    assert sorted(_details(connection)) == [
        "byte 0x80 at offset 3",
        "byte 0xE9 at offset 3",
        "byte 0xFF at offset 3",
        "expected 7 fields, found 8",
        "expected 7 fields, found 9",
    ]


def test_long_detail_is_shortened(tmp_path):
    path = tmp_path / "purchases.csv"
    path.write_bytes(HEADER + _csv_line("bad", b"\xff" * 8))
    path.write_bytes(path.read_bytes() + _csv_line("ok", b"Kettle"))
    connection, _ = _ingest(path)
    [detail] = _details(connection)
    assert detail.startswith("byte 0xFF at offset 0, byte 0xFF at offset 1,")
    assert detail.endswith("byte 0xFF at offset 4, 3 more")


def _as_text(values: list[bytes | None]) -> pa.Array:
    """Return a string array of `values` with no UTF-8 check, as a bad writer makes."""
    return pa.array(values, pa.binary()).view(pa.string())


def _write_parquet(
    path: Path,
    purchase_ids: list[bytes],
    titles: list[bytes | None],
    row_group_size: int | None = None,
) -> Path:
    rows = len(purchase_ids)
    table = pa.table(
        {
            "purchase_id": _as_text(purchase_ids),
            "occurred_at": pa.array(["2026-05-01 10:00:00"] * rows),
            "user_id": pa.array(["u1"] * rows),
            "title": _as_text(titles),
            "quantity": pa.array([1] * rows),
            "amount": pa.array([12.5] * rows),
            "currency": pa.array(["CNY"] * rows),
        }
    )
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def _bad_parquet(tmp_path: Path) -> Path:
    purchase_ids = [b"p1", b"p2", b"p3", b"p4", b"p\xff5", b"p6"]
    titles = [b"Kettle", "有机大米".encode(), b"caf\xe9 x", b"Fan", b"Mug", b"Lamp"]
    return _write_parquet(tmp_path / "purchases.parquet", purchase_ids, titles)


def test_duckdb_rejects_bad_parquet_itself(tmp_path):
    path = _bad_parquet(tmp_path)
    with pytest.raises(duckdb.InvalidInputException, match="not valid UTF8"):
        duckdb.connect().execute(f"SELECT * FROM read_parquet('{path}')").fetchall()


def test_parquet_invalid_bytes_quarantined(tmp_path):
    connection, counts = _ingest(_bad_parquet(tmp_path))
    assert counts.rows_read == 6
    assert counts.purchases == 4
    assert counts.quarantined_rows == 2
    [title, purchase_id] = _quarantine(connection)
    assert title[:3] == (3, "title", "caf\\xe9 x")
    assert purchase_id[:3] == (5, "purchase_id", "p\\xff5")
    # One reason for both, so the report counts them together.
    assert title[3] == purchase_id[3]
    assert title[3].startswith("invalid text: not valid UTF-8")
    assert _details(connection) == ["byte 0xE9 at offset 3", "byte 0xFF at offset 1"]
    assert _purchase_ids(connection) == {3: "p3", 5: None}
    titles = connection.execute("SELECT title FROM purchases ORDER BY row").fetchall()
    assert titles == [("Kettle",), ("有机大米",), ("Fan",), ("Lamp",)]


@pytest.mark.parametrize(
    "invalid",
    [
        b"\x80",  # a continuation byte with no lead byte
        b"\xe6\x9c",  # a three-byte sequence cut short
        b"\xc0\xaf",  # an overlong encoding of "/"
        b"\xed\xa0\x80",  # the surrogate U+D800 encoded as UTF-8
        b"\xf4\x90\x80\x80",  # above U+10FFFF
    ],
    ids=["continuation", "truncated", "overlong", "surrogate", "above-max"],
)
def test_parquet_invalid_sequence_quarantined(tmp_path, invalid):
    path = _write_parquet(
        tmp_path / "purchases.parquet", [b"p1", b"p2"], [b"ok", b"x" + invalid]
    )
    # Reading leaves such rows out of DuckDB's scan, which drops the bytes it
    # rejects, so DuckDB must reject every sequence that Python rejects.
    with pytest.raises(duckdb.InvalidInputException):
        duckdb.connect().execute(f"SELECT * FROM read_parquet('{path}')").fetchall()
    connection, counts = _ingest(path)
    assert counts.purchases == 1
    [(row, column, _, _)] = _quarantine(connection)
    assert (row, column) == (2, "title")


def test_parquet_valid_text_beside_invalid_kept(tmp_path):
    # Rows beside a quarantined one are read without DuckDB's UTF-8 check, so
    # DuckDB must accept all the text that Python accepts.
    valid = ["有机", "\U0001f600", "\ufffe", "\U0010ffff", "\ufeffx", "\x80", "a\x00b"]
    titles = [title.encode() for title in valid] + [b"bad \xff"]
    purchase_ids = [f"p{row}".encode() for row in range(1, len(titles) + 1)]
    path = _write_parquet(tmp_path / "purchases.parquet", purchase_ids, titles)
    connection, counts = _ingest(path)
    assert counts.quarantined_rows == 1
    kept = connection.execute("SELECT title FROM purchases ORDER BY row").fetchall()
    assert [title for (title,) in kept] == valid


def test_parquet_row_numbers_across_row_groups(tmp_path):
    rows = 2_500
    titles = [b"Kettle"] * rows
    for row in (1, 1_001, 2_500):
        titles[row - 1] = b"bad \xff"
    purchase_ids = [f"p{row}".encode() for row in range(1, rows + 1)]
    path = _write_parquet(
        tmp_path / "purchases.parquet", purchase_ids, titles, row_group_size=1_000
    )
    connection, counts = _ingest(path)
    assert counts.purchases == rows - 3
    assert _purchase_ids(connection) == {1: "p1", 1_001: "p1001", 2_500: "p2500"}


def test_parquet_nested_invalid_text_quarantined(tmp_path):
    path = _write_parquet(tmp_path / "purchases.parquet", [b"p1", b"p2"], [b"a", b"b"])
    table = pq.read_table(path)
    labels = pa.ListArray.from_arrays(
        pa.array([0, 1, 3], pa.int32()), _as_text([b"eco", b"ok", b"caf\xe9"])
    )
    pq.write_table(table.append_column("label_codes", labels), path)
    connection, counts = _ingest(path)
    assert counts.purchases == 1
    [(row, column, value, _)] = _quarantine(connection)
    assert (row, column) == (2, "label_codes")
    assert value == '["ok", "caf\\xe9"]'
    assert _details(connection) == ["byte 0xE9 at offset 11"]


def _with_json_column(path: Path, documents: list[bytes | None]) -> Path:
    notes = pa.ExtensionArray.from_storage(pa.json_(), _as_text(documents))
    table = pq.read_table(path).append_column("notes", notes)
    pq.write_table(table, path, row_group_size=1_000)
    return path


def _json_parquet(tmp_path: Path, rows: int, bad_rows: set[int]) -> Path:
    purchase_ids = [f"p{row}".encode() for row in range(1, rows + 1)]
    path = _write_parquet(
        tmp_path / "purchases.parquet", purchase_ids, [b"Kettle"] * rows
    )
    # The spaces are kept, so a changed value would show. Each document names
    # its row, so a row read beside another row's document would show too.
    documents: list[bytes | None] = [
        b'{ "row" : %d }' % row if row not in bad_rows else b'{"row": "\xe9"}'
        for row in range(1, rows + 1)
    ]
    documents[1] = None
    return _with_json_column(path, documents)


def test_duckdb_rejects_bad_json_column_itself(tmp_path):
    path = _json_parquet(tmp_path, 2, {1})
    with pytest.raises(UnicodeDecodeError):
        duckdb.connect().execute(
            f"SELECT notes FROM read_parquet('{path}', utf8_validation = 'ignore')"
        ).fetchall()


@pytest.mark.parametrize("threads", [1, 2])
def test_parquet_json_column_invalid_quarantined(tmp_path, threads):
    rows = 2_500
    path = _json_parquet(tmp_path, rows, {3, 1_500})
    connection = duckdb.connect()
    connection.execute(f"SET threads = {threads}")
    connection.execute("SET preserve_insertion_order = false")
    temp_dir = tmp_path / "temp"
    temp_dir.mkdir()
    source = register_source(connection, path, temp_dir)
    counts = ingest(connection, source, identity_mapping(source.columns), RUN_STARTED)
    assert counts.rows_read == rows
    assert counts.purchases == rows - 2
    assert _quarantine(connection) == [
        (3, "notes", '{"row": "\\xe9"}', f"invalid text: {NOT_UTF8_PARQUET}"),
        (1_500, "notes", '{"row": "\\xe9"}', f"invalid text: {NOT_UTF8_PARQUET}"),
    ]
    assert _details(connection) == ["byte 0xE9 at offset 9"] * 2
    assert _purchase_ids(connection) == {3: "p3", 1_500: "p1500"}
    kept_rows = connection.execute(
        "SELECT __row__, purchase_id, notes, typeof(notes) FROM raw ORDER BY 1"
    ).fetchall()
    assert len(kept_rows) == rows - 2
    for row, purchase_id, notes, kind in kept_rows:
        assert purchase_id == f"p{row}"
        assert notes == (None if row == 2 else f'{{ "row" : {row} }}')
        assert kind == "JSON"
    assert len(list(temp_dir.iterdir())) == 1
    source.remove_temporary_files()
    assert list(temp_dir.iterdir()) == []


def test_parquet_malformed_json_rejected(tmp_path):
    path = _write_parquet(
        tmp_path / "purchases.parquet", [b"p1", b"p2", b"p3"], [b"a", b"b", b"c"]
    )
    _with_json_column(path, [b"{}", b'{"size": "\xe9"}', b"{bad"])
    temp_dir = tmp_path / "temp"
    temp_dir.mkdir()
    with pytest.raises(
        InputError, match=r"JSON column 'notes' in row 3 is not a JSON document"
    ):
        register_source(duckdb.connect(), path, temp_dir)
    assert list(temp_dir.iterdir()) == []


def test_parquet_all_rows_invalid_rejected(tmp_path):
    path = _write_parquet(
        tmp_path / "purchases.parquet", [b"p1", b"p2"], [b"\xff", b"\xfe"]
    )
    with pytest.raises(InputError, match=r"no row could be read \(row 1, column title"):
        register_source(duckdb.connect(), path)


def test_valid_parquet_read_without_change(tmp_path):
    path = _write_parquet(tmp_path / "purchases.parquet", [b"p1"], ["有机".encode()])
    connection = duckdb.connect()
    source = register_source(connection, path)
    assert source.malformed == []
    [(definition,)] = connection.execute(
        "SELECT sql FROM duckdb_views() WHERE view_name = 'raw'"
    ).fetchall()
    assert "'strict'" in definition
    assert "NOT IN" not in definition


def test_parquet_dictionary_invalid_quarantined(tmp_path):
    # pandas writes a categorical column as an Arrow dictionary, which pyarrow
    # reads back as one.
    path = _write_parquet(
        tmp_path / "purchases.parquet", [b"p1", b"p2"], [b"ok", b"b\xffad"]
    )
    table = pq.read_table(path)
    titles = table.column("title").combine_chunks().dictionary_encode()
    pq.write_table(table.set_column(3, "title", titles), path)
    connection, counts = _ingest(path)
    assert counts.purchases == 1
    assert counts.quarantined_rows == 1
    [(row, column, value, _)] = _quarantine(connection)
    assert (row, column, value) == (2, "title", "b\\xffad")
    assert _purchase_ids(connection) == {2: "p2"}


def test_parquet_renamed_column_invalid_quarantined(tmp_path):
    # DuckDB names the second of two columns that differ only in case Title_1,
    # a name that pyarrow does not know.
    path = _write_parquet(
        tmp_path / "purchases.parquet", [b"p1", b"p2"], [b"Kettle", b"Fan"]
    )
    table = pq.read_table(path)
    pq.write_table(table.append_column("Title", _as_text([b"ok", b"b\xffad"])), path)
    connection, counts = _ingest(path)
    assert counts.purchases == 1
    assert counts.quarantined_rows == 1
    [(row, column, value, _)] = _quarantine(connection)
    assert (row, column, value) == (2, "Title_1", "b\\xffad")
    assert _purchase_ids(connection) == {2: "p2"}


def test_parquet_repeated_name_rejected(tmp_path):
    path = _write_parquet(tmp_path / "purchases.parquet", [b"p1"], [b"Kettle"])
    table = pq.read_table(path)
    table = table.append_column("title", pa.array(["Fan"]))
    pq.write_table(table, path)
    assert pq.read_schema(path).names.count("title") == 2
    with pytest.raises(InputError) as raised:
        register_source(duckdb.connect(), path)
    message = str(raised.value)
    assert str(path) in message
    assert "columns 4 and 8 share the name 'title'" in message
    assert "rename the columns in the file" in message


def test_parquet_case_rename_warned(tmp_path, caplog):
    path = _write_parquet(tmp_path / "purchases.parquet", [b"p1"], [b"Kettle"])
    table = pq.read_table(path).append_column("Title", pa.array(["Fan"]))
    pq.write_table(table, path)
    with caplog.at_level("WARNING", logger="greenloop.pipeline.sources"):
        source = register_source(duckdb.connect(), path)
    assert source.columns[-1] == "Title_1"
    [record] = caplog.records
    assert "column 8, 'Title', is read as 'Title_1'" in record.getMessage()


def test_csv_repeated_name_rejected(tmp_path):
    path = tmp_path / "purchases.csv"
    path.write_bytes(HEADER.replace(b"\n", b",title\n") + b"c1,x,u1,A,1,4,CNY,B\n")
    with pytest.raises(InputError) as raised:
        register_source(duckdb.connect(), path)
    message = str(raised.value)
    assert str(path) in message
    assert "columns 4 and 8 share the name 'title'" in message
    assert "rename the columns" in message


def _title_mapping(column: str) -> ColumnMapping:
    fields = ["purchase_id", "occurred_at", "user_id", "quantity", "amount"]
    columns: dict[str, str | ColumnSpec] = {name: name for name in fields}
    columns["currency"] = "currency"
    columns["title"] = column
    return ColumnMapping(name="titles", columns=columns)


def _case_repeat_file(tmp_path: Path, kind: str) -> Path:
    if kind == "csv":
        path = tmp_path / "purchases.csv"
        header = HEADER.replace(b"\n", b",Title\n")
        path.write_bytes(header + _csv_line("c1", b"A").replace(b"\n", b",X\n"))
        return path
    path = tmp_path / "purchases.jsonl"
    record = json.loads(_jsonl_line("j1", "A"))
    record["Title"] = "X"
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_case_repeat_read_as_renamed(tmp_path, caplog, kind):
    # DuckDB matches names ignoring case, so "Title" would read the title column.
    path = _case_repeat_file(tmp_path, kind)
    connection = duckdb.connect()
    with caplog.at_level("WARNING", logger="greenloop.pipeline.sources"):
        source = register_source(connection, path)
    assert source.columns[-1] == "Title_1"
    [record] = caplog.records
    assert "column 8, 'Title', is read as 'Title_1'" in record.getMessage()
    with pytest.raises(MappingError, match=r"no column 'Title' .* Title_1"):
        ingest(connection, source, _title_mapping("Title"), RUN_STARTED)
    ingest(connection, source, _title_mapping("Title_1"), RUN_STARTED)
    assert connection.execute("SELECT title FROM purchases").fetchall() == [("X",)]


def test_jsonl_repeated_key_quarantined(tmp_path):
    repeated = _jsonl_line("j2", "A").replace(
        '"title": "A"', '"title": "A", "title": "B"'
    )
    nested = _jsonl_line("j3", "C").replace("}", ', "labels": {"eco": 1, "eco": 2}}')
    lines = [_jsonl_line("j1", "Kettle"), repeated, nested]
    path = tmp_path / "purchases.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    connection, counts = _ingest(path)
    assert counts.purchases == 1
    assert counts.quarantined_rows == 2
    found = _quarantine(connection)
    assert [(row, column) for row, column, _, _ in found] == [
        (2, "title"),
        (3, "(record)"),
    ]
    assert {reason for _, _, _, reason in found} == {REPEATED_KEY}
    assert _details(connection) == [
        "the key appears 2 times",
        "a nested object gives the key 'eco' 2 times",
    ]
    assert _purchase_ids(connection) == {2: "j2", 3: "j3"}
