"""Tests of the Identifier: decision order, registries, claims and the model."""

from __future__ import annotations

import gc
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from greenloop.categories import Category, Status
from greenloop.cli import app
from greenloop.identify import CertifiedProduct, Identifier, ProductQuery
from greenloop.identify.identifier import GC_PAUSE_MIN_QUERIES

AS_OF = date(2026, 12, 4)

SNAPSHOT = """\
registries:
  energy_label:
    file: energy_label.csv
    snapshot_date: 2026-11-30
    source: "China Energy Label filing records"
    max_age_days: 90
  organic:
    file: organic.csv
    snapshot_date: 2026-11-30
    source: "Organic certificates"
    max_age_days: 90
  green_food:
    file: green_food.csv
    snapshot_date: 2026-11-30
    source: "Green Food licences"
    max_age_days: 90
  green_product:
    file: green_product.csv
    snapshot_date: 2026-11-30
    source: "Green product certificates"
    max_age_days: 90
  environmental_label:
    file: environmental_label.csv
    snapshot_date: 2026-11-30
    source: "Environmental label certificates"
    max_age_days: 90
  nev_models:
    file: nev_models.csv
    snapshot_date: 2026-11-30
    source: "MIIT catalogue"
    max_age_days: 120
  merchants:
    file: merchants.csv
    snapshot_date: 2026-11-30
    source: "Operator list"
    max_age_days: 365
"""

FILES = {
    "energy_label.csv": "brand,model_number,appliance_type,grade,valid_until\n"
    "海尔,BCD-470WGHTD,refrigerator,1,\n"
    "美的,MG100V11D,washing_machine,2,\n"
    "格力,KFR-35GW,room_air_conditioner,3,\n"
    "飞利浦,HD4000,hair_dryer,1,\n",
    "organic.csv": "code,product,holder,valid_until\n"
    "12319012345678901,有机大米,某农场,2027-06-30\n"
    "12318012345678902,有机茶,某茶园,2025-06-30\n",
    "green_food.csv": "code,product,holder,valid_from,valid_until\n"
    "GF320102250123,茶叶,某茶厂,2025-03-01,2028-02-28\n"
    "GF320102210999,苹果,某果园,2021-03-01,2030-12-31\n",
    "green_product.csv": "code,product,holder,scope,valid_until\n"
    "CGP-2025-0001,实木地板,某木业,full,2028-01-01\n"
    "CGP-2025-0002,涂料,某涂料厂,energy_saving,2028-01-01\n",
    "environmental_label.csv": "code,product,holder,valid_until\n"
    "CEC-2024-7788,打印纸,某纸业,2027-12-31\n",
    "nev_models.csv": "brand,model,vehicle_kind,catalogue_batch,catalogue_date\n"
    "比亚迪,BYD7005BEVA,bev,75,2026-09-01\n",
    "merchants.csv": "merchant_id,merchant_name,category,kind,source\n"
    "m-metro,City Metro,public_transport,metro,operator contract\n"
    "m-xianyu,闲鱼,second_hand,second_hand_platform,operator contract\n",
}


@dataclass(frozen=True)
class FakeProposal:
    category: Category | None
    probability: float


class FakeModel:
    """A category model that proposes by keyword, and counts its calls."""

    version = "fake-1"

    def __init__(self) -> None:
        self.calls = 0

    def propose(self, titles: Sequence[str]) -> list[FakeProposal]:
        self.calls += 1
        proposals = []
        for title in titles:
            if "冰箱" in title or "fridge" in title.lower():
                proposals.append(FakeProposal(Category.APPLIANCE, 0.9))
            elif "lamp" in title.lower():
                proposals.append(FakeProposal(Category.APPLIANCE, 0.3))
            else:
                proposals.append(FakeProposal(None, 0.1))
        return proposals


def write_folder(folder: Path, snapshot: str = SNAPSHOT) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "snapshot.yaml").write_text(snapshot, encoding="utf-8")
    for name, text in FILES.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture
def registry_dir(tmp_path: Path) -> Path:
    return write_folder(tmp_path / "registries")


