"""Evidence rules: each checks one kind of evidence and returns a finding or None.

A rule returns `green` only on verified evidence: a registry record, a
certified product, a card-network merchant category code or a registered
merchant. A registry that is missing or stale turns its rule's result into
`needs_review` with the reason "unverifiable". A `decisive` finding is a
negative that outranks claims and the model: a filing record of grade 3, a taxi
MCC, or a seller's own statement of a non-qualifying grade.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from greenloop.categories import Category, Jurisdiction, Status
from greenloop.identify.certified import CertifiedProduct
from greenloop.identify.energy_star import EnergyStarRecord, EnergyStarSnapshot
from greenloop.identify.evidence import (
    ECOLABEL_CODE,
    GREEN_FOOD_CODE,
    LEGACY_GREEN_FOOD_CODE,
    ORGANIC_CODE,
    brand_in_text,
    green_food_code_date,
)
from greenloop.identify.model_index import ModelIndex
from greenloop.identify.parsing import ParsedQuery
from greenloop.identify.registries import (
    CODE_REGISTRIES,
    CertificateRecord,
    EnergyLabelRecord,
    Registries,
    RegistryState,
    brand_matches,
)
from greenloop.identify.verdict import ClaimFinding, Evidence
from greenloop.identify.vocabulary import Vocabulary
from greenloop.standards import Standard

UNVERIFIABLE = "unverifiable"


@dataclass(frozen=True, slots=True)
class Finding:
    """The conclusion of one rule about a query."""

    status: Status
    category: Category | None
    reasons: tuple[str, ...]
    evidence: tuple[Evidence, ...] = ()
    attributes: dict[str, Any] = field(default_factory=dict)
    top_tier: bool = False
    decisive: bool = False
    flags: tuple[ClaimFinding, ...] = ()


@dataclass
class RuleContext:
    """Everything the rules read besides the query: standards, registries, date."""

    jurisdiction: Jurisdiction
    standards: dict[Category, Standard]
    registries: Registries
    energy_star: ModelIndex[EnergyStarRecord]
    energy_star_snapshots: dict[str, EnergyStarSnapshot]
    certified: dict[tuple[str, str], CertifiedProduct]
    vocabulary: Vocabulary
    as_of: date
    energy_star_brands: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Not an init field, so dataclasses.replace (with a new as_of) starts empty.
    _parameters: dict[tuple[Category, str], Any] = field(
        default_factory=dict, init=False, repr=False
    )
    _code_forms: list[tuple[str, list[re.Pattern[str]]]] | None = field(
        default=None, init=False, repr=False
    )

    def parameter(self, category: Category, name: str) -> Any:
        """Return a parameter of this jurisdiction's standard, or None without one.

        Values are cached, because `as_of` is fixed for the context's lifetime.
        """
        key = (category, name)
        if key not in self._parameters:
            standard = self.standards.get(category)
            in_force = standard is not None and standard.in_force(self.as_of)
            self._parameters[key] = (
                standard.value(name, self.as_of) if standard and in_force else None
            )
        return self._parameters[key]

    def registry_source(self, name: str) -> str:
        """Return a registry's source line for evidence: name, date and origin."""
        spec = self.registries.specs[name]
        return (
            f"{name} registry snapshot {spec.snapshot_date.isoformat()} ({spec.source})"
        )


Rule = Callable[[ParsedQuery, RuleContext], "Finding | None"]


def unverifiable(reason: str, category: Category | None) -> Finding:
    """Return a needs_review finding for evidence that no registry can check."""
    return Finding(
        Status.NEEDS_REVIEW, category, (f"{UNVERIFIABLE}: {reason}.",), decisive=False
    )


def certified_product_rule(parsed: ParsedQuery, context: RuleContext) -> Finding | None:
    """Match the query's merchant and SKU against products certified on the platform."""
    query = parsed.query
    if not query.merchant_id or not query.sku:
        return None
    product = context.certified.get((query.merchant_id, query.sku))
    if product is None:
        return None
    valid_until = product.valid_until.isoformat() if product.valid_until else None
    evidence = Evidence(
        kind="certified_product",
        value=product.certification_id,
        source="greenloop certification workflow",
        verified=True,
        attributes={"valid_until": valid_until, **product.attributes},
    )
    if product.valid_until is not None and product.valid_until < context.as_of:
        return Finding(
            Status.NEEDS_REVIEW,
            product.category,
            (
                f"Certification {product.certification_id} of SKU {query.sku} expired "
                f"on {valid_until}; the merchant must renew it.",
            ),
            (evidence,),
        )
    return Finding(
        Status.GREEN,
        product.category,
        (
            f"SKU {query.sku} of merchant {query.merchant_id} holds certification "
            f"{product.certification_id} from the greenloop certification workflow.",
        ),
        (evidence,),
        attributes=dict(product.attributes),
    )


