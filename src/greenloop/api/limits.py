"""Request body size limit (an ASGI middleware) and per-key rate limits."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from greenloop.api.problems import PROBLEM_MEDIA_TYPE, TYPE_PREFIX


class BodySizeLimit:
    """Reject request bodies larger than `max_bytes` with 413 before routing.

    A declared Content-Length over the limit is rejected at once; otherwise the
    body is read up to the limit and replayed to the application, so chunked
    uploads are bounded too.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._reject(scope, send, declared)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._reject(scope, send, size)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _reject(self, scope: Scope, send: Send, size: int) -> None:
        payload = json.dumps(
            {
                "type": f"{TYPE_PREFIX}body-too-large",
                "title": "Content Too Large",
                "status": 413,
                "detail": (
                    f"the request body has at least {size} bytes; the limit is "
                    f"{self.max_bytes} bytes, so send a smaller body"
                ),
                "instance": scope.get("path", ""),
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                    (b"content-length", str(len(payload)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """A token bucket per key: `per_minute` refill rate, `burst` capacity.

    NOTE: the buckets live in this process, so with several worker processes
    each one applies the limit on its own.
    """

    def __init__(self, per_minute: int, burst: int) -> None:
        if per_minute <= 0 or burst <= 0:
            raise ValueError(
                f"rate limit {per_minute}/min with burst {burst} is invalid; "
                "both must be positive"
            )
        self.rate_per_second = per_minute / 60.0
        self.burst = float(burst)
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str, now: float | None = None) -> float:
        """Take one token for `key`; return 0, or the seconds to wait when empty."""
        moment = time.monotonic() if now is None else now
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = _Bucket(self.burst, moment)
                self._buckets[key] = bucket
            elapsed = max(0.0, moment - bucket.updated)
            bucket.tokens = min(
                self.burst, bucket.tokens + elapsed * self.rate_per_second
            )
            bucket.updated = moment
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self.rate_per_second