@pytest.fixture
def identifier(registry_dir: Path) -> Identifier:
    return Identifier.load(
        "cn", registry_dir=registry_dir, as_of=AS_OF, model=FakeModel()
    )


@pytest.fixture
def bare_identifier() -> Identifier:
    return Identifier.load("cn", as_of=AS_OF, model=FakeModel())


def test_registry_grade_one_is_top_tier(identifier: Identifier) -> None:
    verdict = identifier.identify(ProductQuery("海尔冰箱 BCD-470WGHTD 新一级能效"))
    assert verdict.status is Status.GREEN
    assert verdict.category is Category.APPLIANCE
    assert verdict.top_tier is True
    assert verdict.standard_id == "cn.appliance"
    assert verdict.standard_version == "2026-06-01"
    assert verdict.attributes["appliance_type"] == "refrigerator"
    assert verdict.attributes["energy_label_grade"] == 1
    assert verdict.attributes["energy_label_standard"] == "GB 12021.2-2025"


def test_registry_grade_two_not_top(identifier: Identifier) -> None:
    query = ProductQuery("洗衣机 10公斤", brand="美的", model_number="MG100V11D")
    verdict = identifier.identify(query)
    assert verdict.status is Status.GREEN
    assert verdict.top_tier is False
    assert verdict.attributes["energy_label_grade"] == 2


def test_registry_grade_three_overrides_title(identifier: Identifier) -> None:
    verdict = identifier.identify(ProductQuery("格力空调 KFR-35GW 新一级能效 节能"))
    assert verdict.status is Status.NOT_GREEN
    assert verdict.attributes["energy_label_grade"] == 3
    assert any("filing record gives grade 3" in reason for reason in verdict.reasons)


def test_uncovered_appliance_class_not_green(identifier: Identifier) -> None:
    verdict = identifier.identify(ProductQuery("飞利浦 HD4000 电吹风 一级能效"))
    assert verdict.status is Status.NOT_GREEN
    assert any("hair_dryer" in reason for reason in verdict.reasons)


def test_stated_grade_unconfirmed_needs_review(identifier: Identifier) -> None:
    verdict = identifier.identify(ProductQuery("某品牌冰箱 XYZ-123 新一级能效"))
    assert verdict.status is Status.NEEDS_REVIEW
    assert verdict.category is Category.APPLIANCE
    assert verdict.evidence[0].verified is False


def test_grade_column_is_a_claim(identifier: Identifier) -> None:
    verdict = identifier.identify(
        ProductQuery("某品牌洗衣机 ABC-9", energy_label_grade=1)
    )
    assert verdict.status is Status.NEEDS_REVIEW
    assert any("a stated grade is a claim" in reason for reason in verdict.reasons)


def test_stated_grade_three_not_green(identifier: Identifier) -> None:
    verdict = identifier.identify(ProductQuery("某品牌冰箱 XYZ-123 三级能效"))
    assert verdict.status is Status.NOT_GREEN


def test_missing_registry_is_unverifiable(bare_identifier: Identifier) -> None:
    verdict = bare_identifier.identify(ProductQuery("海尔冰箱 BCD-470WGHTD 新一级能效"))
    assert verdict.status is Status.NEEDS_REVIEW
    assert verdict.reasons[0].startswith("unverifiable:")


def test_stale_registry_is_unverifiable(registry_dir: Path) -> None:
    identifier = Identifier.load(
        "cn", registry_dir=registry_dir, as_of=date(2027, 6, 1), model=FakeModel()
    )
    verdict = identifier.identify(ProductQuery("海尔冰箱 BCD-470WGHTD 新一级能效"))
    assert verdict.status is Status.NEEDS_REVIEW
    assert "unverifiable" in verdict.reasons[0]
    assert "over its maximum of 90 days" in verdict.reasons[0]


def test_organic_code_in_registry(identifier: Identifier) -> None:
    verdict = identifier.identify(
        ProductQuery("有机大米 5kg", certificate_id="12319012345678901")
    )
    assert verdict.status is Status.GREEN
    assert verdict.category is Category.ORGANIC_FOOD
    assert verdict.evidence[0].attributes["valid_until"] == "2027-06-30"