def certificate_rule(parsed: ParsedQuery, context: RuleContext) -> Finding | None:
    """Look up certificate codes from the title and the certificate column."""
    codes = list(parsed.codes)
    for label in parsed.query.label_codes:
        if _code_registries(label, context):
            codes.append(label.strip().upper())
    if not codes:
        return None
    findings = [_check_code(code, parsed, context) for code in dict.fromkeys(codes)]
    return pick_finding(findings)


def _code_registries(code: str, context: RuleContext) -> tuple[str, ...]:
    """Return the registries that can hold a code of this form."""
    for registry, patterns in _code_forms(context):
        if any(pattern.fullmatch(code) for pattern in patterns):
            return (registry,)
    if any(char.isdigit() for char in code) and len(code) >= 6 and ":" not in code:
        return ("green_product", "environmental_label", "organic", "eu_ecolabel")
    return ()


def _code_forms(context: RuleContext) -> list[tuple[str, list[re.Pattern[str]]]]:
    """Return each registry's compiled code forms, built once per context.

    The jurisdiction's standards give the code forms; the forms in `evidence.py`
    stand in where this jurisdiction has no standard for the category.
    """
    if context._code_forms is not None:
        return context._code_forms
    forms: list[tuple[str, list[str | re.Pattern[str]]]] = [
        (
            "organic",
            [_form(context, Category.ORGANIC_FOOD, "code_pattern", ORGANIC_CODE)],
        ),
        (
            "green_food",
            [
                _form(context, Category.GREEN_FOOD, "code_pattern", GREEN_FOOD_CODE),
                _form(
                    context,
                    Category.GREEN_FOOD,
                    "legacy_code_pattern",
                    LEGACY_GREEN_FOOD_CODE,
                ),
            ],
        ),
        (
            "eu_ecolabel",
            [_form(context, Category.EU_ECOLABEL, "code_pattern", ECOLABEL_CODE)],
        ),
    ]
    context._code_forms = [
        (registry, [re.compile(pattern) for pattern in patterns])
        for registry, patterns in forms
    ]
    return context._code_forms


def _form(
    context: RuleContext, category: Category, name: str, fallback: re.Pattern[str]
) -> str | re.Pattern[str]:
    pattern = context.parameter(category, name)
    return pattern if pattern else fallback


def _check_code(code: str, parsed: ParsedQuery, context: RuleContext) -> Finding:
    names = _code_registries(code, context) or tuple(CODE_REGISTRIES)
    available = [
        name
        for name in names
        if context.registries.state(name, context.as_of) is RegistryState.AVAILABLE
    ]
    for name in available:
        record = context.registries.certificates.get(name, {}).get(code)
        if record is not None:
            return _certificate_finding(record, parsed, context)
    guessed = CODE_REGISTRIES[names[0]] if len(names) == 1 else None
    unavailable = [name for name in names if name not in available]
    if unavailable:
        reasons = "; ".join(
            context.registries.describe_state(name, context.as_of)
            for name in unavailable
        )
        return unverifiable(
            f"certificate {code} cannot be checked because {reasons}", guessed
        )
    return Finding(
        Status.NEEDS_REVIEW,
        guessed,
        (
            f"Certificate {code} is not in the {', '.join(names)} registry; "
            "a reviewer must check the certificate itself.",
        ),
        (Evidence("certificate", code, ", ".join(names), verified=False),),
    )


