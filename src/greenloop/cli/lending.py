"""Commands of the lending area: `greenloop plan`."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

import typer

from greenloop.cli.errors import fail


def register(app: typer.Typer) -> None:
    """Add this area's commands to the application."""
    app.command("plan")(plan_command)


def plan_command(
    principal: str = typer.Option(
        ..., "--principal", help="Amount financed in yuan, for example 3000."
    ),
    periods: int = typer.Option(
        ..., "--periods", help="Number of monthly installments."
    ),
    fee_rate: str | None = typer.Option(
        None,
        "--fee-rate",
        help="Total fee as a decimal share of the principal, for example 0.088."
        " Default: the standard schedule's rate for --periods.",
    ),
    interest_rate: str | None = typer.Option(
        None,
        "--interest-rate",
        help="Nominal annual interest rate as a decimal, for example 0.12; makes"
        " the plan interest-bearing on the declining balance.",
    ),
    interest_free: bool = typer.Option(
        False, "--interest-free", help="Waive fee and interest for the consumer."
    ),
    funding_rate: str | None = typer.Option(
        None,
        "--funding-rate",
        help="The lender's annual funding rate as a decimal, for example 0.025;"
        " prices the cost of an interest-free plan.",
    ),
    start: str | None = typer.Option(
        None,
        "--start",
        help="Purchase date (ISO, 2026-12-04); sets the due dates. Default: none, "
        "and the schedule lists installments without dates.",
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print JSON instead of a table."
    ),
) -> None:
    """Print an installment schedule with its annualised rate (APR by IRR)."""
    from greenloop.lending import (
        fee_plan,
        interest_free_cost,
        interest_plan,
        load_fee_schedules,
        yuan_to_fen,
    )

    try:
        principal_fen = yuan_to_fen(principal)
    except ValueError as error:
        fail(f"--principal: {error}")
    start_date = _parse_date(start, "--start")
    schedule = load_fee_schedules().get()
    standard_rate = _standard_rate(schedule, periods, fee_rate)

    cost = None
    try:
        if interest_free:
            if funding_rate is None:
                fail(
                    "--interest-free needs --funding-rate, for example"
                    " --funding-rate 0.025"
                )
            cost = interest_free_cost(
                principal_fen,
                periods,
                _parse_rate(funding_rate, "--funding-rate"),
                standard_rate or Decimal(0),
            )
            plan = fee_plan(principal_fen, periods, Decimal(0), start_date)
        elif interest_rate is not None:
            plan = interest_plan(
                principal_fen,
                periods,
                _parse_rate(interest_rate, "--interest-rate"),
                start_date,
                fee_rate=_parse_rate(fee_rate, "--fee-rate")
                if fee_rate
                else Decimal(0),
            )
        else:
            if standard_rate is None:
                fail(
                    f"no fee rate for {periods} periods in schedule {schedule.id};"
                    " pass --fee-rate, for example --fee-rate 0.088"
                )
            plan = fee_plan(principal_fen, periods, standard_rate, start_date)
    except ValueError as error:
        fail(str(error))

    payload = _plan_payload(plan, cost)
    if as_json:
        typer.echo(json.dumps(payload, indent=2))
    else:
        _print_table(payload)


def _standard_rate(schedule: Any, periods: int, fee_rate: str | None) -> Decimal | None:
    if fee_rate is not None:
        return _parse_rate(fee_rate, "--fee-rate")
    return schedule.fee_rates.get(periods)


def _parse_rate(text: str, option: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        fail(f"{option}: invalid rate {text!r}; expected a decimal such as 0.088")
    if not value.is_finite() or value < 0 or value >= 10:
        fail(
            f"{option}: rate {text!r} is out of range; expected a decimal such as 0.088"
        )
    return value


def _parse_date(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        fail(
            f"{option}: invalid date {text!r}; expected an ISO date such as 2026-12-04"
        )


def _plan_payload(plan: Any, cost: Any) -> dict[str, Any]:
    from greenloop.lending import fen_to_yuan

    rate = plan.annual_rate()
    payload: dict[str, Any] = {
        "kind": plan.kind.value,
        "principal_yuan": str(fen_to_yuan(plan.principal_fen)),
        "periods": plan.periods,
        "fee_rate": str(plan.fee_rate),
        "interest_rate": str(plan.interest_rate),
        "fee_yuan": str(fen_to_yuan(plan.fee_fen)),
        "interest_yuan": str(fen_to_yuan(plan.interest_fen)),
        "total_yuan": str(fen_to_yuan(plan.total_fen)),
        "apr_nominal": str(rate.nominal_annual),
        "apr_effective": str(rate.effective_annual),
        "installments": [
            {
                "number": item.number,
                "due_on": item.due_on.isoformat() if item.due_on else None,
                "amount_yuan": str(fen_to_yuan(item.amount_fen)),
                "principal_yuan": str(fen_to_yuan(item.principal_fen)),
                "fee_yuan": str(fen_to_yuan(item.fee_fen)),
                "interest_yuan": str(fen_to_yuan(item.interest_fen)),
                "balance_yuan": str(fen_to_yuan(item.balance_fen)),
            }
            for item in plan.installments
        ],
    }
    if cost is not None:
        payload["interest_free_cost"] = {
            "funding_rate": str(cost.funding_rate),
            "funding_cost_yuan": str(fen_to_yuan(cost.funding_cost_fen)),
            "forgone_fee_yuan": str(fen_to_yuan(cost.forgone_fee_fen)),
            "forgone_fee_present_value_yuan": str(
                fen_to_yuan(cost.forgone_fee_present_value_fen)
            ),
        }
    return payload


def _print_table(payload: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{payload['kind']} plan, {payload['periods']} installments")
    dated = any(item["due_on"] for item in payload["installments"])
    headings = ["No.", "Due"] if dated else ["No."]
    headings += ["Payment", "Principal", "Fee", "Interest", "Balance"]
    for heading in headings:
        table.add_column(heading, justify="right")
    for item in payload["installments"]:
        cells = [str(item["number"])]
        if dated:
            cells.append(item["due_on"])
        cells += [
            item["amount_yuan"],
            item["principal_yuan"],
            item["fee_yuan"],
            item["interest_yuan"],
            item["balance_yuan"],
        ]
        table.add_row(*cells)
    console = Console()
    console.print(table)
    console.print(
        f"Principal {payload['principal_yuan']} yuan, fee {payload['fee_yuan']},"
        f" interest {payload['interest_yuan']}, total {payload['total_yuan']}"
    )
    console.print(
        f"APR (IRR): {_percent(payload['apr_nominal'])} nominal,"
        f" {_percent(payload['apr_effective'])} effective annual"
    )
    cost = payload.get("interest_free_cost")
    if cost:
        console.print(
            f"Lender's cost at {_percent(cost['funding_rate'])} funding:"
            f" {cost['funding_cost_yuan']} yuan; forgone fee"
            f" {cost['forgone_fee_yuan']} yuan (present value"
            f" {cost['forgone_fee_present_value_yuan']})"
        )


def _percent(text: str) -> str:
    return f"{Decimal(text) * 100:.2f} %"