def test_organic_code_in_title(identifier: Identifier) -> None:
    verdict = identifier.identify(ProductQuery("有机大米 有机码12319012345678901"))
    assert verdict.status is Status.GREEN


def test_expired_certificate_needs_review(identifier: Identifier) -> None:
    verdict = identifier.identify(
        ProductQuery("有机茶", certificate_id="12318012345678902")
    )
    assert verdict.status is Status.NEEDS_REVIEW
    assert any("expired on 2025-06-30" in reason for reason in verdict.reasons)


def test_unknown_organic_code_needs_review(identifier: Identifier) -> None:
    verdict = identifier.identify(
        ProductQuery("有机大米", certificate_id="99999999999999999")
    )
    assert verdict.status is Status.NEEDS_REVIEW
    assert any("not in the organic registry" in reason for reason in verdict.reasons)


def test_unverifiable_code_without_registry(bare_identifier: Identifier) -> None:
    verdict = bare_identifier.identify(
        ProductQuery("有机大米", certificate_id="12319012345678901")
    )
    assert verdict.status is Status.NEEDS_REVIEW
    assert verdict.reasons[0].startswith("unverifiable:")


def test_green_food_code_valid(identifier: Identifier) -> None:
    verdict = identifier.identify(ProductQuery("绿色食品 茶叶 GF320102250123"))
    assert verdict.status is Status.GREEN
    assert verdict.category is Category.GREEN_FOOD


def test_green_food_code_year_caps_expiry(identifier: Identifier) -> None:
    # The registry lists 2030, but a 2021 code runs at most until the end of 2024.
    verdict = identifier.identify(ProductQuery("苹果 GF320102210999"))
    assert verdict.status is Status.NEEDS_REVIEW
    assert any("expired on 2024-12-31" in reason for reason in verdict.reasons)


def test_full_green_product_certificate(identifier: Identifier) -> None:
    verdict = identifier.identify(
        ProductQuery("实木地板", certificate_id="CGP-2025-0001")
    )
    assert verdict.status is Status.GREEN
    assert verdict.category is Category.GREEN_PRODUCT
    assert verdict.attributes["certification_scope"] == "full"


def test_single_attribute_certificate_qualifies_attribute(
    identifier: Identifier,
) -> None:
    verdict = identifier.identify(
        ProductQuery("内墙涂料", certificate_id="CGP-2025-0002")
    )
    assert verdict.status is Status.GREEN
    assert verdict.attributes["certified_attribute"] == "energy_saving"


def test_single_attribute_with_generic_claim(identifier: Identifier) -> None:
    verdict = identifier.identify(
        ProductQuery("环保内墙涂料", certificate_id="CGP-2025-0002")
    )
    assert verdict.status is Status.NOT_GREEN
    assert verdict.category is Category.GREEN_PRODUCT
    assert any(claim.kind == "single_attribute" for claim in verdict.claims)
    assert verdict.evidence[0].verified is True


def test_environmental_label_backs_generic_claim(identifier: Identifier) -> None:
    verdict = identifier.identify(
        ProductQuery("环保打印纸", certificate_id="CEC-2024-7788")
    )
    assert verdict.status is Status.GREEN
    assert verdict.category is Category.ENVIRONMENTAL_LABEL
    assert not any(reason.startswith("Flagged") for reason in verdict.reasons)


def test_generic_claim_flagged_on_other_evidence(identifier: Identifier) -> None:
    verdict = identifier.identify(ProductQuery("环保 海尔冰箱 BCD-470WGHTD"))
    assert verdict.status is Status.GREEN
    assert any(reason.startswith("Flagged") for reason in verdict.reasons)


def test_nev_catalogue_match(identifier: Identifier) -> None:
    verdict = identifier.identify(ProductQuery("比亚迪 BYD7005BEVA 纯电动轿车"))
    assert verdict.status is Status.GREEN
    assert verdict.category is Category.NEW_ENERGY_VEHICLE
    assert verdict.attributes["vehicle_kind"] == "bev"


