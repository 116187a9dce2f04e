"""Green-claim checks on product text, in English and Chinese.

The lexicons in `lexicons/*.yaml` list claim terms with their source, grouped by
rule and kind (`generic`, `specific`, `neutrality_offset`, `single_attribute`,
`future_pledge`), plus exceptions: colours, materials, functions and brand names
that contain a claim word without making a claim.

Each lexicon compiles to one exception expression, one expression for all its
claim terms and one per claim pattern. The exception expression runs first and
blanks out its matches, so "RECYCLING BAG" or 绿色连衣裙 never reach the claims.
Latin terms match whole words only, so "DECORATION" does not contain the claim
"eco". Chinese terms match anywhere, because Chinese text has no spaces between
words. Terms are compiled as prefix trees, so the longest term wins and a short
title is scanned in microseconds.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from greenloop.categories import Category
from greenloop.identify.verdict import ClaimFinding

CLAIM_KINDS = frozenset(
    {"generic", "specific", "neutrality_offset", "single_attribute", "future_pledge"}
)
EXCEPTION_KINDS = frozenset({"colour", "material", "function", "brand"})
LEXICON_FILES = ("en.yaml", "zh.yaml")

_TOP_KEYS = frozenset({"language", "last_checked", "sources", "claims", "exceptions"})
_SOURCE_KEYS = frozenset({"title", "url", "document"})
_CLAIM_KEYS = frozenset(
    {"rule", "kind", "source", "message", "category", "terms", "patterns", "triggers"}
)
_EXCEPTION_KEYS = frozenset({"kind", "source", "note", "terms", "patterns"})

# Latin letters and digits on either side of a match would make it part of a
# longer word ("eco" inside "DECORATION"), so Latin matches need both sides clear.
# Latin text is lower-cased before matching, so only lower-case letters appear.
_LATIN_WORD_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_LATIN_AFTER = r"(?![a-z0-9])"
_ASCII_LOWER = {code: code + 32 for code in range(ord("A"), ord("Z") + 1)}
_LATIN_WORD = re.compile(r"[a-z0-9]+")
# Separators and apostrophes are optional inside terms, so term lookup ignores them.
_TERM_KEY_DROP = re.compile(r"[\s\-'’]+")
# A space or hyphen inside a Latin term also matches a hyphen, spaces or nothing.
_LATIN_SEPARATOR = r"[\s\-]*"
_APOSTROPHE = "['’]?"


class LexiconError(ValueError):
    """A lexicon file that is missing a key, has an unknown key or a bad value."""


@dataclass(frozen=True, slots=True)
class ClaimRule:
    """One group of claim terms that share a rule id, kind, message and source."""

    rule: str
    kind: str
    message: str
    source: str
    category: Category | None


@dataclass(frozen=True, slots=True)
class Lexicon:
    """A loaded lexicon: its rules, sources, triggers and compiled expressions."""

    language: str
    last_checked: date
    path: str
    sources: Mapping[str, Mapping[str, str]]
    rules: Mapping[str, ClaimRule]
    term_rules: Mapping[str, ClaimRule]
    pattern_rules: tuple[tuple[re.Pattern[str], ClaimRule, frozenset[str]], ...]
    term_pattern: re.Pattern[str] | None
    exception_pattern: re.Pattern[str] | None
    term_triggers: frozenset[str]
    triggers: frozenset[str]

    @property
    def is_latin(self) -> bool:
        """Whether the lexicon's terms are Latin words matched on word boundaries."""
        return self.language != "zh"


def find_claims(text: str, *, brand: str | None = None) -> tuple[ClaimFinding, ...]:
    """Find the green claims in a product text.

    `brand` is the product's own brand, when known: a claim word inside it is
    not reported, because it names the maker rather than describing the product.
    Returns one finding per distinct rule and matched term, in text order.
    """
    masked = _mask_brand(text, brand) if brand else text
    located: list[tuple[int, ClaimFinding]] = []
    has_non_ascii = not text.isascii()
    for lexicon in default_lexicons():
        if lexicon.is_latin or has_non_ascii:
            located += _scan(lexicon, text, masked)
    if not located:
        return ()
    if len(located) > 1:
        located.sort(key=lambda item: item[0])
    findings: list[ClaimFinding] = []
    seen: set[tuple[str, str]] = set()
    for _, finding in located:
        key = (finding.rule, finding.term.casefold())
        if key not in seen:
            seen.add(key)
            findings.append(finding)
    return tuple(findings)


