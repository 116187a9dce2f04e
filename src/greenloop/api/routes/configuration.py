"""Operator endpoints for facilities, campaigns, standards and batch runs.

Facilities and campaigns are YAML files (the same ones the batch run reads);
the operator replaces them whole with a validated document. Standards are
dated files shipped with the package and are listed, not edited, here.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field, StringConstraints

from greenloop.api.auth import Principal, require
from greenloop.api.problems import ProblemError, problem_responses
from greenloop.api.schemas import UtcDatetime
from greenloop.api.settings import DEFAULT_CAMPAIGNS, DEFAULT_FACILITIES
from greenloop.certify import Role
from greenloop.funding import FacilitiesFile, load_facilities
from greenloop.incentives import CampaignsFile, load_campaigns

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/operator", tags=["operator"])
operator_only = require(Role.OPERATOR)
ERRORS = problem_responses(401, 403, 404, 409, 413, 422, 429)
OperatorKey = Annotated[Principal, Depends(operator_only)]


def _write_yaml(
    path: Path, document: dict[str, Any], packaged: Path, setting: str
) -> None:
    """Replace `path` atomically; the packaged example file is never overwritten."""
    if path.resolve() == packaged.resolve():
        raise ProblemError(
            409,
            "packaged-file",
            f"{path} is the example shipped with greenloop; set {setting} to a "
            "file of your own and restart the service before replacing it",
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        yaml.safe_dump(document, stream, allow_unicode=True, sort_keys=False)
    os.replace(temporary, path)


@router.get("/facilities", response_model=FacilitiesFile, responses=ERRORS)
def get_facilities(request: Request, _principal: OperatorKey) -> FacilitiesFile:
    """Return the facilities file in force."""
    return load_facilities(request.app.state.service.settings.facilities_path)


@router.put("/facilities", response_model=FacilitiesFile, responses=ERRORS)
def put_facilities(
    body: FacilitiesFile, request: Request, principal: OperatorKey
) -> FacilitiesFile:
    """Replace the facilities file with a validated document."""
    settings = request.app.state.service.settings
    _write_yaml(
        settings.facilities_path,
        body.model_dump(mode="json"),
        DEFAULT_FACILITIES,
        "GREENLOOP_FACILITIES_PATH",
    )
    logger.info(
        "facilities replaced by %s (%d facilities)",
        principal.key_id,
        len(body.facilities),
    )
    return load_facilities(settings.facilities_path)


@router.get("/campaigns", response_model=CampaignsFile, responses=ERRORS)
def get_campaigns(request: Request, _principal: OperatorKey) -> CampaignsFile:
    """Return the campaigns file in force."""
    return load_campaigns(request.app.state.service.settings.campaigns_path)


@router.put("/campaigns", response_model=CampaignsFile, responses=ERRORS)
def put_campaigns(
    body: CampaignsFile, request: Request, principal: OperatorKey
) -> CampaignsFile:
    """Replace the campaigns file; each campaign must name a known facility."""
    settings = request.app.state.service.settings
    known = {item.id for item in load_facilities(settings.facilities_path).facilities}
    for campaign in body.campaigns:
        if campaign.funding.facility_id not in known:
            raise ProblemError(
                422,
                "unknown-facility",
                f"campaign {campaign.id!r} is funded by facility "
                f"{campaign.funding.facility_id!r}, which is not in the facilities "
                f"file; use one of: {', '.join(sorted(known))}",
            )
    _write_yaml(
        settings.campaigns_path,
        body.model_dump(mode="json"),
        DEFAULT_CAMPAIGNS,
        "GREENLOOP_CAMPAIGNS_PATH",
    )
    logger.info(
        "campaigns replaced by %s (%d campaigns)", principal.key_id, len(body.campaigns)
    )
    return load_campaigns(settings.campaigns_path)


class StandardOut(BaseModel):
    """One shipped standard and the version in force today."""

    id: str
    title: str
    version: str
    file: str


@router.get("/standards", response_model=list[StandardOut], responses=ERRORS)
def list_standards(_principal: OperatorKey) -> list[StandardOut]:
    """List the shipped standards of every jurisdiction with today's version."""
    from greenloop.standards.loader import all_standards, summarize

    rows = summarize(all_standards(), datetime.now(UTC).date())
    return [StandardOut.model_validate(row) for row in rows]


