"""The control API: a small JSON API over `ProxyRegistry`, in the spirit of Toxiproxy's.

Every write is idempotent so a retried activity is harmless: creating an existing proxy
with the same upstream answers 200, putting a fault replaces it, and deleting a missing
fault answers 204.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from crucible.chaos_proxy.registry import ProxyRegistry, describe, parse_address
from crucible.core.chaos import fault_from_dict, fault_to_dict
from crucible.core.errors import ConflictError, InvalidRequestError, NotFoundError


class ProxyCreate(BaseModel):
    name: str
    upstream: str
    listen: str = "127.0.0.1:0"


def _registry(request: Request) -> ProxyRegistry:
    registry: ProxyRegistry = request.app.state.registry
    return registry


RegistryDep = Annotated[ProxyRegistry, Depends(_registry)]


def create_app() -> FastAPI:
    """A control API with its own registry; its proxies stop when the app shuts down."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await app.state.registry.close()

    app = FastAPI(title="Crucible chaos proxy", lifespan=lifespan)
    app.state.registry = ProxyRegistry()

    @app.exception_handler(InvalidRequestError)
    async def _invalid(_: Request, exc: InvalidRequestError) -> JSONResponse:
        return JSONResponse(
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
            content={"detail": [{"loc": ["body", *e.loc], "msg": e.msg, "type": e.type} for e in exc.errors]},
        )

    @app.exception_handler(NotFoundError)
    async def _not_found(_: Request, exc: NotFoundError) -> JSONResponse:
        return JSONResponse(status_code=status.HTTP_404_NOT_FOUND, content={"detail": str(exc)})

    @app.exception_handler(ConflictError)
    async def _conflict(_: Request, exc: ConflictError) -> JSONResponse:
        return JSONResponse(status_code=status.HTTP_409_CONFLICT, content={"detail": str(exc)})

    @app.get("/health")
    async def health(registry: RegistryDep) -> dict[str, Any]:
        return {"status": "ok", "proxies": len(registry.items())}

    @app.post("/proxies", status_code=status.HTTP_201_CREATED)
    async def create_proxy(body: ProxyCreate, registry: RegistryDep, response: Response) -> dict[str, Any]:
        if not body.name:
            raise InvalidRequestError.one(("name",), "must not be empty")
        listen = parse_address(body.listen, "listen")
        upstream = parse_address(body.upstream, "upstream")
        if not await registry.create(body.name, listen=listen, upstream=upstream):
            response.status_code = status.HTTP_200_OK
        return describe(body.name, registry.get(body.name))

    @app.get("/proxies")
    async def list_proxies(registry: RegistryDep) -> dict[str, Any]:
        return {"proxies": [describe(name, proxy) for name, proxy in registry.items()]}

    @app.get("/proxies/{name}")
    async def get_proxy(name: str, registry: RegistryDep) -> dict[str, Any]:
        return describe(name, registry.get(name))

    @app.delete("/proxies/{name}", status_code=status.HTTP_204_NO_CONTENT)
    async def delete_proxy(name: str, registry: RegistryDep) -> None:
        await registry.delete(name)

    @app.put("/proxies/{name}/faults/{fault}")
    async def put_fault(
        name: str, fault: str, data: Annotated[dict[str, Any], Body()], registry: RegistryDep
    ) -> dict[str, Any]:
        proxy = registry.get(name)
        parsed = fault_from_dict(data)
        proxy.add_fault(fault, parsed)
        return {"name": fault, **fault_to_dict(parsed)}

    @app.delete("/proxies/{name}/faults/{fault}", status_code=status.HTTP_204_NO_CONTENT)
    async def delete_fault(name: str, fault: str, registry: RegistryDep) -> None:
        registry.get(name).remove_fault(fault)

    @app.delete("/proxies/{name}/faults", status_code=status.HTTP_204_NO_CONTENT)
    async def clear_faults(name: str, registry: RegistryDep) -> None:
        registry.get(name).clear()

    return app
