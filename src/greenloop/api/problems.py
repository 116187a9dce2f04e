"""Errors as RFC 9457 problem details (`application/problem+json`).

Every error the service returns has `type`, `title`, `status` and `detail`, and
`instance` set to the request path. Validation errors add `errors`, one entry
per invalid field with its location and message.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:greenloop:problem:"


class FieldError(BaseModel):
    """One invalid field of a request."""

    location: list[str | int] = Field(description="path to the field, e.g. body.amount")
    message: str
    type: str


class Problem(BaseModel):
    """An RFC 9457 problem details object."""

    type: str = Field(description="URI naming the kind of problem")
    title: str = Field(description="short summary of the kind of problem")
    status: int = Field(description="the HTTP status code")
    detail: str = Field(description="what went wrong in this request and what to do")
    instance: str | None = Field(default=None, description="the request path")
    errors: list[FieldError] | None = None


class ProblemError(Exception):
    """An error to return as a problem details response."""

    def __init__(
        self,
        status: int,
        slug: str,
        detail: str,
        *,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.detail = detail
        self.title = title or HTTPStatus(status).phrase
        self.headers = headers or {}
        self.extra = extra or {}


def problem_response(
    request: Request,
    status: int,
    slug: str,
    detail: str,
    *,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    """Build a problem details response for `request`."""
    body: dict[str, Any] = {
        "type": f"{TYPE_PREFIX}{slug}",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        **(extra or {}),
    }
    return JSONResponse(
        body, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE
    )


def _slug(status: int) -> str:
    return HTTPStatus(status).phrase.lower().replace(" ", "-").replace("'", "")


async def _handle_problem(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ProblemError)
    if error.status >= 500:
        logger.error("%s %s failed: %s", request.method, request.url.path, error.detail)
    return problem_response(
        request,
        error.status,
        error.slug,
        error.detail,
        title=error.title,
        headers=error.headers,
        extra=error.extra,
    )


async def _handle_http(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    detail = error.detail if isinstance(error.detail, str) else str(error.detail)
    if error.status_code == 404 and detail == "Not Found":
        detail = f"no endpoint at {request.url.path}; see /docs for the endpoints"
    if error.status_code == 405:
        detail = (
            f"method {request.method} is not allowed on {request.url.path}; "
            "see /docs for the allowed methods"
        )
    return problem_response(
        request,
        error.status_code,
        _slug(error.status_code),
        detail,
        headers=dict(error.headers or {}),
    )


async def _handle_validation(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    errors = [
        {
            "location": [
                str(part) if not isinstance(part, int) else part for part in item["loc"]
            ],
            "message": item["msg"],
            "type": item["type"],
        }
        for item in error.errors()
    ]
    fields = ", ".join(".".join(str(p) for p in e["location"]) for e in errors[:5])
    return problem_response(
        request,
        422,
        "invalid-request",
        f"the request is invalid at {fields}; fix the listed fields and retry",
        title="Invalid request",
        extra={"errors": errors},
    )


async def _handle_database(request: Request, error: Exception) -> JSONResponse:
    logger.error(
        "%s %s failed: database unavailable (%s)",
        request.method,
        request.url.path,
        type(error).__name__,
    )
    return problem_response(
        request,
        503,
        "database-unavailable",
        "the database is unavailable; retry the request with the same "
        "Idempotency-Key, if it had one, after a few seconds",
        headers={"Retry-After": "2"},
    )


async def _handle_unexpected(request: Request, error: Exception) -> JSONResponse:
    logger.exception(
        "%s %s failed with %s", request.method, request.url.path, type(error).__name__
    )
    return problem_response(
        request,
        500,
        "internal-error",
        "the server failed to handle the request; retry later or report it",
    )


def install(app: FastAPI) -> None:
    """Register the problem details handlers on `app`."""
    app.add_exception_handler(ProblemError, _handle_problem)
    app.add_exception_handler(StarletteHTTPException, _handle_http)
    app.add_exception_handler(RequestValidationError, _handle_validation)
    app.add_exception_handler(OperationalError, _handle_database)
    app.add_exception_handler(InterfaceError, _handle_database)
    app.add_exception_handler(Exception, _handle_unexpected)


PROBLEM_CONTENT = {
    PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Return an OpenAPI `responses` entry documenting problem statuses."""
    return {
        status: {
            "description": HTTPStatus(status).phrase,
            "content": PROBLEM_CONTENT,
        }
        for status in statuses
    }