def test_vehicle_without_catalogue_unverifiable(bare_identifier: Identifier) -> None:
    verdict = bare_identifier.identify(ProductQuery("某品牌 纯电动轿车 X1"))
    assert verdict.status is Status.NEEDS_REVIEW
    assert verdict.category is Category.NEW_ENERGY_VEHICLE
    assert "unverifiable" in verdict.reasons[0]


def test_used_car_outside_catalogue(identifier: Identifier) -> None:
    verdict = identifier.identify(ProductQuery("二手 大众 朗逸 2019", mcc=5521))
    assert verdict.status is Status.NOT_GREEN


def test_used_nev_is_green(identifier: Identifier) -> None:
    verdict = identifier.identify(ProductQuery("二手 比亚迪 BYD7005BEVA", mcc=5521))
    assert verdict.status is Status.GREEN
    assert verdict.attributes["second_hand"] is True


@pytest.mark.parametrize(
    ("mcc", "mode"), [(4111, "metro"), (4112, "rail"), (4131, "bus")]
)
def test_public_transport_mcc(bare_identifier: Identifier, mcc: int, mode: str) -> None:
    verdict = bare_identifier.identify(ProductQuery("fare", mcc=mcc))
    assert verdict.status is Status.GREEN
    assert verdict.category is Category.PUBLIC_TRANSPORT
    assert verdict.attributes["mode"] == mode


def test_taxi_is_not_public_transport(bare_identifier: Identifier) -> None:
    verdict = bare_identifier.identify(ProductQuery("eco taxi ride", mcc=4121))
    assert verdict.status is Status.NOT_GREEN
    assert verdict.category is None
    assert verdict.standard_id is None


@pytest.mark.parametrize(
    "tag", ["en:green-dot", "fr:triman", "en:vegetarian", "en:no-gluten", "en:kosher"]
)
def test_label_tag_without_environmental_claim(
    bare_identifier: Identifier, tag: str
) -> None:
    verdict = bare_identifier.identify(
        ProductQuery("Pâte à tartiner", label_codes=(tag,))
    )
    assert verdict.status is Status.NOT_GREEN
    assert verdict.evidence == ()


@pytest.mark.parametrize(
    "tag", ["en:organic", "en:eu-organic", "en:nl-bio-01", "en:es-eco-019-ct"]
)
def test_organic_label_tag_category(bare_identifier: Identifier, tag: str) -> None:
    verdict = bare_identifier.identify(
        ProductQuery("Pâte à tartiner", label_codes=("en:vegan", tag))
    )
    assert verdict.status is Status.NEEDS_REVIEW
    assert verdict.category is Category.ORGANIC_FOOD
    assert [item.value for item in verdict.evidence] == [tag]


@pytest.mark.parametrize(
    "tag", ["en:no-palm-oil", "en:utz-certified", "en:low-carbon", "en:unknown-label"]
)
def test_possible_eco_label_tag_reviewed(bare_identifier: Identifier, tag: str) -> None:
    verdict = bare_identifier.identify(
        ProductQuery("Pâte à tartiner", label_codes=(tag,))
    )
    assert verdict.status is Status.NEEDS_REVIEW
    assert verdict.category is None


@pytest.mark.parametrize(
    ("title", "item_kind"),
    [
        ("二手 iPhone 13", "phone"),
        ("二手洗衣机", "appliance"),
        ("旧衣柜", "furniture"),
        ("vintage dress", "clothing"),
        ("old vase", "other"),
    ],
)
def test_second_hand_mcc_item_kind(
    bare_identifier: Identifier, title: str, item_kind: str
) -> None:
    verdict = bare_identifier.identify(ProductQuery(title, mcc=5931))
    assert verdict.status is Status.GREEN
    assert verdict.attributes["item_kind"] == item_kind


def test_registered_merchant_is_green(identifier: Identifier) -> None:
    verdict = identifier.identify(ProductQuery("monthly pass", merchant_id="m-metro"))
    assert verdict.status is Status.GREEN
    assert verdict.attributes["mode"] == "metro"


