"""Input text that is not valid Unicode: the record is quarantined, the run goes on."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from greenloop.pipeline.ingest import ingest
from greenloop.pipeline.mapping import identity_mapping, load_mapping
from greenloop.pipeline.sources import InputError, register_source

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
