"""The service's edge: which requests reach the routes at all, and how long a body may pause.

Checked on every request, in this order, each refusal one JSON line ``{"detail": ...}``:

1. ``Host`` must name this service (:attr:`ServiceSettings.hosts <covidal.service.settings.ServiceSettings.hosts>`:
   the loopback names and the configured ones), any port (400 otherwise). A web page whose own name was made to
   point at 127.0.0.1 (DNS rebinding) sends its name, so it is refused.
2. With a token, ``Authorization: Bearer <token>`` (401 otherwise).
3. Without a token, an ``Origin`` header must be the service's own origin (403 otherwise): browsers add the
   page's origin to what a page sends, the service's own clients (Slicer, scripts) send none, so a page the
   clinician opens cannot drive the loopback service (CSRF).

The body of an admitted request must keep coming: a pause longer than ``body_timeout_s`` between two parts
ends the request with 408 (the route's partial file is removed as for any failed upload).
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

import anyio
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from covidal.service.settings import ServiceSettings, host_name

DEFAULT_PORTS = {"http": 80, "https": 443}


class RequestEdge:
    """ASGI middleware applying the module's rules to every HTTP request."""

    def __init__(self, app: ASGIApp, settings: ServiceSettings) -> None:
        self.app = app
        self.hosts = settings.hosts
        self.expected_token = None if settings.token is None else f"Bearer {settings.token}".encode()
        self.body_timeout_s = settings.body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self.refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, BodyDeadline(receive, self.body_timeout_s), send)

    def refusal(self, scope: Scope) -> JSONResponse | None:
        """The answer refusing the request, or None when it may go on."""
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        host = headers.get("host", "")
        if _host_of(host) not in self.hosts:
            return _refuse(
                400,
                f"this service does not answer to the Host {host[:100]!r}: use one of "
                f"{', '.join(sorted(self.hosts))} (covidal serve --allow-host adds names)",
            )
        if self.expected_token is not None:
            given = headers.get("authorization", "").encode("latin-1")
            if not hmac.compare_digest(given, self.expected_token):
                return _refuse(
                    401,
                    "missing or wrong token: send the header 'Authorization: Bearer <token>'",
                    {"WWW-Authenticate": "Bearer"},
                )
            return None
        origin = headers.get("origin")
        if origin is not None and not self._own_origin(origin, scope):
            return _refuse(
                403,
                f"requests from web pages are refused: the Origin {origin[:100]!r} is not this "
                "service (its clients send no Origin; start it with --token-file to allow others)",
            )
        return None

    def _own_origin(self, origin: str, scope: Scope) -> bool:
        try:
            parts = urlsplit(origin)
            port = parts.port or DEFAULT_PORTS.get(parts.scheme)
        except ValueError:
            return False
        server = scope.get("server") or (None, None)
        return (
            parts.scheme == scope.get("scheme", "http") and _host_of(parts.netloc) in self.hosts and port == server[1]
        )


class BodyDeadline:
    """``receive`` that fails with 408 when a part of the request body takes longer than ``seconds`` to arrive.

    Once the body is complete, calls pass through without a deadline (a streamed download waits on
    ``receive`` for the client to go away).
    """

    def __init__(self, receive: Receive, seconds: float) -> None:
        self.receive, self.seconds = receive, seconds
        self.body_done = False

    async def __call__(self) -> Message:
        if self.body_done:
            return await self.receive()
        try:
            with anyio.fail_after(self.seconds):
                message = await self.receive()
        except TimeoutError:
            raise HTTPException(
                408, f"the request body stalled: nothing arrived for {self.seconds:g} s (covidal serve --body-timeout)"
            ) from None
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.body_done = True
        return message


def _host_of(value: str) -> str | None:
    """The host name of a ``Host`` header or URL authority (``name[:port]``, ``[v6][:port]``), or None if malformed."""
    text = value.strip()
    if text.startswith("["):
        name, _, rest = text.partition("]")
        name, port = name + "]", rest.removeprefix(":")
        if rest and not rest.startswith(":"):
            return None
    else:
        name, _, port = text.partition(":")
    if port and not port.isdigit():
        return None
    try:
        return host_name(name)
    except ValueError:
        return None


def _refuse(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)
