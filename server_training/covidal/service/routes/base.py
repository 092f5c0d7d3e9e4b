"""The router of every route module: JSON bodies are read as JSON is written, without NaN or Infinity.

Python's JSON reader accepts ``NaN``, ``Infinity`` and ``-Infinity``, and reads ``1e999`` as infinity; none
of these is JSON, and a non-finite number in a validation error could not even be written back (500). Here
each is refused with 422 before validation.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.routing import APIRoute


class FiniteJSONRequest(Request):
    """A request whose :meth:`json` refuses non-finite numbers (HTTPException 422)."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = json.loads(await self.body(), parse_constant=_refuse_constant, parse_float=_finite_float)
        return self._json


class FiniteJSONRoute(APIRoute):
    """An APIRoute that hands its endpoint a :class:`FiniteJSONRequest`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            return await handler(FiniteJSONRequest(request.scope, request.receive))

        return handle


def api_router(tag: str) -> APIRouter:
    """The router of one route module, its operations tagged ``tag`` in the OpenAPI schema."""
    return APIRouter(tags=[tag], route_class=FiniteJSONRoute)


def _refuse_constant(name: str) -> float:
    raise HTTPException(422, f"JSON numbers must be finite: the body holds {name}, which JSON does not have")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise HTTPException(422, f"JSON numbers must be finite: the body holds {text[:40]}, beyond a 64-bit float")
    return value