class RunIn(BaseModel):
    """A batch run to start on a purchases file readable by the service."""

    input_path: Annotated[str, StringConstraints(min_length=1, max_length=1000)]
    mapping: Annotated[str, StringConstraints(min_length=1, max_length=1000)] | None = (
        None
    )
    standard: Annotated[str, StringConstraints(pattern=r"^(cn|us|eu)$")] = "cn"
    out_dir: Annotated[str, StringConstraints(min_length=1, max_length=1000)] = "runs"


class RunOut(BaseModel):
    """A batch run's state as the runs table records it."""

    run_id: str
    status: str = Field(
        description="running, succeeded, failed, or interrupted: the run's process "
        "ended before the run did"
    )
    input_path: str
    standard: str
    started_at: UtcDatetime
    finished_at: UtcDatetime | None = None
    host_name: str | None = Field(
        default=None, description="Host of the run's process; null for older runs."
    )
    process_id: int | None = Field(
        default=None, description="Id of the run's process on its host."
    )
    interruption_noticed_at: UtcDatetime | None = Field(
        default=None,
        description="When a later run found that the run had stopped; the run "
        "stopped at some time before.",
    )
    interruption_reason: str | None = Field(
        default=None,
        description="Why a later run marked the run interrupted: process_ended "
        "(its process ended on that run's host) or heartbeat_stale (its last "
        "heartbeat was too old); null otherwise.",
    )
    heartbeat_at: UtcDatetime | None = Field(
        default=None,
        description="The database's time at the run's last heartbeat, which its "
        "process records while it runs; null for older runs.",
    )


class RunStarted(BaseModel):
    """A run accepted for background execution."""

    status: str = Field(description="started")
    input_path: str


_run_lock = threading.Lock()


@router.post("/runs", response_model=RunStarted, status_code=202, responses=ERRORS)
def start_run(body: RunIn, request: Request, principal: OperatorKey) -> RunStarted:
    """Start the batch run in the background; one run at a time per process."""
    from greenloop.pipeline.job import RunConfig, run_job

    settings = request.app.state.service.settings
    input_path = Path(body.input_path)
    if not input_path.is_file():
        raise ProblemError(
            422,
            "input-not-found",
            f"input_path {body.input_path!r} is not a file the service can read; "
            "give the path of a CSV, Parquet or JSON Lines file on the server",
        )
    if not _run_lock.acquire(blocking=False):
        raise ProblemError(
            409, "run-in-progress", "a run is in progress; retry when it ends"
        )
    config = RunConfig(
        input_path=input_path,
        out_dir=Path(body.out_dir),
        mapping=body.mapping,
        standard=body.standard,
        database_url=settings.database_url,
        key_dir=settings.key_dir,
        registry_dir=settings.registry_dir,
        energy_star_files=settings.energy_star_files,
        facilities_path=settings.facilities_path,
        campaigns_path=settings.campaigns_path,
    )

    def work() -> None:
        try:
            result = run_job(config)
            logger.info(
                "run %s finished (started by %s)", result.run_id, principal.key_id
            )
        except Exception:
            logger.exception(
                "run on %s failed (started by %s)", input_path, principal.key_id
            )
        finally:
            _run_lock.release()

    threading.Thread(target=work, name="greenloop-run", daemon=True).start()
    logger.info("run on %s started by %s", input_path, principal.key_id)
    return RunStarted(status="started", input_path=str(input_path))


@router.get("/runs", response_model=list[RunOut], responses=ERRORS)
def list_runs(request: Request, _principal: OperatorKey) -> list[RunOut]:
    """List the batch runs recorded in the store, newest first."""
    from sqlalchemy import select

    from greenloop.store.runs import runs

    with request.app.state.service.engine.connect() as connection:
        rows = connection.execute(
            select(runs).order_by(runs.c.started_at.desc())
        ).mappings()
        return [RunOut.model_validate(dict(row)) for row in rows]
