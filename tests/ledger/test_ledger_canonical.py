"""Canonical JSON (RFC 8785) and the personal-data rule for ledger records."""

from __future__ import annotations

import datetime as dt
import enum
import math
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from greenloop.ledger import canonical_json, record_digest
from greenloop.ledger.canonical import _encode, format_number


def _slow(value: object) -> bytes:
    parts: list[str] = []
    _encode(value, "$", parts)
    return "".join(parts).encode()


class Colour(enum.Enum):
    GREEN = "green"


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        (0.0, "0"),
        (-0.0, "0"),
        (1.0, "1"),
        (-2.5, "-2.5"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (1e-7, "1e-7"),
        (1e-6, "0.000001"),
        (123.456, "123.456"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (333333333.33333329, "333333333.3333333"),
        (1e16, "10000000000000000"),
        (4.5e-5, "0.000045"),
    ],
)
def test_number_format_matches_ecmascript(number: float, expected: str) -> None:
    assert format_number(number) == expected


def test_keys_sorted_by_utf16_units() -> None:
    # U+FB33 sorts after U+1D11E in code points but before it in UTF-16 units.
    value = {"\ufb33": 1, "\U0001d11e": 2, "a": 3}
    assert canonical_json(value) == '{"a":3,"\U0001d11e":2,"\ufb33":1}'.encode()


def test_control_characters_escaped_lowercase() -> None:
    assert canonical_json({"t": 'a\u001fb\n"\\/'}) == b'{"t":"a\\u001fb\\n\\"\\\\/"}'


def test_decimal_and_dates_become_strings() -> None:
    value = {
        "amount": Decimal("1299.00"),
        "day": dt.date(2026, 12, 4),
        "at": dt.datetime(2026, 12, 4, 10, 0, tzinfo=dt.UTC),
        "colour": Colour.GREEN,
    }
    expected = (
        b'{"amount":"1299.00","at":"2026-12-04T10:00:00+00:00",'
        b'"colour":"green","day":"2026-12-04"}'
    )
    assert canonical_json(value) == expected


@pytest.mark.parametrize(
    "key", ["user_id", "name", "phone", "email", "address", "Email"]
)
def test_personal_data_key_rejected(key: str) -> None:
    with pytest.raises(ValueError, match=f"key '{key}'"):
        canonical_json({"purchase_id": "p1", key: "x"})


def test_nested_personal_data_rejected() -> None:
    with pytest.raises(ValueError, match=r"\$\.buyer\[0\]"):
        canonical_json({"buyer": [{"phone": "123"}]})


def test_unsafe_integer_rejected() -> None:
    with pytest.raises(ValueError, match="2\\*\\*53"):
        canonical_json({"n": 2**53})


def test_nan_rejected() -> None:
    with pytest.raises(ValueError, match="not finite"):
        canonical_json({"n": math.nan})


def test_non_string_key_rejected() -> None:
    with pytest.raises(ValueError, match="must be a string"):
        canonical_json({1: "x"})


def test_unknown_type_rejected() -> None:
    with pytest.raises(ValueError, match="set"):
        canonical_json({"tags": {"a"}})


def test_record_digest_is_sha256_hex() -> None:
    digest = record_digest({"a": 1})
    assert digest == "015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862"


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text().filter(
                lambda key: (
                    key.lower() not in {"user_id", "name", "phone", "email", "address"}
                )
            ),
            children,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(json_values)
def test_fast_path_equals_reference_encoder(value: object) -> None:
    assert canonical_json(value) == _slow(value)


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_number_format_round_trips(number: float) -> None:
    assert float(format_number(number)) == number


flat_scalars = (
    json_scalars
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.dates()
    | st.datetimes(timezones=st.just(dt.UTC))
    | st.floats(min_value=-1e20, max_value=1e20).map(float.__floor__).map(float)
)
flat_records = st.dictionaries(
    st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=8).filter(
        lambda key: key.lower() not in {"user_id", "name", "phone", "email", "address"}
    ),
    flat_scalars,
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(flat_records)
def test_flat_record_equals_reference_encoder(value: dict[str, object]) -> None:
    assert canonical_json(value) == _slow(value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"amount": Decimal("NaN")}, "not finite"),
        ({"amount": Decimal("-Infinity")}, "not finite"),
        ({"n": -(2**53)}, "2\\*\\*53"),
        ({"n": math.inf}, "not finite"),
        ({"a": 1, "EMAIL": "x"}, "key 'EMAIL'"),
    ],
)
def test_flat_record_errors_name_the_value(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        canonical_json(value)


def test_personal_key_rejected_after_same_shape_accepted() -> None:
    assert canonical_json({"purchase_id": "p1", "note": "x"})
    with pytest.raises(ValueError, match="key 'phone'"):
        canonical_json({"purchase_id": "p1", "phone": "x"})
    with pytest.raises(ValueError, match="key 'phone'"):
        canonical_json({"purchase_id": "p1", "phone": "x"})


def test_integral_and_large_floats_match_ecmascript() -> None:
    value = {"a": 1.0, "b": 1e16, "c": 1e-7, "d": 2.5}
    assert canonical_json(value) == b'{"a":1,"b":10000000000000000,"c":1e-7,"d":2.5}'


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (2.0, b"2"),
        (1e21, b"1e+21"),
        (1e16, b"10000000000000000"),
        (1e-7, b"1e-7"),
        (0.00012, b"0.00012"),
        (-0.5, b"-0.5"),
    ],
)
def test_flat_record_floats_as_ecmascript(value: float, expected: bytes) -> None:
    # The same keys each time, so the cached key check is warm from the first.
    record = {"amount": "10.00", "kg": value, "purchase_id": "p-1"}
    assert canonical_json(
        record
    ) == b'{"amount":"10.00","kg":%s,"purchase_id":"p-1"}' % (expected)


def test_flat_record_with_a_non_string_key_rejected() -> None:
    canonical_json({"a": 1, "b": "x"})
    with pytest.raises(ValueError, match="must be a string"):
        canonical_json({"a": 1, 2: "x"})