def claim_category(finding: ClaimFinding) -> Category | None:
    """Return the category a specific claim points to, such as organic_food."""
    for lexicon in default_lexicons():
        rule = lexicon.rules.get(finding.rule)
        if rule is not None:
            return rule.category
    return None


@lru_cache(maxsize=1)
def default_lexicons() -> tuple[Lexicon, ...]:
    """Load the lexicons shipped in the package, once per process."""
    folder = resources.files("greenloop.identify") / "lexicons"
    loaded = []
    for name in LEXICON_FILES:
        resource = folder / name
        loaded.append(parse_lexicon(resource.read_text(encoding="utf-8"), name))
    return tuple(loaded)


def load_lexicon(path: Path) -> Lexicon:
    """Load and compile one lexicon file, raising LexiconError if it is invalid."""
    return parse_lexicon(path.read_text(encoding="utf-8"), str(path))


def parse_lexicon(content: str, path: str) -> Lexicon:
    """Parse lexicon YAML text; `path` names the file in error messages."""
    try:
        document = yaml.safe_load(content)
    except yaml.YAMLError as error:
        raise LexiconError(f"{path}: invalid YAML: {error}") from error
    if not isinstance(document, dict):
        raise LexiconError(f"{path}: expected a mapping with keys {sorted(_TOP_KEYS)}")
    _check_keys(document, _TOP_KEYS, path, "the top level")
    language = _required_text(document, "language", path, "the top level")
    last_checked = document.get("last_checked")
    if not isinstance(last_checked, date):
        raise LexiconError(
            f"{path}: last_checked is {last_checked!r}; "
            "expected a date such as 2026-12-04"
        )
    sources = _parse_sources(document.get("sources"), path)
    is_latin = language != "zh"

    claims = _parse_claims(document, sources, is_latin, path)
    return Lexicon(
        language=language,
        last_checked=last_checked,
        path=path,
        sources=sources,
        rules=claims.rules,
        term_rules=claims.term_rules,
        pattern_rules=tuple(claims.pattern_rules),
        term_pattern=claims.term_pattern(is_latin),
        exception_pattern=_parse_exceptions(document, sources, is_latin, path),
        term_triggers=frozenset(claims.term_triggers),
        triggers=frozenset(claims.term_triggers).union(
            *(triggers for _, _, triggers in claims.pattern_rules)
        ),
    )


@dataclass
class _ClaimParts:
    """The claim rules of one lexicon file while it is being parsed."""

    rules: dict[str, ClaimRule]
    term_rules: dict[str, ClaimRule]
    term_tokens: list[tuple[str, ...]]
    pattern_rules: list[tuple[re.Pattern[str], ClaimRule, frozenset[str]]]
    term_triggers: set[str]

    def term_pattern(self, is_latin: bool) -> re.Pattern[str] | None:
        """Compile all terms into one prefix-tree expression, or None without terms."""
        if not self.term_tokens:
            return None
        return _compile_alternatives([_trie_pattern(self.term_tokens)], is_latin)


def _parse_claims(
    document: Mapping[str, Any],
    sources: Mapping[str, Mapping[str, str]],
    is_latin: bool,
    path: str,
) -> _ClaimParts:
    parts = _ClaimParts({}, {}, [], [], set())
    for index, entry in enumerate(_list_of_mappings(document, "claims", path)):
        where = f"claims[{index}]"
        rule = _parse_claim_rule(entry, sources, path, where)
        if rule.rule in parts.rules:
            raise LexiconError(f"{path}: {where}: duplicate rule id {rule.rule!r}")
        parts.rules[rule.rule] = rule
        terms, patterns = _terms_and_patterns(entry, is_latin, path, where)
        parts.term_triggers.update(_triggers(terms, is_latin))
        rule_triggers = frozenset(
            _pattern_triggers(entry, patterns, is_latin, path, where)
        )
        for pattern in patterns:
            compiled = _compile_alternatives([pattern], is_latin)
            parts.pattern_rules.append((compiled, rule, rule_triggers))
        for term in terms:
            # The first rule that lists a term owns it.
            parts.term_rules.setdefault(_term_key(term), rule)
            parts.term_tokens.append(_term_tokens(term, is_latin))
    return parts