def _certificate_finding(
    record: CertificateRecord, parsed: ParsedQuery, context: RuleContext
) -> Finding:
    category = CODE_REGISTRIES[record.registry]
    valid_until = _code_valid_until(record, context)
    evidence = Evidence(
        kind="certificate",
        value=record.code,
        source=context.registry_source(record.registry),
        verified=True,
        attributes={
            "registry": record.registry,
            "product": record.product,
            "holder": record.holder,
            "valid_until": valid_until.isoformat() if valid_until else None,
            "scope": record.scope,
        },
    )
    if valid_until is not None and valid_until < context.as_of:
        return Finding(
            Status.NEEDS_REVIEW,
            category,
            (
                f"Certificate {record.code} ({record.product}, {record.holder}) "
                f"expired on {valid_until.isoformat()}.",
            ),
            (evidence,),
        )
    if record.valid_from is not None and record.valid_from > context.as_of:
        return Finding(
            Status.NEEDS_REVIEW,
            category,
            (
                f"Certificate {record.code} is valid only from "
                f"{record.valid_from.isoformat()}.",
            ),
            (evidence,),
        )
    if category not in context.standards:
        return Finding(
            Status.NEEDS_REVIEW,
            category,
            (
                f"Certificate {record.code} is a valid {category} certificate, but no "
                f"{context.jurisdiction} standard accepts {category}.",
            ),
            (evidence,),
        )
    if category is Category.GREEN_PRODUCT:
        return _green_product_finding(record, parsed, context, evidence)
    return Finding(
        Status.GREEN,
        category,
        (
            f"Certificate {record.code} for {record.product or 'the product'} "
            f"({record.holder or 'holder not recorded'}) is in the {record.registry} "
            "registry and valid.",
        ),
        (evidence,),
    )


def _code_valid_until(record: CertificateRecord, context: RuleContext) -> date | None:
    # A Green Food licence runs 3 years from the year its code encodes, so the
    # registry's date is capped by the code itself.
    dates = [record.valid_until] if record.valid_until else []
    years = context.parameter(Category.GREEN_FOOD, "validity_years")
    if record.registry == "green_food" and years:
        code_date = green_food_code_date(record.code, int(years))
        if code_date is not None:
            dates.append(code_date.latest_valid_until)
    return min(dates) if dates else None


def _green_product_finding(
    record: CertificateRecord,
    parsed: ParsedQuery,
    context: RuleContext,
    evidence: Evidence,
) -> Finding:
    full_scope = context.parameter(Category.GREEN_PRODUCT, "qualifying_scope")
    if record.scope == full_scope:
        return Finding(
            Status.GREEN,
            Category.GREEN_PRODUCT,
            (f"Green-product certificate {record.code} covers the whole product.",),
            (evidence,),
            attributes={"certification_scope": "full"},
        )
    attributes = {
        "certification_scope": "single_attribute",
        "certified_attribute": record.scope,
    }
    generic = [claim for claim in parsed.claims if claim.kind == "generic"]
    if generic:
        # The standard lets a single-attribute certificate back its attribute
        # only, never a whole-product claim, so a listing that makes one
        # misrepresents the certificate and the purchase does not qualify.
        flag = ClaimFinding(
            rule="single_attribute_certificate",
            kind="single_attribute",
            term=generic[0].term,
            message=(
                f"'{generic[0].term}' presents the whole product as green, but "
                f"certificate {record.code} covers only {record.scope}."
            ),
        )
        return Finding(
            Status.NOT_GREEN,
            Category.GREEN_PRODUCT,
            (
                flag.message,
                "A single-attribute certificate never backs a whole-product claim, "
                "so the purchase does not qualify while the listing makes it.",
            ),
            (evidence,),
            attributes=attributes,
            decisive=True,
            flags=(flag,),
        )
    return Finding(
        Status.GREEN,
        Category.GREEN_PRODUCT,
        (
            f"Green-product certificate {record.code} covers the single attribute "
            f"{record.scope}; it qualifies that attribute only.",
        ),
        (evidence,),
        attributes=attributes,
    )


