"""The plan, draw and validate commands."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from finance_helpers import facility_dict, write_yaml
from typer.testing import CliRunner

from greenloop.cli import app

runner = CliRunner()
SOURCE = Path(__file__).resolve().parents[2] / "src" / "greenloop"


def test_plan_prints_schedule_and_apr() -> None:
    result = runner.invoke(
        app, ["plan", "--principal", "3000", "--periods", "12", "--fee-rate", "0.088"]
    )
    assert result.exit_code == 0, result.output
    assert "272.00" in result.output
    assert "15.86 % nominal" in result.output
    assert "17.07 % effective" in result.output


def test_plan_json_interest_free_cost() -> None:
    result = runner.invoke(
        app,
        [
            "plan",
            "--principal",
            "100",
            "--periods",
            "12",
            "--interest-free",
            "--funding-rate",
            "0.03",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["interest_free_cost"]["funding_cost_yuan"] == "1.61"
    assert payload["apr_nominal"] == "0.000000"


def test_plan_defaults_to_schedule_rate() -> None:
    result = runner.invoke(
        app, ["plan", "--principal", "1000", "--periods", "3", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["fee_yuan"] == "25.00"


def test_plan_rejects_fraction_of_fen() -> None:
    result = runner.invoke(app, ["plan", "--principal", "1.001", "--periods", "3"])
    assert result.exit_code == 1
    assert "at most two decimals" in result.output


def test_plan_interest_free_needs_funding_rate() -> None:
    result = runner.invoke(
        app, ["plan", "--principal", "100", "--periods", "3", "--interest-free"]
    )
    assert result.exit_code == 1
    assert "--funding-rate" in result.output


def test_draw_commit_reveal_verify(tmp_path: Path) -> None:
    entries = tmp_path / "entries.txt"
    entries.write_text("".join(f"entry-{index}\n" for index in range(20)))
    seed = tmp_path / "seed.hex"
    commitment = tmp_path / "commitment.json"
    record = tmp_path / "draw.json"
    committed = runner.invoke(
        app,
        [
            "draw",
            "commit",
            "--entries",
            str(entries),
            "--winners",
            "3",
            "--seed-file",
            str(seed),
            "--out",
            str(commitment),
        ],
    )
    assert committed.exit_code == 0, committed.output
    assert stat.S_IMODE(seed.stat().st_mode) == 0o600
    revealed = runner.invoke(
        app,
        [
            "draw",
            "reveal",
            "--commitment",
            str(commitment),
            "--entries",
            str(entries),
            "--seed-file",
            str(seed),
            "--out",
            str(record),
        ],
    )
    assert revealed.exit_code == 0, revealed.output
    verified = runner.invoke(app, ["verify-draw", str(record)])
    assert verified.exit_code == 0, verified.output
    assert "valid: draw entries, 20 entries, 3 winners" in verified.output


def test_verify_draw_rejects_tampered_record(tmp_path: Path) -> None:
    entries = tmp_path / "entries.txt"
    entries.write_text("a\nb\nc\n")
    seed, commitment, record = (tmp_path / name for name in ("s", "c.json", "d.json"))
    runner.invoke(
        app,
        [
            "draw",
            "commit",
            "--entries",
            str(entries),
            "--winners",
            "1",
            "--seed-file",
            str(seed),
            "--out",
            str(commitment),
        ],
    )
    runner.invoke(
        app,
        [
            "draw",
            "reveal",
            "--commitment",
            str(commitment),
            "--entries",
            str(entries),
            "--seed-file",
            str(seed),
            "--out",
            str(record),
        ],
    )
    payload = json.loads(record.read_text())
    payload["entries"].append("d")
    record.write_text(json.dumps(payload))
    result = runner.invoke(app, ["verify-draw", str(record)])
    assert result.exit_code == 1
    assert "entries_sha256" in result.output


def test_draw_commit_keeps_existing_seed(tmp_path: Path) -> None:
    seed = tmp_path / "seed.hex"
    seed.write_text("00")
    entries = tmp_path / "entries.txt"
    entries.write_text("a\n")
    result = runner.invoke(
        app,
        [
            "draw",
            "commit",
            "--entries",
            str(entries),
            "--winners",
            "1",
            "--seed-file",
            str(seed),
            "--out",
            str(tmp_path / "c.json"),
        ],
    )
    assert result.exit_code == 1
    assert "exists" in result.output
    assert seed.read_text() == "00"


def test_facilities_validate_example() -> None:
    path = SOURCE / "funding" / "examples" / "facilities.yaml"
    result = runner.invoke(app, ["facilities", "validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "valid: 2 facilities" in result.output


def test_facilities_validate_reports_field(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path / "f.yaml", {"facilities": [facility_dict(day_count=364)]}
    )
    result = runner.invoke(app, ["facilities", "validate", str(path)])
    assert result.exit_code == 1
    assert "facilities[0].day_count" in result.output
    assert "360 or 365" in result.output


def test_campaigns_validate_checks_facility_ids(tmp_path: Path) -> None:
    campaigns = SOURCE / "incentives" / "examples" / "campaigns.yaml"
    facilities = write_yaml(tmp_path / "f.yaml", {"facilities": [facility_dict()]})
    result = runner.invoke(
        app, ["campaigns", "validate", str(campaigns), "--facilities", str(facilities)]
    )
    assert result.exit_code == 1
    assert "funding.facility_id: unknown facility" in result.output


def test_draw_on_stored_campaign(tmp_path: Path) -> None:
    from datetime import date

    from finance_helpers import campaign_dict, make_loan

    from greenloop.store.base import make_engine
    from greenloop.store.finance import process_green_loans

    database = f"sqlite:///{tmp_path / 'finance.sqlite3'}"
    lottery = campaign_dict(
        id="cli-lottery",
        benefit={"kind": "lottery_red_envelope", "prize_yuan": "1", "winners": 2},
    )
    facilities = write_yaml(
        tmp_path / "f.yaml", {"facilities": [facility_dict(facility_rate="0.005")]}
    )
    campaigns = write_yaml(tmp_path / "c.yaml", {"campaigns": [lottery]})
    engine = make_engine(database)
    loans = [make_loan(index) for index in range(6)]
    process_green_loans(engine, loans, facilities, campaigns, date(2026, 6, 30))
    engine.dispose()
    seed, commitment, record = (tmp_path / name for name in ("s", "c.json", "d.json"))

    committed = runner.invoke(
        app,
        [
            "draw",
            "commit",
            "--campaign",
            "cli-lottery",
            "--database",
            database,
            "--seed-file",
            str(seed),
            "--out",
            str(commitment),
        ],
    )
    assert committed.exit_code == 0, committed.output
    assert json.loads(commitment.read_text())["entry_count"] == 6
    revealed = runner.invoke(
        app,
        [
            "draw",
            "reveal",
            "--draw-id",
            "cli-lottery-draw",
            "--database",
            database,
            "--seed-file",
            str(seed),
            "--out",
            str(record),
        ],
    )
    assert revealed.exit_code == 0, revealed.output
    verified = runner.invoke(app, ["verify-draw", str(record)])
    assert verified.exit_code == 0, verified.output


def test_facilities_reconcile_stored(tmp_path: Path) -> None:
    from datetime import date

    from finance_helpers import campaign_dict, make_loan

    from greenloop.store.base import make_engine
    from greenloop.store.finance import process_green_loans

    database = f"sqlite:///{tmp_path / 'finance.sqlite3'}"
    facilities = write_yaml(tmp_path / "f.yaml", {"facilities": [facility_dict()]})
    campaigns = write_yaml(tmp_path / "c.yaml", {"campaigns": [campaign_dict()]})
    engine = make_engine(database)
    process_green_loans(
        engine, [make_loan(1)], facilities, campaigns, date(2026, 6, 30)
    )
    engine.dispose()

    result = runner.invoke(
        app, ["facilities", "reconcile", "test-facility", "--database", database]
    )
    assert result.exit_code == 0, result.output
    assert "balanced" in result.output
    assert "covers the drawn amount: no" in result.output
    missing = runner.invoke(
        app, ["facilities", "reconcile", "absent", "--database", database]
    )
    assert missing.exit_code == 1
    assert "not found" in missing.output
