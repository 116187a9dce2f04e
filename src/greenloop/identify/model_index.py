"""Look up records by model number, with ENERGY STAR wildcards.

Registries write one model number per record, sometimes with wildcards. ENERGY
STAR uses `*` (and in a few files `#`) for one variable character and lists
alternatives separated by commas. It writes a final `R/L` for either hinge side
and puts optional characters in parentheses. Sellers often drop the trailing
variable characters (colour codes), so a trailing run of wildcards matches zero
or more characters up to its length.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from greenloop.identify.evidence import normalize_model

RecordT = TypeVar("RecordT")

_WILDCARDS = "*#"
_MIN_PREFIX = 2
_VARIABLE = frozenset("*#(/")
_HINGE_ALTERNATIVE = re.compile(r"([A-Z0-9])/([A-Z0-9])$")


@dataclass(frozen=True, slots=True)
class CompiledModel:
    """A registry model number as an exact key and, when it has wildcards, a regex."""

    written: str
    key: str
    pattern: re.Pattern[str] | None


def expand_model_number(written: str) -> list[CompiledModel]:
    """Compile a registry model number into one entry per listed alternative."""
    compiled: list[CompiledModel] = []
    for alternative in written.split(","):
        key = normalize_model(alternative)
        if key:
            compiled.append(CompiledModel(alternative.strip(), key, _to_pattern(key)))
    return compiled


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
            parts.append("[A-Z0-9]")
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
        parts.append(f"[{hinge.group(1)}{hinge.group(2)}]?")
    if trailing:
        parts.append(f"[A-Z0-9]{{0,{trailing}}}")
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
    """

    exact: dict[str, list[RecordT]] = field(default_factory=lambda: defaultdict(list))
    by_prefix: dict[str, list[_Pattern[RecordT]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    prefix_closure: set[str] = field(default_factory=set)
    wild_start: list[_Pattern[RecordT]] = field(default_factory=list)
    size: int = 0
    _wild_start_union: re.Pattern[str] | None = None

    def add(self, model_number: str, record: RecordT) -> None:
        """Index `record` under every alternative of `model_number`."""
        self.size += 1
        for compiled in expand_model_number(model_number):
            self.exact[compiled.key].append(record)
            if compiled.pattern is None:
                continue
            prefix = _literal_prefix(compiled.key)
            entry = _Pattern(compiled.pattern, _longest_literal(compiled.key), record)
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


def _literal_prefix(key: str) -> str:
    for index, char in enumerate(key):
        if char in _VARIABLE:
            return key[:index]
    return key


def _longest_literal(key: str) -> str:
    parts = re.split(r"[*#()/]", key)
    return max(parts, key=len)