def _parse_exceptions(
    document: Mapping[str, Any],
    sources: Mapping[str, Mapping[str, str]],
    is_latin: bool,
    path: str,
) -> re.Pattern[str] | None:
    terms: list[tuple[str, ...]] = []
    alternatives: list[str] = []
    for index, entry in enumerate(_list_of_mappings(document, "exceptions", path)):
        where = f"exceptions[{index}]"
        _check_keys(entry, _EXCEPTION_KEYS, path, where)
        kind = _required_text(entry, "kind", path, where)
        if kind not in EXCEPTION_KINDS:
            raise LexiconError(
                f"{path}: {where}: kind {kind!r} is unknown; "
                f"expected one of {sorted(EXCEPTION_KINDS)}"
            )
        _check_source(entry, sources, path, where)
        entry_terms, patterns = _terms_and_patterns(entry, is_latin, path, where)
        alternatives.extend(patterns)
        terms.extend(_term_tokens(term, is_latin) for term in entry_terms)
    if terms:
        alternatives.append(_trie_pattern(terms))
    if not alternatives:
        return None
    return _compile_alternatives(alternatives, is_latin)


def _scan(lexicon: Lexicon, text: str, masked: str) -> list[tuple[int, ClaimFinding]]:
    if lexicon.is_latin:
        masked = _lower_same_length(masked)
        present = _latin_tokens(masked)
    else:
        present = _chinese_tokens(masked)
    if lexicon.triggers.isdisjoint(present):
        # Most titles end here, before any regular expression runs.
        return []
    if lexicon.exception_pattern is not None:
        for match in _matches(lexicon.exception_pattern, masked, lexicon.is_latin):
            start, end = match.span()
            masked = masked[:start] + " " * (end - start) + masked[end:]
    located = []
    for start, end, rule in _resolve_overlaps(_candidates(lexicon, masked, present)):
        finding = ClaimFinding(
            rule=rule.rule,
            kind=rule.kind,
            term=text[start:end],
            message=rule.message,
        )
        located.append((start, finding))
    return located


def _candidates(
    lexicon: Lexicon, masked: str, present: set[str]
) -> list[tuple[int, int, int, ClaimRule]]:
    """List every match as (start, priority, end, rule).

    Each pattern and the term tree are searched apart, and only when the text
    contains one of their triggers, because one combined expression loses the
    regex engine's first-character scan and runs several times slower.
    Patterns come first in priority, in lexicon order.
    """
    candidates = []
    for priority, (pattern, rule, triggers) in enumerate(lexicon.pattern_rules):
        if triggers.isdisjoint(present):
            continue
        for match in _matches(pattern, masked, lexicon.is_latin):
            candidates.append((match.start(), priority, match.end(), rule))
    if lexicon.term_pattern is not None and not lexicon.term_triggers.isdisjoint(
        present
    ):
        priority = len(lexicon.pattern_rules)
        for match in _matches(lexicon.term_pattern, masked, lexicon.is_latin):
            rule = lexicon.term_rules[_term_key(match.group())]
            candidates.append((match.start(), priority, match.end(), rule))
    return candidates


def _resolve_overlaps(
    candidates: list[tuple[int, int, int, ClaimRule]],
) -> Iterable[tuple[int, int, ClaimRule]]:
    """Keep the leftmost match, and at one start the highest-priority one."""
    covered_until = 0
    for start, _, end, rule in sorted(candidates, key=lambda item: item[:2]):
        if start >= covered_until:
            covered_until = end
            yield start, end, rule


def _matches(
    pattern: re.Pattern[str], text: str, is_latin: bool
) -> Iterable[re.Match[str]]:
    """Yield the matches of `pattern`, skipping Latin matches inside a longer word.

    The leading word boundary is checked here rather than with a lookbehind in
    the expression, because an expression that starts with a lookbehind loses
    the regex engine's first-character scan and runs several times slower.
    """
    position = 0
    while True:
        match = pattern.search(text, position)
        if match is None:
            return
        start, end = match.span()
        if is_latin and start > 0 and text[start - 1] in _LATIN_WORD_CHARACTERS:
            position = start + 1
            continue
        yield match
        position = end if end > start else start + 1


def _lower_same_length(text: str) -> str:
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered
    # A few characters lower-case to two ("İ"), which would shift every offset.
    return text.translate(_ASCII_LOWER)