def energy_label_rule(parsed: ParsedQuery, context: RuleContext) -> Finding | None:
    """Confirm an appliance's energy-label grade in the China Energy Label filings."""
    if (
        Category.APPLIANCE not in context.standards
        or not parsed.has_appliance_context()
    ):
        return None
    state = context.registries.state("energy_label", context.as_of)
    stated = _stated_grade(parsed, context)
    if state is not RegistryState.AVAILABLE:
        if stated is None and not (parsed.stated_model() or _has_model_like(parsed)):
            return None
        claim = f"; the stated grade {stated} is a claim" if stated is not None else ""
        reason = context.registries.describe_state("energy_label", context.as_of)
        return unverifiable(f"{reason}{claim}", Category.APPLIANCE)

    record = _match_by_model(
        parsed, context.registries.energy_label, lambda item: item.brand
    )
    if record is not None:
        return _energy_label_finding(record, stated, context)
    if stated is None:
        return None
    max_grade = int(context.parameter(Category.APPLIANCE, "qualifying_max_grade"))
    if stated > max_grade:
        return Finding(
            Status.NOT_GREEN,
            Category.APPLIANCE,
            (
                f"The stated energy-label grade {stated} is worse than grade "
                f"{max_grade}.",
            ),
            decisive=True,
        )
    return Finding(
        Status.NEEDS_REVIEW,
        Category.APPLIANCE,
        (
            f"The title or grade column states energy-label grade {stated}, but no "
            "filing record matches the brand and model; a stated grade is a claim.",
        ),
        (
            Evidence(
                "energy_label", f"grade {stated}", "seller's statement", verified=False
            ),
        ),
    )


def _stated_grade(parsed: ParsedQuery, context: RuleContext) -> int | None:
    # A grade column outside the label's scale is ignored, and the title's
    # stated grade, if any, is used.
    column = parsed.query.energy_label_grade
    grade_count = int(context.parameter(Category.APPLIANCE, "grade_count"))
    if column is not None and 1 <= int(column) <= grade_count:
        return int(column)
    return parsed.stated_grade.grade if parsed.stated_grade else None


def _has_model_like(parsed: ParsedQuery) -> bool:
    return any(len(candidate) >= 5 for candidate in parsed.candidates().with_digits)


def _match_by_model(
    parsed: ParsedQuery, index: ModelIndex[Any], brand_of: Callable[[Any], str]
) -> Any:
    """Return the first record matching the model number whose brand is stated."""
    candidates = parsed.candidates()
    stated = parsed.stated_model()
    for candidate in ([stated] if stated else []) + list(candidates.with_digits):
        for record in index.lookup(candidate):
            if _brand_stated(parsed, brand_of(record)):
                return record
    for candidate in candidates.without_digits:
        for record in index.lookup_name(candidate):
            if _brand_stated(parsed, brand_of(record)):
                return record
    return None


def _brand_stated(parsed: ParsedQuery, brand: str) -> bool:
    return brand_matches(brand, parsed.query.brand) or brand_in_text(
        brand, parsed.words, parsed.title
    )


def _energy_label_finding(
    record: EnergyLabelRecord, stated: int | None, context: RuleContext
) -> Finding:
    max_grade = int(context.parameter(Category.APPLIANCE, "qualifying_max_grade"))
    top_grade = int(context.parameter(Category.APPLIANCE, "top_tier_grade"))
    covered = context.parameter(Category.APPLIANCE, "appliance_types") or []
    editions = context.parameter(Category.APPLIANCE, "label_standards") or {}
    valid_until = record.valid_until.isoformat() if record.valid_until else None
    edition = editions.get(record.appliance_type)
    attributes = {
        "appliance_type": record.appliance_type,
        "energy_label_grade": record.grade,
        "energy_label_standard": edition,
    }
    evidence = Evidence(
        kind="energy_label",
        value=f"{record.brand} {record.model_number} grade {record.grade}",
        source=context.registry_source("energy_label"),
        verified=True,
        attributes={"valid_until": valid_until, **attributes},
    )

    reasons = []
    if stated is not None and stated != record.grade:
        reasons.append(
            f"The title states grade {stated}, but the filing record gives grade "
            f"{record.grade}; the filing record is used."
        )

    if record.valid_until is not None and record.valid_until < context.as_of:
        reasons.append(
            f"The filing record of {record.model_number} expired on {valid_until}."
        )
        return Finding(
            Status.NEEDS_REVIEW, Category.APPLIANCE, tuple(reasons), (evidence,)
        )

    if record.appliance_type not in covered:
        reasons.append(
            f"{record.appliance_type} is not one of the appliance classes the "
            f"{context.jurisdiction}.appliance standard covers."
        )
        return Finding(
            Status.NOT_GREEN,
            Category.APPLIANCE,
            tuple(reasons),
            (evidence,),
            decisive=True,
        )

    if record.grade > max_grade:
        reasons.append(
            f"The filing record gives {record.brand} {record.model_number} "
            f"energy-label grade {record.grade}, worse than the qualifying grade "
            f"{max_grade}."
        )
        return Finding(
            Status.NOT_GREEN,
            Category.APPLIANCE,
            tuple(reasons),
            (evidence,),
            attributes=attributes,
            decisive=True,
        )

    reasons.append(
        f"The filing record gives {record.brand} {record.model_number} "
        f"({record.appliance_type}) energy-label grade {record.grade}"
        + (f" under {edition}" if edition else "")
        + (", the top tier." if record.grade <= top_grade else ".")
    )
    return Finding(
        Status.GREEN,
        Category.APPLIANCE,
        tuple(reasons),
        (evidence,),
        attributes=attributes,
        top_tier=record.grade <= top_grade,
    )


