"""Canonical JSON (RFC 8785, the JSON Canonicalization Scheme) for ledger entries.

A leaf contains the canonical bytes of a record, so the same record always hashes
the same way. Values map to JSON as follows: `Decimal` becomes its string form,
because RFC 8785 numbers are IEEE doubles and cannot hold money exactly; `date`
and `datetime` become ISO 8601 strings; an `Enum` becomes its value; tuples
become arrays. Integers outside +/-(2**53 - 1) and non-finite floats are
rejected, because a double cannot represent them exactly.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import json
import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import orjson

PERSONAL_DATA_KEYS = frozenset({"user_id", "name", "phone", "email", "address"})
"""Keys a ledger record must not contain, at any depth, compared case-insensitively.

A receipt is shared with a funding bank, so a leaf carries the user only as
the keyed hash from `greenloop.ledger.pseudonym`.
"""

MAX_SAFE_INTEGER = 2**53 - 1

# Floats that Python and orjson print exactly as ECMAScript does: non-integral
# values from 1e-4 up to 1e16. Every other float goes through `format_number`.
_REPR_SAFE_LOW = 1e-4
_REPR_SAFE_HIGH = 1e16

# Exact value types that orjson writes as RFC 8785 does, or hands to
# `_convert_scalar` (Decimal and the date types) for their string form.
_FLAT_VALUE_TYPES = frozenset(
    {str, int, bool, type(None), Decimal, dt.datetime, dt.date, dt.time}
)
_FLOAT_TYPE = frozenset({float})
_STRING_TYPE = frozenset({str})
_is_float = float.__instancecheck__

# Whether a tuple of string keys passes the ASCII and personal-data checks.
# Records of one kind share their keys, so the checks run once per key set.
_checked_keys: dict[tuple[str, ...], bool] = {}
_CHECKED_KEYS_LIMIT = 1_024

_encode_string = json.encoder.encode_basestring
_ORJSON_OPTIONS = (
    orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER | orjson.OPT_PASSTHROUGH_DATETIME
)


def canonical_json(value: Any) -> bytes:
    """Encode `value` as RFC 8785 canonical JSON (UTF-8 bytes).

    Raises ValueError naming the path of a personal-data key, a non-string
    key, an unsafe number or an unsupported type.
    """
    if type(value) is dict and _flat_record_ok(value):
        try:
            return orjson.dumps(value, default=_convert_scalar, option=_ORJSON_OPTIONS)
        except orjson.JSONEncodeError:
            # An unsafe integer, a non-finite Decimal or an unpaired surrogate:
            # the walk below raises the error that names its path.
            pass
    elif _fast_path_ok(value, "$"):
        return orjson.dumps(value, default=_convert_scalar, option=_ORJSON_OPTIONS)
    parts: list[str] = []
    _encode(value, "$", parts)
    return "".join(parts).encode("utf-8")


def record_digest(record: Mapping[str, Any]) -> str:
    """Return the SHA-256 of the record's canonical JSON, as lowercase hex."""
    return hashlib.sha256(canonical_json(record)).hexdigest()


def check_key(key: object, path: str) -> str:
    """Return `key` if a record may use it, or raise ValueError naming it."""
    if type(key) is not str:
        raise ValueError(f"key {key!r} at {path} must be a string")
    if key.lower() in PERSONAL_DATA_KEYS:
        raise ValueError(
            f"key {key!r} at {path} is personal data and must not enter the ledger; "
            "replace the user by greenloop.ledger.pseudonym(user_id, secret) "
            "and drop names and contact details"
        )
    return key


def _flat_record_ok(record: dict[Any, Any]) -> bool:
    """Return whether orjson gives the RFC 8785 bytes of a dict of plain scalars.

    Most ledger records are one level of strings, numbers, Decimals and dates.
    For them this check runs mostly in C: a cached check of the key tuple and
    a set of value types. Only a record with a float takes a Python loop, over
    its floats alone. False sends the record to `_fast_path_ok`, which
    validates any shape. Integers are not range-checked here, because orjson's
    OPT_STRICT_INTEGER raises on those beyond 53 bits.
    """
    keys = tuple(record)
    keys_ok = _checked_keys.get(keys)
    if keys_ok is None:
        keys_ok = (
            set(map(type, keys)) <= _STRING_TYPE
            and "".join(keys).isascii()
            and PERSONAL_DATA_KEYS.isdisjoint(map(str.lower, keys))
        )
        if len(_checked_keys) >= _CHECKED_KEYS_LIMIT:
            _checked_keys.clear()
        _checked_keys[keys] = keys_ok
    if not keys_ok:
        return False
    values = record.values()
    kinds = set(map(type, values))
    if kinds <= _FLAT_VALUE_TYPES:
        return True
    if not kinds - _FLOAT_TYPE <= _FLAT_VALUE_TYPES:
        return False
    # Every float here is exactly a float: a subclass is not among the kinds.
    for item in filter(_is_float, values):
        if not (
            _REPR_SAFE_LOW <= abs(item) < _REPR_SAFE_HIGH and not item.is_integer()
        ):
            return False
    return True