def _mask_brand(text: str, brand: str | None) -> str:
    if not brand or not brand.strip():
        return text
    needle = brand.strip().casefold()
    folded = text.casefold()
    if len(folded) != len(text):
        # casefold changed the length (ß becomes ss), so offsets would not match.
        return text
    masked = text
    start = folded.find(needle)
    while start >= 0:
        end = start + len(needle)
        masked = masked[:start] + " " * len(needle) + masked[end:]
        start = folded.find(needle, end)
    return masked


def _compile_alternatives(
    alternatives: Sequence[str], is_latin: bool
) -> re.Pattern[str]:
    body = "|".join(f"(?:{alternative})" for alternative in alternatives)
    if is_latin:
        body = f"(?:{body}){_LATIN_AFTER}"
    return re.compile(body)


def _pattern_triggers(
    entry: Mapping[str, Any],
    patterns: Sequence[str],
    is_latin: bool,
    path: str,
    where: str,
) -> set[str]:
    declared = _string_list(entry, "triggers", path, where)
    if patterns and not declared:
        raise LexiconError(
            f"{path}: {where}: has patterns but no triggers; list the words one of "
            "which every match contains"
        )
    return _triggers(declared, is_latin)


def _triggers(starts: Sequence[str], is_latin: bool) -> set[str]:
    """Return the tokens one of which a text must contain for a term to match.

    Latin tokens are the text's words and each pair of adjacent words written
    together, so "eco friendly", "eco-friendly" and "ecofriendly" all yield
    "ecofriendly". A one-word term is its own trigger. A longer term has every
    run of its first two or more words written together, because a match begins
    either with such a run as one word or with the first word followed by the
    next. Chinese tokens are the text's characters and pairs of adjacent
    characters, and a term's trigger is its first two characters.
    """
    if not is_latin:
        return {start.strip()[:2] for start in starts}
    found: set[str] = set()
    for start in starts:
        words = _LATIN_WORD.findall(start.lower())
        if len(words) == 1:
            found.add(words[0])
        for end in range(2, len(words) + 1):
            found.add("".join(words[:end]))
    return found


def _chinese_tokens(text: str) -> set[str]:
    tokens = set(text)
    tokens.update(map(operator.add, text, text[1:]))
    return tokens


def _latin_tokens(lowered: str) -> set[str]:
    words = _LATIN_WORD.findall(lowered)
    tokens = set(words)
    # map with operator.add runs in C, several times faster than a generator.
    tokens.update(map(operator.add, words, words[1:]))
    return tokens


def _term_key(term: str) -> str:
    """Return the lookup key of a term or of the text a term matched."""
    return _TERM_KEY_DROP.sub("", term.lower())


def _terms_and_patterns(
    entry: Mapping[str, Any], is_latin: bool, path: str, where: str
) -> tuple[list[str], list[str]]:
    terms = _string_list(entry, "terms", path, where)
    patterns = _string_list(entry, "patterns", path, where)
    if not terms and not patterns:
        raise LexiconError(f"{path}: {where}: needs at least one of terms or patterns")
    for pattern in patterns:
        _check_pattern(pattern, is_latin, path, where)
    return terms, patterns


def _check_pattern(pattern: str, is_latin: bool, path: str, where: str) -> str:
    if is_latin and re.search(r"(?<!\\)[A-Z]", pattern):
        raise LexiconError(
            f"{path}: {where}: pattern {pattern!r} has an upper-case letter; "
            "Latin text is lower-cased before matching, so write it in lower case"
        )
    try:
        compiled = re.compile(pattern)
    except re.error as error:
        raise LexiconError(
            f"{path}: {where}: pattern {pattern!r} is not a valid regular "
            f"expression: {error}"
        ) from error
    if compiled.groups:
        raise LexiconError(
            f"{path}: {where}: pattern {pattern!r} has a capturing group; "
            "write (?:...) instead of (...)"
        )
    return pattern


def _term_tokens(term: str, is_latin: bool) -> tuple[str, ...]:
    """Split a term into regex tokens: one per character, separators flexible."""
    tokens: list[str] = []
    for character in term.strip():
        if is_latin and character in " -":
            if not tokens or tokens[-1] != _LATIN_SEPARATOR:
                tokens.append(_LATIN_SEPARATOR)
        elif is_latin and character in "'’":
            tokens.append(_APOSTROPHE)
        elif character.isspace():
            tokens.append(r"\s*")
        else:
            tokens.append(re.escape(character.lower() if is_latin else character))
    return tuple(tokens)