def test_certified_product_is_green(registry_dir: Path) -> None:
    product = CertifiedProduct(
        "shop-1",
        "sku-9",
        Category.APPLIANCE,
        "cert-77",
        date(2027, 1, 1),
        {"appliance_type": "refrigerator", "energy_label_grade": 1},
    )
    identifier = Identifier.load(
        "cn",
        registry_dir=registry_dir,
        certified_products=[product],
        as_of=AS_OF,
        model=FakeModel(),
    )
    verdict = identifier.identify(
        ProductQuery("冰箱", merchant_id="shop-1", sku="sku-9")
    )
    assert verdict.status is Status.GREEN
    assert verdict.attributes["energy_label_grade"] == 1


def test_expired_certified_product_reviewed(registry_dir: Path) -> None:
    product = CertifiedProduct(
        "shop-1", "sku-9", Category.APPLIANCE, "cert-77", date(2026, 1, 1), {}
    )
    identifier = Identifier.load(
        "cn",
        registry_dir=registry_dir,
        certified_products=[product],
        as_of=AS_OF,
        model=FakeModel(),
    )
    verdict = identifier.identify(
        ProductQuery("lamp", merchant_id="shop-1", sku="sku-9")
    )
    assert verdict.status is Status.NEEDS_REVIEW


@pytest.mark.parametrize(
    "title",
    [
        "GREEN REGENCY TEACUP",
        "NATURAL SLATE HEART CHALKBOARD",
        "RECYCLING BAG",
        "PARTY DECORATION SET",
        "绿色连衣裙",
    ],
)
def test_traps_are_not_claims(bare_identifier: Identifier, title: str) -> None:
    verdict = bare_identifier.identify(ProductQuery(title))
    assert verdict.status is Status.NOT_GREEN
    assert verdict.claims == ()


def test_generic_claim_flagged_not_green(bare_identifier: Identifier) -> None:
    verdict = bare_identifier.identify(ProductQuery("eco-friendly bamboo toothbrush"))
    assert verdict.status is Status.NOT_GREEN
    assert verdict.claims[0].kind == "generic"
    assert verdict.reasons[0].startswith("Flagged")


def test_specific_claim_needs_review(bare_identifier: Identifier) -> None:
    verdict = bare_identifier.identify(ProductQuery("organic cotton tote bag"))
    assert verdict.status is Status.NEEDS_REVIEW
    assert verdict.category is Category.ORGANIC_FOOD or verdict.category is None


def test_model_routes_but_never_greens(bare_identifier: Identifier) -> None:
    verdict = bare_identifier.identify(ProductQuery("小冰箱 宿舍"))
    assert verdict.status is Status.NEEDS_REVIEW
    assert verdict.model_category is Category.APPLIANCE
    assert verdict.model_score == pytest.approx(0.9)


def test_low_probability_not_routed(bare_identifier: Identifier) -> None:
    verdict = bare_identifier.identify(ProductQuery("desk lamp"))
    assert verdict.status is Status.NOT_GREEN
    assert verdict.model_score == pytest.approx(0.3)


def test_model_skipped_on_evidence(bare_identifier: Identifier) -> None:
    verdict = bare_identifier.identify(
        ProductQuery("fridge magnet bus ticket", mcc=4131)
    )
    assert verdict.status is Status.GREEN
    assert verdict.model_score is None


def test_batch_matches_single_calls(identifier: Identifier) -> None:
    queries = [
        ProductQuery("海尔冰箱 BCD-470WGHTD 新一级能效"),
        ProductQuery("eco-friendly bamboo toothbrush"),
        ProductQuery("小冰箱 宿舍"),
        ProductQuery("fare", mcc=4111),
        ProductQuery("GREEN REGENCY TEACUP"),
    ]
    assert identifier.identify_many(queries) == [
        identifier.identify(query) for query in queries
    ]


def test_batch_calls_model_once(registry_dir: Path) -> None:
    model = FakeModel()
    identifier = Identifier.load(
        "cn", registry_dir=registry_dir, as_of=AS_OF, model=model
    )
    identifier.identify_many([ProductQuery(f"item {number}") for number in range(50)])
    assert model.calls == 1


def test_versions_list_standards_and_registries(identifier: Identifier) -> None:
    versions = identifier.versions()
    assert versions["cn.appliance"] == "2026-06-01"
    assert versions["registry.energy_label"] == "2026-11-30"
    assert versions["model"] == "fake-1"


