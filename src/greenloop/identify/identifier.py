"""The Identifier: a verdict per product, on evidence, claims and the model.

Decision order for one product:

1. Evidence rules (see `rules.py`) run in a fixed order. A green finding wins,
   then a verified negative (a filing record of grade 3, a taxi MCC), then a
   finding that needs review (an unverifiable registry, an unconfirmed grade).
2. Without a verified finding, claims decide. A specific claim goes to review.
   Generic, offset-neutrality, single-attribute and future-pledge claims are
   flagged, and the item is not green.
3. Otherwise, for an item with no finding and no claim, the category model's
   proposal routes it to review when its probability reaches the threshold in
   `data/settings.yaml`. The model never makes an item green, and it is not
   called for items whose status evidence or claims already set.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from greenloop.categories import Category, Jurisdiction, Status
from greenloop.collector import collector_paused
from greenloop.identify.certified import CertifiedProduct
from greenloop.identify.energy_star import (
    EnergyStarRecord,
    EnergyStarSnapshot,
    read_energy_star_file,
)
from greenloop.identify.evidence import padded_words
from greenloop.identify.model_index import ModelIndex
from greenloop.identify.parsing import (
    ParsedQuery,
    TitleFacts,
    parse_query,
    parse_title,
)
from greenloop.identify.registries import Registries, load_registries
from greenloop.identify.rules import EVIDENCE_RULES, Finding, RuleContext, pick_finding
from greenloop.identify.verdict import ClaimFinding, ProductQuery, Verdict
from greenloop.identify.vocabulary import Vocabulary, shipped_vocabulary
from greenloop.standards import Standard, load_standards

logger = logging.getLogger(__name__)

FLAGGED_CLAIM_KINDS = frozenset(
    {"generic", "neutrality_offset", "single_attribute", "future_pledge"}
)
# Maximum entries of a title cache, about 1 KB each. Single calls share one
# cache per identifier and each batch has its own. A full cache is emptied.
TITLE_CACHE_SIZE = 20_000
# Batches of at least this many queries run with the cyclic garbage collector
# paused: on the 200,000 products of benchmarks/identify_bench.py its full
# collections took about 40 % of the batch time, and identification leaves no
# cyclic garbage there (a `gc.collect()` after a batch finds none).
GC_PAUSE_MIN_QUERIES = 1_000
# Evidence categories whose certificate is an ISO 14024 Type I ecolabel and so
# can back a generic claim, when their standard says so.
TYPE_ONE_CATEGORIES = (Category.ENVIRONMENTAL_LABEL, Category.EU_ECOLABEL)


class ProposesCategories(Protocol):
    """The part of the category model the identifier calls."""

    def propose(self, titles: Sequence[str]) -> Sequence[Any]: ...


class _Proposal(NamedTuple):
    category: Category | None
    probability: float


class Identifier:
    """Identify products against one jurisdiction's standards and registries."""

    def __init__(
        self,
        context: RuleContext,
        model: ProposesCategories | None,
        model_version: str | None,
    ) -> None:
        self._context = context
        self._model = model
        self._model_version = model_version
        self._versions: dict[str, str | None] = {}
        # Single calls reuse the parse and proposal of a title seen before.
        self._title_cache: dict[tuple[str, str | None], TitleFacts] = {}
        self._proposal_cache: dict[str, _Proposal | None] = {}

    @classmethod
    def load(
        cls,
        jurisdiction: str = "cn",
        registry_dir: Path | None = None,
        energy_star_files: Sequence[Path] = (),
        certified_products: Iterable[CertifiedProduct] = (),
        as_of: date | None = None,
        model: ProposesCategories | None = None,
    ) -> Identifier:
        """Load standards, registries, ENERGY STAR records and the category model.

        `as_of` is the identification date for expiry and staleness (default:
        today in UTC). `model` replaces the shipped category model, for tests.
        """
        code = Jurisdiction(jurisdiction)
        standards = load_standards(code)
        registries = load_registries(registry_dir) if registry_dir else Registries()
        energy_star, snapshots = _load_energy_star(energy_star_files)
        certified = {(item.merchant_id, item.sku): item for item in certified_products}
        context = RuleContext(
            jurisdiction=code,
            standards=standards,
            registries=registries,
            energy_star=energy_star,
            energy_star_snapshots=snapshots,
            certified=certified,
            vocabulary=shipped_vocabulary(),
            as_of=as_of or datetime.now(UTC).date(),
            energy_star_brands=_brands_by_first_word(snapshots.values()),
        )
        if model is not None:
            return cls(context, model, getattr(model, "version", "supplied"))
        shipped, version = _load_shipped_model()
        return cls(context, shipped, version)

    def with_certified_products(
        self,
        certified_products: Iterable[CertifiedProduct],
        as_of: date | None = None,
    ) -> Identifier:
        """Return an identifier sharing this one's loaded data, with other products.

        Standards, registries, ENERGY STAR records and the model are shared, so
        a service can rebuild its identifier cheaply when certifications change.
        """
        certified = {(item.merchant_id, item.sku): item for item in certified_products}
        context = replace(
            self._context, certified=certified, as_of=as_of or self._context.as_of
        )
        return Identifier(context, self._model, self._model_version)

    @property
    def as_of(self) -> date:
        """The identification date for expiry and staleness."""
        return self._context.as_of

    @property
    def vocabulary(self) -> Vocabulary:
        """The identifier's thresholds and product-type words."""
        return self._context.vocabulary

    def versions(self) -> dict[str, str]:
        """Return standard versions, registry snapshot dates and the model version."""
        found: dict[str, str] = {}
        for standard in sorted(
            self._context.standards.values(), key=lambda item: item.id
        ):
            found[standard.id] = standard.version(self.as_of) or "not in force"
        found.update(self._context.registries.versions())
        for product_type, snapshot in sorted(
            self._context.energy_star_snapshots.items()
        ):
            found[f"registry.energy_star.{product_type}"] = (
                snapshot.snapshot_date.isoformat()
            )
        found["model"] = self._model_version or "not loaded"
        return found

    def identify(self, query: ProductQuery) -> Verdict:
        """Return the verdict for one product."""
        parsed, finding = self._evidence(query, self._title_cache)
        proposal = None
        if _needs_model(parsed, finding):
            proposal = self._proposals([parsed.title], self._proposal_cache)[0]
        return self._verdict(parsed, finding, proposal)

    def identify_many(self, queries: Sequence[ProductQuery]) -> list[Verdict]:
        """Return one verdict per query, calling the model once for the batch.

        Products whose evidence fields are equal (see `_evidence_key`) share
        one verdict object, products that share a title and brand share one
        parse, and the model is called with each distinct title once.
        """
        if len(queries) < GC_PAUSE_MIN_QUERIES:
            return self._identify_batch(queries)
        with collector_paused():
            return self._identify_batch(queries)

    def _identify_batch(self, queries: Sequence[ProductQuery]) -> list[Verdict]:
        titles: dict[tuple[str, str | None], TitleFacts] = {}
        first_of_key: dict[tuple[Any, ...], int] = {}
        positions: list[int] = []
        evaluated: list[tuple[ParsedQuery, Finding | None]] = []
        for query in queries:
            key = self._evidence_key(query)
            position = first_of_key.get(key)
            if position is None:
                position = first_of_key[key] = len(evaluated)
                evaluated.append(self._evidence(query, titles))
            positions.append(position)

        pending = [
            index
            for index, (parsed, finding) in enumerate(evaluated)
            if _needs_model(parsed, finding)
        ]
        proposals: dict[int, _Proposal | None] = {}
        if pending:
            pending_titles = [evaluated[index][0].title for index in pending]
            found = self._proposals(pending_titles, {})
            proposals = dict(zip(pending, found, strict=True))
        verdicts = [
            self._verdict(parsed, finding, proposals.get(index))
            for index, (parsed, finding) in enumerate(evaluated)
        ]
        return [verdicts[position] for position in positions]

    def _evidence_key(self, query: ProductQuery) -> tuple[Any, ...]:
        """Return the query fields that evidence rules read, for sharing verdicts.

        The SKU and merchant id count only where a certified product or a
        registered merchant makes them evidence; the merchant name never does.
        """
        certified = (query.merchant_id, query.sku) in self._context.certified
        registered = query.merchant_id in self._context.registries.merchants
        return (
            query.title,
            query.brand,
            query.mcc,
            query.merchant_id if certified or registered else None,
            query.sku if certified else None,
            query.model_number,
            query.energy_label_grade,
            query.certificate_id,
            query.label_codes,
        )

    def _evidence(
        self,
        query: ProductQuery,
        titles: dict[tuple[str, str | None], TitleFacts],
    ) -> tuple[ParsedQuery, Finding | None]:
        key = (query.title or "", query.brand)
        facts = titles.get(key)
        if facts is None:
            if len(titles) >= TITLE_CACHE_SIZE:
                titles.clear()
            facts = parse_title(key[0], key[1], self._context.vocabulary, _find_claims)
            titles[key] = facts
        parsed = parse_query(query, facts)
        findings = []
        for rule in EVIDENCE_RULES:
            finding = rule(parsed, self._context)
            if finding is None:
                continue
            if finding.status is Status.GREEN:
                return parsed, finding
            findings.append(finding)
        return parsed, pick_finding(findings)

    def _proposals(
        self, titles: list[str], cache: dict[str, _Proposal | None]
    ) -> list[_Proposal | None]:
        if self._model is None:
            return [None for _ in titles]
        missing = list(dict.fromkeys(title for title in titles if title not in cache))
        if missing:
            if len(cache) + len(missing) > TITLE_CACHE_SIZE:
                cache.clear()
            for title, item in zip(missing, self._model.propose(missing), strict=True):
                cache[title] = _Proposal(
                    getattr(item, "category", None),
                    float(getattr(item, "probability", 0.0)),
                )
        return [cache[title] for title in titles]

    def _verdict(
        self, parsed: ParsedQuery, finding: Finding | None, proposal: _Proposal | None
    ) -> Verdict:
        if finding is not None and (finding.status is Status.GREEN or finding.decisive):
            return self._evidence_verdict(parsed, finding)
        return self._unevidenced_verdict(parsed, finding, proposal)

    def _evidence_verdict(self, parsed: ParsedQuery, finding: Finding) -> Verdict:
        reasons = list(finding.reasons)
        claims = parsed.claims + finding.flags
        if finding.status is Status.GREEN:
            reasons.extend(self._unbacked_claim_reasons(finding, parsed.claims))
        standard = self._standard(finding.category)
        return Verdict(
            status=finding.status,
            category=finding.category,
            standard_id=standard.id if standard else None,
            standard_version=self._version(standard),
            evidence=finding.evidence,
            claims=claims,
            reasons=tuple(reasons),
            top_tier=finding.top_tier,
            attributes=dict(finding.attributes),
        )

    def _unbacked_claim_reasons(
        self, finding: Finding, claims: tuple[ClaimFinding, ...]
    ) -> list[str]:
        generic = [claim for claim in claims if claim.kind in FLAGGED_CLAIM_KINDS]
        if not generic:
            return []
        backed = (
            finding.category in TYPE_ONE_CATEGORIES
            and bool(self._context.parameter(finding.category, "backs_generic_claims"))
            if finding.category
            else False
        )
        if backed:
            return []
        terms = ", ".join(f"'{claim.term}'" for claim in generic)
        return [
            f"Flagged: the claim {terms} goes beyond the evidence, which is not an "
            "ISO 14024 Type I ecolabel; the purchase still qualifies on its evidence."
        ]

    def _unevidenced_verdict(
        self, parsed: ParsedQuery, finding: Finding | None, proposal: _Proposal | None
    ) -> Verdict:
        reasons: list[str] = list(finding.reasons) if finding else []
        status = finding.status if finding else Status.NOT_GREEN
        category = finding.category if finding else None
        specific = [claim for claim in parsed.claims if claim.kind == "specific"]
        flagged = [
            claim for claim in parsed.claims if claim.kind in FLAGGED_CLAIM_KINDS
        ]

        if specific:
            terms = ", ".join(f"'{claim.term}'" for claim in specific)
            reasons.append(
                f"The text makes the specific claim {terms} without verified evidence; "
                "a reviewer must ask for it."
            )
            status = Status.NEEDS_REVIEW
            category = category or _claim_category(specific[0])
        if flagged:
            terms = ", ".join(f"'{claim.term}' ({claim.kind})" for claim in flagged)
            reasons.append(
                f"Flagged: the claim {terms} has no verified evidence behind it."
            )

        model_category, model_score = None, None
        if proposal is not None:
            model_category, model_score = proposal.category, proposal.probability
            routed = self._route_by_model(status, flagged, specific, proposal)
            if routed:
                status = Status.NEEDS_REVIEW
                reasons.append(routed)
        if status is Status.NOT_GREEN and not reasons:
            reasons.append("No evidence, claim or likely category was found.")
        standard = self._standard(category)
        return Verdict(
            status=status,
            category=category,
            standard_id=standard.id if standard else None,
            standard_version=self._version(standard),
            evidence=finding.evidence if finding else (),
            claims=parsed.claims + (finding.flags if finding else ()),
            model_category=model_category,
            model_score=model_score,
            reasons=tuple(reasons),
            attributes=dict(finding.attributes) if finding else {},
        )

    def _route_by_model(
        self,
        status: Status,
        flagged: list[ClaimFinding],
        specific: list[ClaimFinding],
        proposal: _Proposal,
    ) -> str | None:
        threshold = self._context.vocabulary.model_review_min_probability
        if status is not Status.NOT_GREEN or (flagged and not specific):
            return None
        if proposal.category is None or proposal.probability < threshold:
            return None
        return (
            f"The category model proposes {proposal.category} with probability "
            f"{proposal.probability:.2f} (threshold {threshold:.2f}); a reviewer "
            "should ask the merchant for evidence."
        )

    def _version(self, standard: Standard | None) -> str | None:
        if standard is None:
            return None
        if standard.id not in self._versions:
            self._versions[standard.id] = standard.version(self.as_of)
        return self._versions[standard.id]

    def _standard(self, category: Category | None) -> Standard | None:
        if category is None:
            return None
        return self._context.standards.get(category)


