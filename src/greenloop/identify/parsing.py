"""The facts a product query states, parsed once and shared by every rule.

The facts that depend only on the title and brand (`TitleFacts`) are kept apart
from the query, so products that share a title share one parse.
"""

from __future__ import annotations

from collections.abc import Callable
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

ClaimFinder = Callable[[str, str | None], tuple[ClaimFinding, ...]]


@dataclass(slots=True)
class TitleFacts:
    """The words, grade, codes, product type and claims of a title and brand."""

    title: str
    words: str
    phrases: frozenset[str]
    stated_grade: StatedGrade | None
    codes: tuple[str, ...]
    appliance_type: str | None
    accessory: bool
    vehicle_context: bool
    claims: tuple[ClaimFinding, ...]
    _candidates: ModelCandidates | None = field(default=None, repr=False)

    def candidates(self) -> ModelCandidates:
        """Return the model-number candidates of the title, computed on first use."""
        if self._candidates is None:
            self._candidates = model_candidates(self.title)
        return self._candidates


@dataclass(slots=True)
class ParsedQuery:
    """A product query with the parsed facts of its title.

    Not frozen, because a batch creates one per product and a frozen
    dataclass is about three times slower to create. Rules only read it.
    """

    query: ProductQuery
    facts: TitleFacts
    codes: tuple[str, ...]

    @property
    def title(self) -> str:
        """The product title as given."""
        return self.facts.title

    @property
    def words(self) -> str:
        """The title as upper-case words between single spaces."""
        return self.facts.words

    @property
    def phrases(self) -> frozenset[str]:
        """The title's word n-grams that term lists can match."""
        return self.facts.phrases

    @property
    def claims(self) -> tuple[ClaimFinding, ...]:
        """The green claims found in the title."""
        return self.facts.claims

    @property
    def stated_grade(self) -> StatedGrade | None:
        """The energy-label grade the title states, if any."""
        return self.facts.stated_grade

    @property
    def appliance_type(self) -> str | None:
        """The appliance type the title names, if any."""
        return self.facts.appliance_type

    @property
    def accessory(self) -> bool:
        """Whether the title names an accessory of the appliance, not the appliance."""
        return self.facts.accessory

    @property
    def vehicle_context(self) -> bool:
        """Whether the title names a vehicle."""
        return self.facts.vehicle_context

    def candidates(self) -> ModelCandidates:
        """Return the model-number candidates of the title."""
        return self.facts.candidates()

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


def parse_title(
    title: str, brand: str | None, vocabulary: Vocabulary, find_claims: ClaimFinder
) -> TitleFacts:
    """Parse a title into grades, codes, product type words and claims."""
    words = padded_words(title)
    title_phrases = vocabulary.phrases(words)
    # Most titles contain no term at all, which one set test settles.
    may_match = vocabulary.may_match(title_phrases, title)
    appliance_type = (
        vocabulary.appliance_types.find(title_phrases, title) if may_match else None
    )
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
    return TitleFacts(
        title=title,
        words=words,
        phrases=title_phrases,
        stated_grade=stated_grade,
        codes=find_certificate_codes(title),
        appliance_type=appliance_type,
        accessory=accessory,
        vehicle_context=may_match
        and vocabulary.vehicle_terms.find(title_phrases, title) is not None,
        claims=find_claims(title, brand),
    )


def parse_query(query: ProductQuery, facts: TitleFacts) -> ParsedQuery:
    """Combine a query with its title's facts and its certificate column."""
    codes = facts.codes
    if query.certificate_id and query.certificate_id.strip():
        codes = tuple(dict.fromkeys((normalize_code(query.certificate_id), *codes)))
    return ParsedQuery(query=query, facts=facts, codes=codes)


def _needs_appliance_word(grade: StatedGrade) -> bool:
    return grade.text.isascii() and "energy" not in grade.text.lower()
