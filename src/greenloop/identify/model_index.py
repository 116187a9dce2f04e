"""Look up records by model number, with ENERGY STAR wildcards.

Registries write one model number per record, sometimes with wildcards: ENERGY
STAR uses `*` (and in a few files `#`) for one variable character, lists
alternatives separated by commas, writes a final `R/L` for either hinge side and
puts optional characters in parentheses. Sellers often drop the trailing
variable characters (colour codes), so a trailing run of wildcards matches zero
or more characters up to its length.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from greenloop.identify.evidence import normalize_model

RecordT = TypeVar("RecordT")

_WILDCARDS = "*#"
_PREFIX_LENGTH = 3
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
class ModelIndex(Generic[RecordT]):
    """Records indexed by normalized model number, literal keys in a dict.

    Wildcard patterns are grouped by their first three characters, so a lookup
    tries only the few patterns that share the candidate's prefix.
    """

    exact: dict[str, list[RecordT]] = field(default_factory=lambda: defaultdict(list))
    by_prefix: dict[str, list[tuple[re.Pattern[str], RecordT]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    wild_start: list[tuple[re.Pattern[str], RecordT]] = field(default_factory=list)
    size: int = 0

    def add(self, model_number: str, record: RecordT) -> None:
        """Index `record` under every alternative of `model_number`."""
        self.size += 1
        for compiled in expand_model_number(model_number):
            self.exact[compiled.key].append(record)
            if compiled.pattern is None:
                continue
            prefix = compiled.key[:_PREFIX_LENGTH]
            if len(prefix) == _PREFIX_LENGTH and not any(
                char in prefix for char in _WILDCARDS + "(/"
            ):
                self.by_prefix[prefix].append((compiled.pattern, record))
            else:
                self.wild_start.append((compiled.pattern, record))

    def lookup(self, candidate: str) -> list[RecordT]:
        """Return the records whose model number matches a normalized candidate."""
        found = list(self.exact.get(candidate, ()))
        for pattern, record in self.by_prefix.get(candidate[:_PREFIX_LENGTH], ()):
            if pattern.fullmatch(candidate) and record not in found:
                found.append(record)
        for pattern, record in self.wild_start:
            if pattern.fullmatch(candidate) and record not in found:
                found.append(record)
        return found

    def lookup_any(self, candidates: Iterable[str]) -> list[RecordT]:
        """Return the records matching any of `candidates`, in candidate order."""
        found: list[RecordT] = []
        for candidate in candidates:
            for record in self.lookup(candidate):
                if record not in found:
                    found.append(record)
        return found