def energy_star_rule(parsed: ParsedQuery, context: RuleContext) -> Finding | None:
    """Match the brand and model number against the loaded ENERGY STAR records."""
    accepted = Category.ENERGY_STAR in context.standards
    # A title match needs the brand, so titles that name no ENERGY STAR brand
    # skip the model-number search.
    brand_possible = bool(parsed.query.brand) or _names_brand(
        parsed, context.energy_star_brands
    )
    record = (
        _match_by_model(parsed, context.energy_star, lambda item: item.brand)
        if context.energy_star.size and brand_possible
        else None
    )
    if record is None:
        return _energy_star_unmatched(parsed, context) if accepted else None

    snapshot = context.energy_star_snapshots[record.product_type]
    age = (context.as_of - snapshot.snapshot_date).days
    attributes = {
        "product_type": record.product_type,
        "annual_kwh": _float(record.annual_kwh),
        "federal_standard_kwh": _float(record.federal_standard_kwh),
        "federal_standard_kwh_basis": record.federal_standard_kwh_basis,
        "energy_star_id": record.energy_star_id,
    }
    evidence = Evidence(
        kind="energy_star",
        value=f"{record.brand} {record.model_number}",
        source=(
            f"ENERGY STAR {record.product_type} records of "
            f"{snapshot.snapshot_date.isoformat()} ({snapshot.path.name})"
        ),
        verified=True,
        attributes=attributes,
    )
    described = (
        f"{record.brand} {record.model_number} is ENERGY STAR certified "
        f"(ID {record.energy_star_id or 'not recorded'})"
    )
    if not accepted:
        return Finding(
            Status.NEEDS_REVIEW,
            Category.ENERGY_STAR,
            (
                f"{described}, but no {context.jurisdiction} standard accepts ENERGY "
                "STAR certification.",
            ),
            (evidence,),
            attributes=attributes,
        )
    max_age = context.vocabulary.energy_star_max_age_days
    if age > max_age:
        return Finding(
            Status.NEEDS_REVIEW,
            Category.ENERGY_STAR,
            (
                f"{UNVERIFIABLE}: {described} in records of "
                f"{snapshot.snapshot_date.isoformat()}, which are {age} days old, over "
                f"the maximum of {max_age} days.",
            ),
            (evidence,),
            attributes=attributes,
        )
    return Finding(
        Status.GREEN,
        Category.ENERGY_STAR,
        (f"{described}.",),
        (evidence,),
        attributes=attributes,
    )


def _names_brand(parsed: ParsedQuery, brands: dict[str, tuple[str, ...]]) -> bool:
    for word in parsed.phrases & brands.keys():
        for brand_words in brands[word]:
            if brand_words in parsed.words:
                return True
    return False


