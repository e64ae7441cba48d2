"""What `cxrvlm serve` accepts, and the two guards that hold it to that before any work is done.

- `Limits`: the request body (the X-ray, its prior and the form together), the pixels of an image, the questions
  (length and count), how many requests may wait for the model, and how long one may wait.
- `BodyLimit`: ASGI middleware in front of the form parser (which spools every upload to disk before the endpoint
  runs): a body over the limit is refused with 413 at once when its Content-Length says so, else as soon as the
  streamed bytes pass it. The chunk that passes the limit is dropped, so no more than the limit is ever handed on.
- `Gate`: readings run one at a time (the model is CPU-bound: two at once would only share the cores and double the
  peak memory). At most `max_queue` requests wait for their turn; one more is refused at once with 503 and
  `Retry-After`, and a request that has waited `timeout` seconds is refused with 503. A reading that has begun runs
  to its end: a CPU-bound reading cannot be interrupted in its thread, so the timeout bounds the wait, not the work.
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any

from cxrvlm.io import DEFAULT_MAX_PIXELS

MB = 1 << 20


class UploadError(ValueError):
    """A request the server refuses; `status` is its HTTP status, the message names the file or field and the reason;
    `headers` go with the response (Retry-After)."""

    def __init__(self, message: str, status: int = 400, image: str = "", headers: dict[str, str] | None = None
                 ) -> None:
        super().__init__(message)
        self.status, self.image, self.headers = status, image, headers or {}


@dataclass(frozen=True)
class Limits:
    """The server's limits (`cxrvlm serve --help` and the README's "Limits" say the same)."""

    max_upload_mb: float = 64.0  # the whole request body; a large uncompressed DICOM is tens of MB
    max_pixels: int = DEFAULT_MAX_PIXELS  # per image, checked on its header; the reader's own limit is the most
    max_question_chars: int = 300  # the model's text window is 256 tokens, prompt and answer together
    max_questions: int = 8
    max_queue: int = 8  # requests waiting for the model; 0: none waits
    timeout: float = 60.0  # seconds a request may wait for its turn

    def __post_init__(self) -> None:
        for f in fields(self):
            value, least = getattr(self, f.name), (0 if f.name == "max_queue" else 1e-9)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value < least:
                raise ValueError(f"{f.name} must be {'non-negative' if least == 0 else 'positive'}, got {value!r}")
            if f.name != "max_upload_mb" and f.name != "timeout" and value != int(value):
                raise ValueError(f"{f.name} must be a whole number, got {value!r}")
        if self.max_pixels > DEFAULT_MAX_PIXELS:
            raise ValueError(f"max_pixels must be at most the image reader's limit of {DEFAULT_MAX_PIXELS:,}, got "
                             f"{self.max_pixels:,}")

    @property
    def max_bytes(self) -> int:
        return int(self.max_upload_mb * MB)

    def too_large(self, sent: str) -> UploadError:
        return UploadError(f"the request ({sent}) is larger than the server's limit of {self.max_upload_mb:g} MB "
                           "(the X-ray, its prior and the form together)", 413)


# an ASGI app: the 413 response the server's error handler would give, built by create_app
Refusal = Callable[[dict[str, Any], UploadError], Any]


class BodyLimit:
    """ASGI middleware: refuse a request body over `limits.max_bytes` with 413 before the app reads it (see the
    module's docstring). `refusal(scope, error)` is the response to send."""

    def __init__(self, app: Any, limits: Limits, refusal: Refusal) -> None:
        self.app, self.limits, self.refusal = app, limits, refusal

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limits.max_bytes:
            await self.refusal(scope, self.limits.too_large(f"{declared:,} bytes"))(scope, receive, send)
            return
        body = _MeteredBody(receive, send, self.limits.max_bytes)
        try:
            await self.app(scope, body.receive, body.send)
        except Exception:
            if not body.over:
                raise
        if body.over and not body.started:
            sent = f"more than {self.limits.max_bytes:,} bytes sent"
            await self.refusal(scope, self.limits.too_large(sent))(scope, receive, send)


class _MeteredBody:
    """The request's body messages, counted: past `max_bytes` the app is told the client left (so the form parser
    stops, holding at most `max_bytes`), and its answer to that is dropped for the 413."""

    def __init__(self, receive: Any, send: Any, max_bytes: int) -> None:
        self._receive, self._send, self.max_bytes = receive, send, max_bytes
        self.total, self.over, self.started = 0, False, False

    async def receive(self) -> dict[str, Any]:
        if self.over:
            return {"type": "http.disconnect"}
        message = await self._receive()
        if message["type"] == "http.request":
            self.total += len(message.get("body", b""))
            if self.total > self.max_bytes:
                self.over = True
                return {"type": "http.disconnect"}
        return message

    async def send(self, message: dict[str, Any]) -> None:
        if self.over:
            return
        self.started = True
        await self._send(message)


def _content_length(scope: dict[str, Any]) -> int | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class Gate:
    """One reading at a time, at most `max_queue` waiting, none waiting longer than `timeout` s (module docstring)."""

    def __init__(self, max_queue: int, timeout: float) -> None:
        self.max_queue, self.timeout = max_queue, timeout
        self._turn, self._count = threading.Lock(), threading.Lock()
        self.waiting = 0
        self.mean_s = 1.0  # a running mean of how long a turn takes, for Retry-After

    @contextmanager
    def turn(self, since: float) -> Iterator[None]:
        """Hold the model for one reading; `since` (time.monotonic()) is when the request's wait began."""
        self._join()
        try:
            got = self._turn.acquire(timeout=max(0.0, since + self.timeout - time.monotonic()))
        finally:
            with self._count:
                self.waiting -= 1
        if not got:
            raise self._busy(f"the server is busy: no turn for this reading within the {self.timeout:g} s timeout")
        begin = time.monotonic()
        try:
            yield
        finally:
            self.mean_s = 0.8 * self.mean_s + 0.2 * (time.monotonic() - begin)
            self._turn.release()

    def _join(self) -> None:
        with self._count:
            if self.waiting >= self.max_queue and self._turn.locked():
                raise self._busy(f"the server is busy: {self.waiting} requests are already waiting "
                                 f"(the limit is {self.max_queue})")
            self.waiting += 1

    def _busy(self, reason: str) -> UploadError:
        seconds = max(1, math.ceil(self.mean_s * (self.waiting + 1)))
        return UploadError(f"{reason}; try again in {seconds} s", 503, headers={"Retry-After": str(seconds)})
