"""What every HTTP request meets before any endpoint: a request id, the API key
and the body-size limit, in that order and before the body is read, so an
anonymous caller learns nothing from the schema or the limits and cannot make
the server read a large body.

`RequestGate` is a plain ASGI middleware; its settings (`GateSettings`) are put
on `app.state.gate` by the ingress replica when it starts.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

from medqa.config import ServingConfig
from medqa.serving.errors import error_body

PUBLIC_PATHS = frozenset({"/health"})
"""Open without a key; `/health` then says only whether the server is up."""

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def request_id(header: Optional[str]) -> str:
    """The client's X-Request-ID when it is a plain token, else a fresh one: a header
    must not be able to write spaces, `key=value` pairs or control characters into the logs."""
    if header and _REQUEST_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


def read_api_key(serving: ServingConfig, environ: Mapping[str, str] = os.environ) -> Optional[str]:
    """The key from `serving.api_key_file` (a mounted secret) or the replica's own
    environment; never from anything Ray passes between processes or shows."""
    if serving.api_key_file:
        path = Path(serving.api_key_file)
        if not path.is_file():
            raise RuntimeError(f"serving.api_key_file: {path} does not exist")
        key = path.read_text("utf-8").strip()
        if not key:
            raise RuntimeError(f"serving.api_key_file: {path} is empty")
        return key
    return environ.get(serving.api_key_env, "").strip() or None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def refuse_open_server(serving: ServingConfig, host: str, api_key: Optional[str]) -> None:
    """A server reachable beyond this machine needs a key unless the operator said otherwise."""
    if api_key is None and not is_loopback(host) and not serving.allow_unauthenticated:
        raise RuntimeError(
            f"refusing to serve on {host!r} without an API key: set {serving.api_key_env} in the replicas' "
            "environment or serving.api_key_file, or set serving.allow_unauthenticated: true")


def key_matches(expected: Optional[str], authorization: Optional[str], x_api_key: Optional[str]) -> bool:
    """No key configured → open. Otherwise `Authorization: Bearer KEY` or `X-API-Key: KEY`,
    compared in constant time."""
    if not expected:
        return True
    given = x_api_key or ""
    if authorization and authorization[:7].lower() == "bearer ":
        given = authorization[7:].strip()
    return hmac.compare_digest(given.encode(), expected.encode())


@dataclass(frozen=True)
class GateSettings:
    api_key: Optional[str]
    max_body_bytes: int


class RequestGate:
    """ASGI middleware: request id → API key → body size, then the app."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        rid = request_id(headers.get("x-request-id"))
        scope.setdefault("state", {})["request_id"] = rid
        gate: Optional[GateSettings] = getattr(scope["app"].state, "gate", None)
        if gate is None:
            return await _reply(send, 503, error_body("the server is starting; retry shortly", rid))
        authenticated = key_matches(gate.api_key, headers.get("authorization"), headers.get("x-api-key"))
        scope["state"]["authenticated"] = authenticated
        if not authenticated and _route_path(scope) not in PUBLIC_PATHS:
            return await _reply(send, 401, error_body("missing or invalid API key (send `Authorization: Bearer <key>`)",
                                                      rid))
        length = headers.get("content-length", "0")
        if not length.isdigit() or int(length) > gate.max_body_bytes:
            return await _reply(send, 413, error_body(f"the request body is over {gate.max_body_bytes} bytes", rid))
        body = await _read_body(receive, gate.max_body_bytes)
        if body is None:  # a chunked body with no Content-Length that grew past the limit
            return await _reply(send, 413, error_body(f"the request body is over {gate.max_body_bytes} bytes", rid))
        await self.app(scope, _replay(body, receive), send)


def _route_path(scope) -> str:
    path, root = scope.get("path", ""), scope.get("root_path", "")
    path = path[len(root):] if root and path.startswith(root) else path
    return path.rstrip("/") or "/"


async def _read_body(receive, limit: int) -> Optional[bytes]:
    """The whole body, or None once it passes `limit` (read no further)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)  # the client went away; the app sees an empty body
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > limit:
            return None
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive):
    """A `receive` that gives the app the body already read, then the connection's own messages."""
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _reply(send, status: int, body: dict, headers: Optional[dict] = None) -> None:
    payload = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw += [(k.encode(), str(v).encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})