def _energy_star_unmatched(parsed: ParsedQuery, context: RuleContext) -> Finding | None:
    product_type = context.vocabulary.energy_star_product_types.find(
        parsed.phrases, parsed.title
    )
    if product_type is None or parsed.accessory:
        return None
    snapshot = context.energy_star_snapshots.get(product_type)
    if snapshot is None and (parsed.stated_model() or _has_model_like(parsed)):
        return unverifiable(
            f"no ENERGY STAR {product_type} records are loaded to check the model",
            Category.ENERGY_STAR,
        )
    return None


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def nev_rule(parsed: ParsedQuery, context: RuleContext) -> Finding | None:
    """Match a vehicle's brand and model against the NEV catalogue."""
    if Category.NEW_ENERGY_VEHICLE not in context.standards:
        return None
    vehicle_mccs = context.parameter(Category.SECOND_HAND, "vehicle_mccs") or []
    used_vehicle = parsed.query.mcc is not None and parsed.query.mcc in vehicle_mccs
    context_present = parsed.vehicle_context or used_vehicle
    state = context.registries.state("nev_models", context.as_of)
    if state is not RegistryState.AVAILABLE:
        if not context_present:
            return None
        reason = context.registries.describe_state("nev_models", context.as_of)
        return unverifiable(reason, Category.NEW_ENERGY_VEHICLE)

    record = _match_by_model(
        parsed, context.registries.nev_models, lambda item: item.brand
    )
    if record is None:
        if used_vehicle:
            return Finding(
                Status.NOT_GREEN,
                Category.NEW_ENERGY_VEHICLE,
                (
                    "A used vehicle qualifies only as a catalogued new-energy "
                    "vehicle, and no catalogue entry matches the brand and model.",
                ),
            )
        return None
    attributes: dict[str, Any] = {"vehicle_kind": record.vehicle_kind}
    if used_vehicle:
        attributes["second_hand"] = True
    evidence = Evidence(
        kind="nev_catalogue",
        value=f"{record.brand} {record.model}",
        source=context.registry_source("nev_models"),
        verified=True,
        attributes={
            "catalogue_batch": record.catalogue_batch,
            "catalogue_date": record.catalogue_date.isoformat(),
            "vehicle_kind": record.vehicle_kind,
        },
    )
    return Finding(
        Status.GREEN,
        Category.NEW_ENERGY_VEHICLE,
        (
            f"{record.brand} {record.model} ({record.vehicle_kind}) is in catalogue "
            f"batch {record.catalogue_batch} of {record.catalogue_date.isoformat()}.",
        ),
        (evidence,),
        attributes=attributes,
    )


def mcc_rule(parsed: ParsedQuery, context: RuleContext) -> Finding | None:
    """Classify the purchase by the merchant category code the card network reports."""
    mcc = parsed.query.mcc
    if mcc is None:
        return None
    modes = context.parameter(Category.PUBLIC_TRANSPORT, "mcc_modes") or {}
    mode = modes.get(mcc) or modes.get(str(mcc))
    if mode is not None:
        return Finding(
            Status.GREEN,
            Category.PUBLIC_TRANSPORT,
            (f"MCC {mcc} is a public-transport code ({mode}).",),
            (_mcc_evidence(mcc, Category.PUBLIC_TRANSPORT, context),),
            attributes={"mode": mode},
        )
    if mcc in (context.parameter(Category.PUBLIC_TRANSPORT, "excluded_mccs") or []):
        # Taxis belong to no green category; the public-transport standard
        # only names them as an exclusion.
        return Finding(
            Status.NOT_GREEN,
            None,
            (f"MCC {mcc} is taxi or limousine travel, which is not public transport.",),
            decisive=True,
        )
    if mcc in (context.parameter(Category.SECOND_HAND, "mccs") or []):
        item_kind = _item_kind(parsed, context)
        return Finding(
            Status.GREEN,
            Category.SECOND_HAND,
            (f"MCC {mcc} is a used-merchandise store; the item is {item_kind}.",),
            (_mcc_evidence(mcc, Category.SECOND_HAND, context),),
            attributes={"item_kind": item_kind},
        )
    return None


def _mcc_evidence(mcc: int, category: Category, context: RuleContext) -> Evidence:
    standard = context.standards[category]
    return Evidence(
        kind="mcc",
        value=str(mcc),
        source=f"{standard.id} {standard.version(context.as_of)}",
        verified=True,
    )


def _item_kind(parsed: ParsedQuery, context: RuleContext) -> str:
    allowed = context.parameter(Category.SECOND_HAND, "item_kinds") or []
    found = context.vocabulary.item_kinds.find_all(parsed.phrases, parsed.title)
    kind = found[0] if found else "other"
    return kind if kind in allowed else "other"