def test_energy_star_needs_us_standard(shared_data: Path) -> None:
    files = [shared_data / "energy-star" / "clothes-washers.csv"]
    identifier = Identifier.load(
        "cn", energy_star_files=files, as_of=AS_OF, model=FakeModel()
    )
    verdict = identifier.identify(ProductQuery("GE GTW500ASNWS washer"))
    assert verdict.status is Status.NEEDS_REVIEW
    assert verdict.category is Category.ENERGY_STAR


def test_energy_star_stale_export(shared_data: Path) -> None:
    files = [shared_data / "energy-star" / "clothes-washers.csv"]
    identifier = Identifier.load(
        "us", energy_star_files=files, as_of=date(2031, 1, 1), model=FakeModel()
    )
    verdict = identifier.identify(ProductQuery("GE GTW500ASNWS washer"))
    assert verdict.status is Status.NEEDS_REVIEW
    assert verdict.reasons[0].startswith("unverifiable:")


def test_energy_star_without_records_unverifiable() -> None:
    identifier = Identifier.load("us", as_of=AS_OF, model=FakeModel())
    verdict = identifier.identify(ProductQuery("Whirlpool WRF555SDFZ refrigerator"))
    assert verdict.status is Status.NEEDS_REVIEW
    assert "unverifiable" in verdict.reasons[0]


def test_energy_star_attributes_for_impact(shared_data: Path) -> None:
    files = [shared_data / "energy-star" / "refrigerators.csv"]
    identifier = Identifier.load(
        "us", energy_star_files=files, as_of=AS_OF, model=FakeModel()
    )
    verdict = identifier.identify(
        ProductQuery("fridge", brand="Absocold", model_number="ARD1033FW14R")
    )
    assert verdict.status is Status.GREEN
    assert verdict.attributes["product_type"] == "refrigerator"
    assert verdict.attributes["annual_kwh"] == 297.0
    assert verdict.attributes["federal_standard_kwh"] == 331.0
    assert verdict.attributes["energy_star_id"] == "2229666"


def test_brand_required_for_title_match(shared_data: Path) -> None:
    files = [shared_data / "energy-star" / "refrigerators.csv"]
    identifier = Identifier.load(
        "us", energy_star_files=files, as_of=AS_OF, model=FakeModel()
    )
    verdict = identifier.identify(ProductQuery("ARD1033FW14R spare shelf"))
    assert verdict.status is not Status.GREEN


def test_cli_prints_verdict_json(registry_dir: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "identify",
            "海尔冰箱 BCD-470WGHTD 新一级能效",
            "--registries",
            str(registry_dir),
            "--as-of",
            "2026-12-04",
        ],
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["status"] == "green"
    assert document["attributes"]["energy_label_grade"] == 1
    assert document["versions"]["registry.energy_label"] == "2026-11-30"


def test_cli_rejects_bad_grade() -> None:
    result = CliRunner().invoke(app, ["identify", "冰箱", "--grade", "7"])
    assert result.exit_code == 1
    assert "expected a whole number from 1 to 5" in result.output


def test_with_certified_products_shares_data(identifier: Identifier) -> None:
    product = CertifiedProduct(
        "shop-2", "sku-1", Category.SECOND_HAND, "cert-9", None, {"item_kind": "book"}
    )
    rebuilt = identifier.with_certified_products([product], as_of=date(2026, 12, 5))
    verdict = rebuilt.identify(ProductQuery("旧书", merchant_id="shop-2", sku="sku-1"))
    assert verdict.status is Status.GREEN
    assert rebuilt.as_of == date(2026, 12, 5)
    assert rebuilt.versions() == identifier.versions()


def test_online_retail_never_green(shared_data: Path) -> None:
    import pyarrow.parquet as pq

    table = pq.read_table(
        shared_data / "online-retail" / "online_retail.parquet", columns=["Description"]
    )
    titles = sorted({str(value) for value in table.column(0).to_pylist() if value})
    identifier = Identifier.load("cn", as_of=AS_OF, model=FakeModel())
    verdicts = identifier.identify_many([ProductQuery(title) for title in titles])
    green = [
        title
        for title, verdict in zip(titles, verdicts, strict=True)
        if verdict.status is Status.GREEN
    ]
    assert len(titles) == 4224
    assert green == []


