"""Look up records by model number, with ENERGY STAR wildcards.

Registries write one model number per record, sometimes with wildcards. ENERGY
STAR uses `*` (and in a few files `#`) for one variable character and lists
alternatives separated by commas. It writes a final `R/L` for either hinge side
and puts optional characters in parentheses. Sellers often drop the trailing
variable characters (colour codes), so a trailing run of wildcards matches zero
or more characters up to its length. A wildcard position also matches the
wildcard character itself, because some sellers copy the registry's spelling.

A `/` between complete model numbers of equal length that share their first
half (`ABC123/ABC124`) lists alternatives. Any other `/` separates a part
(`B10CB80NVW/01`, `BI-30U/S/**`, `KFR-35GW/BP3DN8Y`), and a seller may write
the `/` or leave it out.

Some model numbers are names of several words without a digit (IKEA writes
"SUPERKALL b-in refrigerator white NA"). Such a record is also filed under its
first word, which is the product name a seller writes.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from greenloop.identify.evidence import normalize_model

RecordT = TypeVar("RecordT")

_WILDCARDS = "*#"
_WILDCARD_CLASS = "[A-Z0-9*#]"
_MIN_PREFIX = 2
_VARIABLE = frozenset("*#(/")
_HINGE_ALTERNATIVE = re.compile(r"([A-Z0-9])/([A-Z0-9])$")
# Parts of a `/` list are whole alternatives only when each is this long.
_MIN_SLASH_ALTERNATIVE = 4
# The first word of a several-word name is filed when it is this long.
_MIN_NAME_WORD = 4
_DIGIT = re.compile(r"[0-9]")
# A key with up to this many `/` is filed under each spelling, with and
# without each `/`; one with more keeps its regex.
MAX_SLASH_SPELLINGS = 3


@dataclass(frozen=True, slots=True)
class CompiledModel:
    """A registry model number as an exact key and, when it has wildcards, a regex."""

    written: str
    key: str
    pattern: re.Pattern[str] | None


def expand_model_number(written: str) -> list[CompiledModel]:
    """Compile a registry model number into one entry per listed alternative."""
    compiled: list[CompiledModel] = []
    for listed in written.split(","):
        key = normalize_model(listed)
        if not key:
            continue
        alternatives = _slash_alternatives(key)
        if alternatives:
            # The list as written stays a key, for titles that copy it.
            compiled.append(CompiledModel(listed.strip(), key, None))
            compiled.extend(
                CompiledModel(listed.strip(), part, _to_pattern(part))
                for part in alternatives
            )
        else:
            compiled.append(CompiledModel(listed.strip(), key, _to_pattern(key)))
    return compiled


def name_word(written: str) -> str | None:
    """Return the first word of a model number written as a several-word name.

    The word counts only when it has no digit and at least four characters,
    so "SUPERKALL b-in refrigerator white NA" gives "SUPERKALL" and
    "KFN 13823 D" gives None.
    """
    words = written.split()
    if len(words) < 2:
        return None
    first = normalize_model(words[0])
    if len(first) < _MIN_NAME_WORD or _DIGIT.search(first) or not first.isalnum():
        return None
    return first


def _slash_alternatives(key: str) -> list[str] | None:
    parts = key.split("/")
    if len(parts) < 2:
        return None
    length = len(parts[0])
    if length < _MIN_SLASH_ALTERNATIVE or any(len(part) != length for part in parts):
        return None
    if not all(_DIGIT.search(part) for part in parts):
        return None
    shared = parts[0][: (length + 1) // 2]
    if not all(part.startswith(shared) for part in parts):
        return None
    return parts


def _to_pattern(key: str) -> re.Pattern[str] | None:
    hinge = _HINGE_ALTERNATIVE.search(key)
    body = key[: hinge.start()] if hinge else key
    has_variable_part = hinge or "(" in body or any(char in body for char in _WILDCARDS)
    if not has_variable_part and "/" not in body:
        return None

    stripped = body.rstrip(_WILDCARDS)
    trailing = len(body) - len(stripped)
    parts: list[str] = []
    index = 0
    while index < len(stripped):
        char = stripped[index]
        if char in _WILDCARDS:
            parts.append(_WILDCARD_CLASS)
        elif char == "(" and ")" in stripped[index:]:
            closing = stripped.index(")", index)
            optional = stripped[index + 1 : closing]
            parts.append(f"(?:{re.escape(optional)})?")
            index = closing
        elif char == "/":
            parts.append("/?")
        else:
            parts.append(re.escape(char))
        index += 1
    if hinge:
        # Either side, both as the registry writes them, or neither.
        first, second = hinge.group(1), hinge.group(2)
        parts.append(f"(?:[{first}{second}]|{first}/{second}|{second}/{first})?")
    if trailing:
        parts.append(f"{_WILDCARD_CLASS}{{0,{trailing}}}")
    return re.compile("".join(parts))


@dataclass
class _Pattern(Generic[RecordT]):
    pattern: re.Pattern[str]
    anchor: str
    record: RecordT


@dataclass
class ModelIndex(Generic[RecordT]):
    """Records indexed by normalized model number.

    Literal model numbers sit in a dict. A wildcard pattern is filed under its
    literal prefix (the characters before the first wildcard), so a lookup tries
    one dict key per distinct prefix length instead of every pattern. Patterns
    whose prefix is shorter than two characters are checked for their longest
    literal part first, with a substring test, before the regex runs.

    `lookup_name` reads `names` (first words of several-word names) and
    `name_patterns` (wildcard patterns without a digit, such as "CP*").
    """

    exact: dict[str, list[RecordT]] = field(default_factory=lambda: defaultdict(list))
    by_prefix: dict[str, list[_Pattern[RecordT]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    prefix_closure: set[str] = field(default_factory=set)
    wild_start: list[_Pattern[RecordT]] = field(default_factory=list)
    names: dict[str, list[RecordT]] = field(default_factory=lambda: defaultdict(list))
    name_patterns: list[_Pattern[RecordT]] = field(default_factory=list)
    size: int = 0
    _wild_start_union: re.Pattern[str] | None = None

    def add(self, model_number: str, record: RecordT) -> None:
        """Index `record` under every alternative of `model_number`."""
        self.size += 1
        for listed in model_number.split(","):
            word = name_word(listed)
            if word is not None:
                self.names[word].append(record)
        for compiled in expand_model_number(model_number):
            self.exact[compiled.key].append(record)
            if compiled.pattern is None:
                continue
            spellings = _slash_spellings(compiled.key)
            if spellings is not None:
                for spelling in spellings:
                    self.exact[spelling].append(record)
                continue
            prefix = _literal_prefix(compiled.key)
            entry = _Pattern(compiled.pattern, _longest_literal(compiled.key), record)
            if _DIGIT.search(compiled.key) is None:
                self.name_patterns.append(entry)
            if len(prefix) >= _MIN_PREFIX:
                self.by_prefix[prefix].append(entry)
                self.prefix_closure.update(
                    prefix[:length] for length in range(_MIN_PREFIX, len(prefix) + 1)
                )
            else:
                self.wild_start.append(entry)
                self._wild_start_union = None

    def lookup(self, candidate: str) -> list[RecordT]:
        """Return the records whose model number matches a normalized candidate."""
        found = list(self.exact.get(candidate, ()))
        # Walk the candidate's prefixes while some pattern prefix still starts
        # with them; most candidates leave the closure after two characters.
        for length in range(_MIN_PREFIX, len(candidate) + 1):
            prefix = candidate[:length]
            if prefix not in self.prefix_closure:
                break
            for entry in self.by_prefix.get(prefix, ()):
                if entry.pattern.fullmatch(candidate) and entry.record not in found:
                    found.append(entry.record)
        return self._lookup_wild_start(candidate, found)

    def _lookup_wild_start(self, candidate: str, found: list[RecordT]) -> list[RecordT]:
        if not self.wild_start:
            return found
        if self._wild_start_union is None:
            # One regex for all patterns rejects most candidates in one call.
            self._wild_start_union = re.compile(
                "|".join(f"(?:{entry.pattern.pattern})" for entry in self.wild_start)
            )
        if self._wild_start_union.fullmatch(candidate) is None:
            return found
        for entry in self.wild_start:
            matched = entry.anchor in candidate and entry.pattern.fullmatch(candidate)
            if matched and entry.record not in found:
                found.append(entry.record)
        return found

    def lookup_exact(self, candidate: str) -> list[RecordT]:
        """Return the records whose model number is exactly the candidate."""
        return list(self.exact.get(candidate, ()))

    def lookup_name(self, candidate: str) -> list[RecordT]:
        """Return the records a normalized candidate without a digit names.

        These are exact model numbers, first words of several-word names and
        wildcard patterns without a digit. Patterns with a digit are skipped,
        so a plain word never matches a numbered model family.
        """
        found = list(self.exact.get(candidate, ()))
        for record in self.names.get(candidate, ()):
            if record not in found:
                found.append(record)
        for entry in self.name_patterns:
            if entry.pattern.fullmatch(candidate) and entry.record not in found:
                found.append(entry.record)
        return found


def _slash_spellings(key: str) -> list[str] | None:
    """Return the other spellings of a key whose only variable parts are `/`.

    Each `/` may be written or left out, so `KFR-35GW/BP3DN8Y` is also found
    as `KFR-35GWBP3DN8Y`. Listing the few spellings as exact keys spares a
    regex per lookup. Returns None when the key has a wildcard, parentheses,
    a hinge alternative or more than MAX_SLASH_SPELLINGS slashes.
    """
    slashes = key.count("/")
    if (
        not slashes
        or slashes > MAX_SLASH_SPELLINGS
        or any(char in key for char in "*#()")
        or _HINGE_ALTERNATIVE.search(key)
    ):
        return None
    parts = key.split("/")
    spellings = {parts[0]}
    for part in parts[1:]:
        spellings = {f"{s}/{part}" for s in spellings} | {s + part for s in spellings}
    spellings.discard(key)
    return sorted(spellings)


def _literal_prefix(key: str) -> str:
    hinge = _HINGE_ALTERNATIVE.search(key)
    if hinge:
        # The hinge side before the `/` is variable as well.
        key = key[: hinge.start()]
    for index, char in enumerate(key):
        if char in _VARIABLE:
            return key[:index]
    return key


def _longest_literal(key: str) -> str:
    parts = re.split(r"[*#()/]", key)
    return max(parts, key=len)
