"""The one place where errors become HTTP responses.

Validation errors keep FastAPI's shape, 422 ``{"detail": [{"loc", "msg", "type"}]}``;
every other error is ``{"detail": "message"}``. An outside system that does not
answer gives 503 naming it, never 500.
"""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request, Response, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.service import RPCError, RPCStatusCode

from crucible.core.errors import (
    ConflictError,
    DependencyUnavailableError,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
    RunClosedError,
    RunNotFoundError,
    ScheduleExistsError,
    ScheduleNotFoundError,
    TooManyRequestsError,
)
from crucible.core.secrets import SecretsUnavailableError
from crucible.core.store import InvalidCursorError
from crucible.core.temporal import unreachable_reason

log = logging.getLogger(__name__)

NUL_TEXT = "text may not hold NUL (\\u0000) characters"
#: What FastAPI says of a body it could not read at all.
UNREADABLE_BODY = "There was an error parsing the body"


def _detail(status_code: int, message: str) -> JSONResponse:
    return JSONResponse(status_code=status_code, content={"detail": message})


def unavailable(component: str, reason: str) -> JSONResponse:
    log.warning("%s unavailable: %s", component, reason)
    return JSONResponse(
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        content={"detail": f"{component} is unavailable", "component": component},
        headers={"Retry-After": "5"},
    )


def temporal_error(exc: RPCError) -> JSONResponse:
    if (reason := unreachable_reason(exc)) is not None:
        return unavailable("temporal", reason)
    if exc.status == RPCStatusCode.NOT_FOUND:
        return _detail(status.HTTP_404_NOT_FOUND, exc.message)
    log.error("Temporal rejected a request: %s (%s)", exc.message, exc.status)
    return _detail(status.HTTP_502_BAD_GATEWAY, f"Temporal rejected the request: {exc.message}")


def _allowed_methods(app: FastAPI, path: str) -> list[str] | None:
    """The methods the OpenAPI document lists for ``path``, or None when it lists no such path."""
    for template, operations in app.openapi()["paths"].items():
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path):
            return sorted(method.upper() for method in operations)
    return None


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        headers = dict(exc.headers or {})
        if exc.status_code == status.HTTP_400_BAD_REQUEST and exc.detail == UNREADABLE_BODY:
            # A body that is not UTF-8 JSON is an invalid request like any other: 422, located.
            return JSONResponse(
                status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
                content={"detail": [{"loc": ["body"], "msg": "not UTF-8 JSON", "type": "json_invalid"}]},
            )
        if exc.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:
            # Starlette names the methods of one of the path's routes; a path may have several.
            allowed = _allowed_methods(app, request.url.path)
            if allowed:
                headers["Allow"] = ", ".join(allowed)
        return await http_exception_handler(
            request, StarletteHTTPException(exc.status_code, exc.detail, headers)
        )

    @app.exception_handler(RunNotFoundError)
    @app.exception_handler(ScheduleNotFoundError)
    @app.exception_handler(NotFoundError)
    async def _not_found(_: Request, exc: Exception) -> JSONResponse:
        return _detail(status.HTTP_404_NOT_FOUND, str(exc))

    @app.exception_handler(RunClosedError)
    @app.exception_handler(ScheduleExistsError)
    @app.exception_handler(ConflictError)
    async def _conflict(_: Request, exc: Exception) -> JSONResponse:
        return _detail(status.HTTP_409_CONFLICT, str(exc))

    @app.exception_handler(ForbiddenError)
    async def _forbidden(_: Request, exc: Exception) -> JSONResponse:
        return _detail(status.HTTP_403_FORBIDDEN, str(exc))

    @app.exception_handler(InvalidCursorError)
    async def _cursor(_: Request, exc: InvalidCursorError) -> JSONResponse:
        return JSONResponse(
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
            content={"detail": [{"loc": ["query", "cursor"], "msg": str(exc), "type": "value_error"}]},
        )

    @app.exception_handler(TooManyRequestsError)
    async def _later(_: Request, exc: TooManyRequestsError) -> JSONResponse:
        return JSONResponse(
            status_code=status.HTTP_429_TOO_MANY_REQUESTS,
            content={"detail": str(exc)},
            headers={"Retry-After": str(exc.retry_after_s)},
        )

    @app.exception_handler(InvalidRequestError)
    async def _invalid(_: Request, exc: InvalidRequestError) -> JSONResponse:
        return JSONResponse(
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
            content={"detail": [{"loc": list(e.loc), "msg": e.msg, "type": e.type} for e in exc.errors]},
        )

    @app.exception_handler(DependencyUnavailableError)
    async def _dependency(_: Request, exc: DependencyUnavailableError) -> JSONResponse:
        return unavailable(exc.component, exc.reason)

    @app.exception_handler(SecretsUnavailableError)
    async def _secrets(_: Request, exc: SecretsUnavailableError) -> JSONResponse:
        return unavailable("secrets", str(exc))  # no key configured, or one that cannot open it

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    @app.exception_handler(PoolTimeoutError)
    async def _database(_: Request, exc: Exception) -> JSONResponse:
        return unavailable("postgres", str(getattr(exc, "orig", None) or exc).strip())

    @app.exception_handler(DBAPIError)
    async def _database_api(_: Request, exc: DBAPIError) -> JSONResponse:
        if exc.connection_invalidated:
            return unavailable("postgres", str(exc.orig).strip())
        if "cannot contain NUL" in str(exc.orig):  # PostgreSQL text holds no NUL; the driver refuses it
            return JSONResponse(
                status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
                content={"detail": [{"loc": ["body"], "msg": NUL_TEXT, "type": "value_error"}]},
            )
        log.exception("database error", exc_info=exc)
        return _detail(status.HTTP_500_INTERNAL_SERVER_ERROR, "internal database error")

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's shape, without pydantic's "Value error, " in front of our own messages.
        errors = [
            {"loc": list(e["loc"]), "msg": str(e["msg"]).removeprefix("Value error, "), "type": e["type"]}
            for e in exc.errors()
        ]
        return JSONResponse(status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, content={"detail": errors})

    @app.exception_handler(RPCError)
    async def _temporal(_: Request, exc: RPCError) -> JSONResponse:
        return temporal_error(exc)

    @app.exception_handler(RuntimeError)
    async def _runtime(_: Request, exc: RuntimeError) -> JSONResponse:
        if (reason := unreachable_reason(exc)) is not None:
            return unavailable("temporal", reason)
        log.exception("unexpected error", exc_info=exc)
        return _detail(status.HTTP_500_INTERNAL_SERVER_ERROR, "internal error")
