"""Facility and campaign files: the examples load, bad files name file and field."""

from __future__ import annotations

from pathlib import Path

import pytest
from finance_helpers import campaign_dict, facility_dict, write_yaml

from greenloop.funding import load_facilities
from greenloop.incentives import load_campaigns
from greenloop.lending.configfile import ConfigError

SOURCE = Path(__file__).resolve().parents[2] / "src" / "greenloop"
FACILITIES_EXAMPLE = SOURCE / "funding" / "examples" / "facilities.yaml"
CAMPAIGNS_EXAMPLE = SOURCE / "incentives" / "examples" / "campaigns.yaml"


def test_example_facilities_load() -> None:
    loaded = load_facilities(FACILITIES_EXAMPLE)
    assert [item.id for item in loaded.facilities] == [
        "cn-green-interbank-2026",
        "cn-nev-pilot-2026",
    ]


def test_example_campaigns_load() -> None:
    loaded = load_campaigns(CAMPAIGNS_EXAMPLE)
    kinds = {item.benefit.kind for item in loaded.campaigns}
    assert kinds == {
        "interest_free",
        "fixed_red_envelope",
        "coupon",
        "lottery_red_envelope",
    }


def test_example_campaigns_fund_from_example_facilities() -> None:
    facilities = {item.id for item in load_facilities(FACILITIES_EXAMPLE).facilities}
    for campaign in load_campaigns(CAMPAIGNS_EXAMPLE).campaigns:
        assert campaign.funding.facility_id in facilities


def test_bad_rate_names_file_field_and_form(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path / "facilities.yaml",
        {"facilities": [facility_dict(facility_rate="two percent")]},
    )
    with pytest.raises(ConfigError) as caught:
        load_facilities(path)
    message = str(caught.value)
    assert str(path) in message
    assert "facilities[0].facility_rate" in message
    assert "'two percent'" in message
    assert "such as 0.025" in message


def test_unknown_key_rejected(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path / "facilities.yaml", {"facilities": [facility_dict(colour="green")]}
    )
    with pytest.raises(ConfigError, match=r"facilities\[0\]\.colour"):
        load_facilities(path)


def test_unknown_category_rejected(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path / "facilities.yaml",
        {"facilities": [facility_dict(eligible_categories=["furniture"])]},
    )
    with pytest.raises(ConfigError, match=r"eligible_categories\[0\]"):
        load_facilities(path)


def test_missing_file_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_facilities(tmp_path / "absent.yaml")


def test_invalid_yaml_reported(tmp_path: Path) -> None:
    path = tmp_path / "campaigns.yaml"
    path.write_text("campaigns: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_campaigns(path)


def test_unknown_benefit_kind_rejected(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path / "campaigns.yaml",
        {
            "campaigns": [
                campaign_dict(benefit={"kind": "cashback", "amount_yuan": "1"})
            ]
        },
    )
    with pytest.raises(ConfigError) as caught:
        load_campaigns(path)
    assert "campaigns[0].benefit" in str(caught.value)
    assert "interest_free" in str(caught.value)


def test_campaign_dates_reversed_rejected(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path / "campaigns.yaml",
        {"campaigns": [campaign_dict(starts_on="2026-12-31", ends_on="2026-01-01")]},
    )
    with pytest.raises(ConfigError, match="is before starts_on"):
        load_campaigns(path)


def test_duplicate_campaign_ids_rejected(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path / "campaigns.yaml", {"campaigns": [campaign_dict(), campaign_dict()]}
    )
    with pytest.raises(ConfigError, match="duplicate campaign ids: test-envelope"):
        load_campaigns(path)