def merchant_rule(parsed: ParsedQuery, context: RuleContext) -> Finding | None:
    """Look up the merchant in the operator's merchant registry."""
    merchant_id = parsed.query.merchant_id
    if not merchant_id:
        return None
    record = context.registries.merchants.get(merchant_id)
    if record is None or record.category not in context.standards:
        return None
    if (
        context.registries.state("merchants", context.as_of)
        is not RegistryState.AVAILABLE
    ):
        reason = context.registries.describe_state("merchants", context.as_of)
        return unverifiable(
            f"merchant {merchant_id} is listed, but {reason}", record.category
        )
    attributes: dict[str, Any] = {"merchant_kind": record.kind}
    if record.category is Category.PUBLIC_TRANSPORT:
        modes = set(
            (context.parameter(Category.PUBLIC_TRANSPORT, "mcc_modes") or {}).values()
        )
        attributes["mode"] = record.kind if record.kind in modes else "bus"
    else:
        attributes["item_kind"] = _item_kind(parsed, context)
    return Finding(
        Status.GREEN,
        record.category,
        (
            f"Merchant {record.merchant_name or merchant_id} is registered as "
            f"{record.kind} ({record.category}).",
        ),
        (
            Evidence(
                kind="merchant",
                value=merchant_id,
                source=context.registry_source("merchants"),
                verified=True,
                attributes={"kind": record.kind, "source": record.source},
            ),
        ),
        attributes=attributes,
    )


def label_rule(parsed: ParsedQuery, context: RuleContext) -> Finding | None:
    """Report the sustainability labels the seller states; they are claims.

    Tags that state no environmental attribute (a diet, an origin, the Green
    Dot packaging-fee mark) are ignored. An organic label tag gives the
    finding the category organic_food.
    """
    tags = context.vocabulary.label_tags
    labels = [
        label.strip()
        for label in parsed.query.label_codes
        if label.strip()
        and not _code_registries(label.strip().upper(), context)
        and tags.is_environmental(label)
    ]
    if not labels:
        return None
    organic = any(tags.is_organic(label) for label in labels)
    reasons = []
    evidence = []
    threshold = context.vocabulary.label_min_credibility
    for label in labels:
        score = context.registries.labels.get(label)
        if score is None or score.credibility is None:
            reasons.append(
                f"The seller states label {label}, whose credibility is unknown."
            )
        elif score.credibility >= threshold:
            reasons.append(
                f"The seller states label {score.name or label} (credibility "
                f"{score.credibility}); no registry confirmed it for this product."
            )
        else:
            reasons.append(
                f"The seller states label {score.name or label}, whose credibility "
                f"score {score.credibility} is below {threshold}."
            )
        evidence.append(
            Evidence("label", label, "seller's label_codes", verified=False)
        )
    category = Category.ORGANIC_FOOD if organic else None
    return Finding(Status.NEEDS_REVIEW, category, tuple(reasons), tuple(evidence))


EVIDENCE_RULES: tuple[Rule, ...] = (
    certified_product_rule,
    certificate_rule,
    energy_label_rule,
    energy_star_rule,
    nev_rule,
    mcc_rule,
    merchant_rule,
    label_rule,
)


def pick_finding(findings: list[Finding]) -> Finding | None:
    """Return the strongest finding, with the reasons and evidence of the rest.

    Green wins, then a decisive negative, then a needs_review finding with
    verified evidence, then any needs_review finding. The other findings'
    reasons and evidence are appended, so a reviewer can read all of them.
    """
    if len(findings) < 2:
        # One finding is returned as it is, whatever its status.
        return findings[0] if findings else None
    order: list[Callable[[Finding], bool]] = [
        lambda item: item.status is Status.GREEN,
        lambda item: item.decisive,
        lambda item: (
            item.status is Status.NEEDS_REVIEW
            and any(evidence.verified for evidence in item.evidence)
        ),
        lambda item: item.status is Status.NEEDS_REVIEW,
        lambda item: True,
    ]
    for wanted in order:
        for finding in findings:
            if wanted(finding):
                return _with_others(finding, findings)
    return None


def _with_others(primary: Finding, findings: list[Finding]) -> Finding:
    if primary.status is Status.GREEN or primary.decisive or len(findings) == 1:
        return primary
    reasons = list(primary.reasons)
    evidence = list(primary.evidence)
    for finding in findings:
        if finding is primary:
            continue
        reasons.extend(reason for reason in finding.reasons if reason not in reasons)
        evidence.extend(item for item in finding.evidence if item not in evidence)
    return replace(primary, reasons=tuple(reasons), evidence=tuple(evidence))