def _needs_model(parsed: ParsedQuery, finding: Finding | None) -> bool:
    # The model can only move a not_green item without claims to review, so it
    # is not called when evidence or a claim has already set the status. It
    # adds about 0.07 ms to a single call (median, benchmarks/identify_bench.py).
    if finding is not None and finding.status is not Status.NOT_GREEN:
        return False
    if finding is not None and finding.decisive:
        return False
    return not parsed.claims


def _find_claims(text: str, brand: str | None) -> tuple[ClaimFinding, ...]:
    from greenloop.identify.claims import find_claims

    return find_claims(text, brand=brand)


def _claim_category(claim: ClaimFinding) -> Category | None:
    from greenloop.identify.claims import claim_category

    return claim_category(claim)


def _load_energy_star(
    paths: Sequence[Path],
) -> tuple[ModelIndex[EnergyStarRecord], dict[str, EnergyStarSnapshot]]:
    index: ModelIndex[EnergyStarRecord] = ModelIndex()
    snapshots: dict[str, EnergyStarSnapshot] = {}
    for path in paths:
        snapshot = read_energy_star_file(Path(path))
        previous = snapshots.get(snapshot.product_type)
        if previous is None or snapshot.snapshot_date < previous.snapshot_date:
            # With several files of one type, the oldest date decides staleness.
            snapshots[snapshot.product_type] = snapshot
        for record in snapshot.records:
            index.add(record.model_number, record)
    return index, snapshots


def _brands_by_first_word(
    snapshots: Iterable[EnergyStarSnapshot],
) -> dict[str, tuple[str, ...]]:
    """Return each brand's words, padded with spaces, keyed by its first word."""
    brands: dict[str, set[str]] = {}
    for snapshot in snapshots:
        for record in snapshot.records:
            brand_words = padded_words(record.brand)
            if brand_words.strip():
                first = brand_words.split()[0]
                brands.setdefault(first, set()).add(brand_words)
    return {first: tuple(sorted(group)) for first, group in brands.items()}


def _load_shipped_model() -> tuple[ProposesCategories | None, str | None]:
    try:
        from greenloop.identify.model import CategoryModel
    except ImportError as error:
        logger.warning(
            "category model not available (%s); items without evidence are not "
            "routed to review by it",
            error,
        )
        return None, None
    try:
        model = CategoryModel.load()
    except (OSError, ValueError) as error:
        logger.warning(
            "category model artifact could not be loaded (%s); items without "
            "evidence are not routed to review by it",
            error,
        )
        return None, None
    return model, str(getattr(model, "version", "unknown"))
