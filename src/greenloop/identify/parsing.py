"""What one product query says, parsed once and shared by every rule."""

from __future__ import annotations

from dataclasses import dataclass, field

from greenloop.identify.evidence import (
    ModelCandidates,
    StatedGrade,
    find_certificate_codes,
    find_stated_grade,
    model_candidates,
    normalize_code,
    normalize_model,
    padded_words,
)
from greenloop.identify.verdict import ClaimFinding, ProductQuery
from greenloop.identify.vocabulary import Vocabulary


@dataclass
class ParsedQuery:
    """A product query with its title parsed into the facts the rules need."""

    query: ProductQuery
    words: str
    phrases: frozenset[str]
    stated_grade: StatedGrade | None
    codes: tuple[str, ...]
    appliance_type: str | None
    accessory: bool
    vehicle_context: bool
    claims: tuple[ClaimFinding, ...]
    _candidates: ModelCandidates | None = field(default=None, repr=False)

    @property
    def title(self) -> str:
        """The product title as given."""
        return self.query.title

    def candidates(self) -> ModelCandidates:
        """Return the model-number candidates of the title, computed on first use."""
        if self._candidates is None:
            self._candidates = model_candidates(self.query.title)
        return self._candidates

    def stated_model(self) -> str | None:
        """Return the normalized model number of the query's own column."""
        if self.query.model_number and self.query.model_number.strip():
            return normalize_model(self.query.model_number)
        return None

    def has_appliance_context(self) -> bool:
        """Return whether the query names an appliance or states an energy grade."""
        return (
            (self.appliance_type is not None and not self.accessory)
            or self.stated_grade is not None
            or self.query.energy_label_grade is not None
        )


def parse_query(
    query: ProductQuery, vocabulary: Vocabulary, claims: tuple[ClaimFinding, ...]
) -> ParsedQuery:
    """Parse a query's title into grades, codes, product type words and claims."""
    title = query.title or ""
    words = padded_words(title)
    title_phrases = vocabulary.phrases(words)
    appliance_type = vocabulary.appliance_types.find(title_phrases, title)
    accessory = (
        appliance_type is not None
        and vocabulary.appliance_exclusions.find(title_phrases, title) is not None
    )
    stated_grade = find_stated_grade(title)
    if (
        stated_grade is not None
        and _needs_appliance_word(stated_grade)
        and (appliance_type is None or accessory)
    ):
        # "grade 1" in English names an energy grade only next to an appliance.
        stated_grade = None
    codes = list(find_certificate_codes(title))
    if query.certificate_id and query.certificate_id.strip():
        codes.insert(0, normalize_code(query.certificate_id))
    return ParsedQuery(
        query=query,
        words=words,
        phrases=title_phrases,
        stated_grade=stated_grade,
        codes=tuple(dict.fromkeys(codes)),
        appliance_type=appliance_type,
        accessory=accessory,
        vehicle_context=vocabulary.vehicle_terms.find(title_phrases, title) is not None,
        claims=claims,
    )


def _needs_appliance_word(grade: StatedGrade) -> bool:
    return grade.text.isascii() and "energy" not in grade.text.lower()