def _fast_path_ok(value: Any, path: str) -> bool:
    """Validate `value` and return whether orjson gives its RFC 8785 bytes.

    orjson (3.13) matches RFC 8785 when every key is ASCII, so that code-point
    and UTF-16 order agree, and every float prints the same in Python and
    ECMAScript. Everything else goes through the slower pure-Python encoder.
    Paths are only formatted for nested containers and errors, because this
    loop runs once per ledger entry.
    """
    kind = type(value)
    if kind is dict:
        try:
            ok = "".join(value).isascii()
        except TypeError:
            ok = False
        if not ok or not PERSONAL_DATA_KEYS.isdisjoint(map(str.lower, value)):
            for key in value:
                check_key(key, path)
        for key, item in value.items():
            item_kind = type(item)
            if item_kind is str or item is None or item_kind is bool:
                continue
            if item_kind is int and -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
                continue
            if (
                item_kind is float
                and _REPR_SAFE_LOW <= abs(item) < _REPR_SAFE_HIGH
                and not item.is_integer()
            ):
                continue
            if item_kind is Decimal and item.is_finite():
                # orjson passes it to `_convert_scalar`, which writes its string.
                continue
            if not _fast_path_ok(item, f"{path}.{key}"):
                ok = False
        return ok
    if kind is list or kind is tuple:
        ok = True
        for number, item in enumerate(value):
            if not _scalar_ok(item) and not _fast_path_ok(item, f"{path}[{number}]"):
                ok = False
        return ok
    if kind is float:
        _check_float(value, path)
        return False
    if kind is int:
        _check_integer(value, path)
        return True
    if kind is str or kind is bool or value is None:
        return True
    if isinstance(value, enum.Enum):
        return _fast_path_ok(value.value, path)
    if isinstance(value, Decimal | dt.date | dt.time):
        _convert_scalar(value, path)
        return True
    if not isinstance(value, Mapping | list | tuple | str | int | float):
        _convert_scalar(value, path)
    # Subclasses of the JSON types take the pure-Python encoder, which checks
    # their contents on the way.
    return False


def _scalar_ok(item: Any) -> bool:
    """Say whether `item` is a plain scalar that orjson writes as RFC 8785 does."""
    kind = type(item)
    if kind is str or item is None or kind is bool:
        return True
    if kind is int:
        return -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER
    if kind is float:
        magnitude = abs(item)
        return _REPR_SAFE_LOW <= magnitude < _REPR_SAFE_HIGH and not item.is_integer()
    return False


def _check_integer(value: int, path: str) -> None:
    if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        raise ValueError(
            f"integer {value} at {path} is outside +/-(2**53 - 1), which RFC 8785 "
            "numbers cannot hold exactly; pass it as a string"
        )


def _check_float(value: float, path: str) -> None:
    if not math.isfinite(value):
        raise ValueError(
            f"number {value} at {path} is not finite; JSON has no such value"
        )


def _convert_scalar(value: Any, path: str = "$") -> Any:
    """Map the non-JSON scalar types this module accepts onto JSON values."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"decimal {value} at {path} is not finite")
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, str | int | float) or value is None:
        return value
    raise ValueError(
        f"value of type {type(value).__name__} at {path} cannot be written as "
        "canonical JSON; use str, int, float, bool, None, Decimal, date, datetime, "
        "Enum, list or dict"
    )


def _encode(value: Any, path: str, parts: list[str]) -> None:
    if isinstance(value, Mapping):
        keys = [check_key(key, path) for key in value]
        # RFC 8785 orders keys by their UTF-16 code units.
        keys.sort(key=lambda key: key.encode("utf-16-be"))
        parts.append("{")
        for number, key in enumerate(keys):
            if number:
                parts.append(",")
            parts.append(_encode_string(key))
            parts.append(":")
            _encode(value[key], f"{path}.{key}", parts)
        parts.append("}")
        return
    if isinstance(value, list | tuple):
        parts.append("[")
        for number, item in enumerate(value):
            if number:
                parts.append(",")
            _encode(item, f"{path}[{number}]", parts)
        parts.append("]")
        return
    value = _convert_scalar(value, path)
    if value is None:
        parts.append("null")
    elif value is True:
        parts.append("true")
    elif value is False:
        parts.append("false")
    elif isinstance(value, str):
        parts.append(_encode_string(value))
    elif isinstance(value, int):
        _check_integer(value, path)
        parts.append(str(int(value)))
    elif isinstance(value, float):
        _check_float(value, path)
        parts.append(format_number(value))
    else:
        _encode(value, path, parts)


def format_number(value: float) -> str:
    """Format a finite double as ECMAScript's Number.prototype.toString does.

    Python's repr gives the shortest digits that round-trip, as ECMAScript
    does; only the placement of the decimal point and exponent differs.
    """
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    mantissa, _, exponent_text = repr(abs(value)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    # `point` is where the decimal point falls relative to the first digit.
    leading_zeros = len(whole + fraction) - len((whole + fraction).lstrip("0"))
    point = len(whole) - leading_zeros + int(exponent_text or 0)
    digits = digits.rstrip("0")
    count = len(digits)
    if count <= point <= 21:
        text = digits + "0" * (point - count)
    elif 0 < point <= 21:
        text = f"{digits[:point]}.{digits[point:]}"
    elif -6 < point <= 0:
        text = "0." + "0" * -point + digits
    else:
        exponent = point - 1
        exponent_sign = "+" if exponent >= 0 else "-"
        head = digits[0] if count == 1 else f"{digits[0]}.{digits[1:]}"
        text = f"{head}e{exponent_sign}{abs(exponent)}"
    return sign + text
