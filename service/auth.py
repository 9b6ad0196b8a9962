"""API-key / bearer-token authentication and a cap on request bodies."""
from __future__ import annotations

import hmac
import json

from fastapi import HTTPException, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="One of FINRISK_API_KEYS.")
bearer = HTTPBearer(auto_error=False, description="One of FINRISK_API_KEYS as a bearer token.")


def key_matches(presented: str, keys: tuple[bytes, ...]) -> bool:
    """Constant-time comparison against every configured key (no early exit on the first match)."""
    given = presented.encode()
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(given, key)
    return matched


def require_key(keys: tuple[str, ...]):
    """A FastAPI dependency that lets a request through only with a configured key."""
    encoded = tuple(k.encode() for k in keys)

    async def check(  # async: a plain function would be run on a worker thread for every request
        api_key: str | None = Security(api_key_header),
        token: HTTPAuthorizationCredentials | None = Security(bearer),
    ) -> None:
        presented = api_key if api_key else (token.credentials if token else None)
        if not presented or not key_matches(presented, encoded):
            raise HTTPException(
                status_code=401, detail="missing or invalid API key", headers={"WWW-Authenticate": "Bearer"}
            )

    return check


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware: 413 for a body over `max_bytes`, by Content-Length or by counting chunks."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self._too_large(send)
        received = 0
        started = False

        async def counting_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._too_large(send)

    async def _too_large(self, send):
        body = json.dumps({"detail": f"request body over {self.max_bytes} bytes"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