def _trie_pattern(token_lists: Sequence[tuple[str, ...]]) -> str:
    """Build one expression that matches the longest of the given token lists.

    Sharing prefixes lets the regex engine reject a position after one character
    class test instead of trying every term in turn.
    """
    trie: dict[str, Any] = {}
    for tokens in token_lists:
        node = trie
        for token in tokens:
            node = node.setdefault(token, {})
        node[""] = {}
    return _node_pattern(trie)


def _node_pattern(node: Mapping[str, Any]) -> str:
    ends_here = "" in node
    branches = [token + _node_pattern(child) for token, child in node.items() if token]
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    if ends_here:
        # Greedy optional: a longer term wins over its own prefix.
        return f"(?:{body})?"
    return body


def _parse_claim_rule(
    entry: Mapping[str, Any],
    sources: Mapping[str, Mapping[str, str]],
    path: str,
    where: str,
) -> ClaimRule:
    _check_keys(entry, _CLAIM_KEYS, path, where)
    rule_id = _required_text(entry, "rule", path, where)
    kind = _required_text(entry, "kind", path, where)
    if kind not in CLAIM_KINDS:
        raise LexiconError(
            f"{path}: {where}: kind {kind!r} is unknown; "
            f"expected one of {sorted(CLAIM_KINDS)}"
        )
    category_value = entry.get("category")
    category = None
    if category_value is not None:
        try:
            category = Category(category_value)
        except ValueError as error:
            raise LexiconError(
                f"{path}: {where}: category {category_value!r} is unknown; "
                f"expected one of {[member.value for member in Category]}"
            ) from error
    return ClaimRule(
        rule=rule_id,
        kind=kind,
        message=" ".join(_required_text(entry, "message", path, where).split()),
        source=_check_source(entry, sources, path, where),
        category=category,
    )


def _parse_sources(value: Any, path: str) -> dict[str, dict[str, str]]:
    if not isinstance(value, dict) or not value:
        raise LexiconError(
            f"{path}: sources must map source ids to a title and a url or document"
        )
    sources: dict[str, dict[str, str]] = {}
    for source_id, source in value.items():
        where = f"sources.{source_id}"
        if not isinstance(source, dict):
            raise LexiconError(f"{path}: {where}: expected a mapping with a title")
        _check_keys(source, _SOURCE_KEYS, path, where)
        title = _required_text(source, "title", path, where)
        if "url" not in source and "document" not in source:
            raise LexiconError(f"{path}: {where}: needs a url or a document number")
        sources[str(source_id)] = {"title": " ".join(title.split())} | {
            key: str(source[key]) for key in ("url", "document") if key in source
        }
    return sources


def _check_source(
    entry: Mapping[str, Any],
    sources: Mapping[str, Mapping[str, str]],
    path: str,
    where: str,
) -> str:
    source = _required_text(entry, "source", path, where)
    if source not in sources:
        raise LexiconError(
            f"{path}: {where}: source {source!r} is not defined under sources; "
            f"expected one of {sorted(sources)}"
        )
    return source


def _check_keys(
    mapping: Mapping[str, Any], allowed: frozenset[str], path: str, where: str
) -> None:
    unknown = sorted(set(mapping) - allowed)
    if unknown:
        raise LexiconError(
            f"{path}: {where}: unknown key {unknown[0]!r}; "
            f"expected keys among {sorted(allowed)}"
        )


def _required_text(mapping: Mapping[str, Any], key: str, path: str, where: str) -> str:
    value = mapping.get(key)
    if not isinstance(value, str) or not value.strip():
        raise LexiconError(
            f"{path}: {where}: {key} is {value!r}; expected a non-empty string"
        )
    return value


def _string_list(
    mapping: Mapping[str, Any], key: str, path: str, where: str
) -> list[str]:
    value = mapping.get(key, [])
    if not isinstance(value, list) or not all(
        isinstance(item, str) and item.strip() for item in value
    ):
        raise LexiconError(
            f"{path}: {where}: {key} must be a list of non-empty strings"
        )
    return value


def _list_of_mappings(
    document: Mapping[str, Any], key: str, path: str
) -> list[Mapping[str, Any]]:
    value = document.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise LexiconError(f"{path}: {key} must be a list of mappings")
    return value