@pytest.mark.parametrize("grade", [0, 6, 9])
def test_grade_column_out_of_scale(identifier: Identifier, grade: int) -> None:
    verdict = identifier.identify(
        ProductQuery("某品牌洗衣机 ABC-9", energy_label_grade=grade)
    )
    assert not any(
        "grade" in reason and str(grade) in reason for reason in verdict.reasons
    )
    assert verdict.status is not Status.GREEN


def test_batch_shares_verdict_across_skus(registry_dir: Path) -> None:
    product = CertifiedProduct("shop-1", "sku-9", Category.APPLIANCE, "c-1", None, {})
    identifier = Identifier.load(
        "cn",
        registry_dir=registry_dir,
        certified_products=[product],
        as_of=AS_OF,
        model=FakeModel(),
    )
    queries = [
        ProductQuery("lamp", merchant_id="shop-1", sku="sku-1"),
        ProductQuery("lamp", merchant_id="shop-1", sku="sku-2"),
        ProductQuery("lamp", merchant_id="shop-1", sku="sku-9"),
    ]
    first, second, certified = identifier.identify_many(queries)
    assert first is second
    assert first.status is Status.NOT_GREEN
    assert certified.status is Status.GREEN


def test_eu_ecolabel_backs_generic_claim(tmp_path: Path) -> None:
    folder = tmp_path / "eu"
    folder.mkdir()
    (folder / "snapshot.yaml").write_text(
        "registries:\n  eu_ecolabel:\n    file: eu_ecolabel.csv\n"
        "    snapshot_date: 2026-11-30\n    source: EU Ecolabel catalogue\n"
        "    max_age_days: 90\n",
        encoding="utf-8",
    )
    (folder / "eu_ecolabel.csv").write_text(
        "code,product,holder,valid_until\nFR/020/001,Paint,Maker,2028-01-01\n",
        encoding="utf-8",
    )
    identifier = Identifier.load(
        "eu", registry_dir=folder, as_of=AS_OF, model=FakeModel()
    )
    verdict = identifier.identify(
        ProductQuery("eco-friendly wall paint", label_codes=("FR/020/001",))
    )
    assert verdict.status is Status.GREEN
    assert verdict.category is Category.EU_ECOLABEL
    assert verdict.standard_id == "eu.eu_ecolabel"
    assert not any(reason.startswith("Flagged") for reason in verdict.reasons)


class CollectorStateModel:
    """A category model that records whether the garbage collector is enabled."""

    version = "collector-1"

    def __init__(self) -> None:
        self.enabled_during_calls: list[bool] = []

    def propose(self, titles: Sequence[str]) -> list[FakeProposal]:
        self.enabled_during_calls.append(gc.isenabled())
        return [FakeProposal(None, 0.0) for _ in titles]


def test_large_batch_pauses_collector() -> None:
    model = CollectorStateModel()
    identifier = Identifier.load("cn", as_of=AS_OF, model=model)
    queries = [ProductQuery(f"plain item {n}") for n in range(GC_PAUSE_MIN_QUERIES)]
    assert gc.isenabled()
    verdicts = identifier.identify_many(queries)
    assert len(verdicts) == GC_PAUSE_MIN_QUERIES
    assert model.enabled_during_calls == [False]
    assert gc.isenabled()


def test_small_batch_keeps_collector() -> None:
    model = CollectorStateModel()
    identifier = Identifier.load("cn", as_of=AS_OF, model=model)
    identifier.identify_many([ProductQuery("plain item")])
    assert model.enabled_during_calls == [True]
    assert gc.isenabled()


def test_batch_keeps_collector_disabled() -> None:
    identifier = Identifier.load("cn", as_of=AS_OF, model=FakeModel())
    queries = [ProductQuery(f"plain item {n}") for n in range(GC_PAUSE_MIN_QUERIES)]
    gc.disable()
    try:
        identifier.identify_many(queries)
        assert not gc.isenabled()
    finally:
        gc.enable()
