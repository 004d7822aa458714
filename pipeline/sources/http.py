"""A polite HTTP client for the Hub: timeouts, retries with exponential backoff and jitter that honour
`Retry-After` and the Hub's `RateLimit` header, a per-host rate limit, a cap on response size,
conditional requests, a clear User-Agent, and a token sent only to the configured host.

Retries are tenacity's; transport is httpx's.
"""

from __future__ import annotations

import email.utils
import re
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from pipeline.version import code_version

USER_AGENT = f"hf-papers-pipeline/{code_version()} (dataset curation; +https://huggingface.co/papers)"
RETRY_STATUSES = {429, 500, 502, 503, 504}


class FetchError(Exception):
    """A page that could not be fetched; `reason` says why, in words fit for a log."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class RetryableStatus(FetchError):
    def __init__(self, status: int, wait: float | None):
        super().__init__(f"HTTP {status}")
        self.status, self.wait = status, wait


@dataclass
class Response:
    status: int  # 200, or 304 when the page is unchanged since `etag` / `last_modified`
    body: bytes
    content_type: str | None
    etag: str | None
    last_modified: str | None
    attempts: int


class RateLimiter:
    """At most `per_second` requests a second to each host, shared by every thread of the process."""

    def __init__(self, per_second: float):
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self.next_at: dict[str, float] = {}
        self.lock = threading.Lock()

    def wait(self, host: str) -> None:
        with self.lock:
            now = time.monotonic()
            at = max(now, self.next_at.get(host, now))
            self.next_at[host] = at + self.interval
        if at > now:
            time.sleep(at - now)

    def hold(self, host: str, seconds: float) -> None:
        """Send nothing to `host` for `seconds` (the server asked for it)."""
        with self.lock:
            self.next_at[host] = max(self.next_at.get(host, 0.0), time.monotonic() + seconds)


def retry_after(headers: httpx.Headers) -> float | None:
    """Seconds to wait, from `Retry-After` (seconds or an HTTP date) or the Hub's
    `RateLimit: "api";r=<left>;t=<seconds>` when no request is left."""
    value = headers.get("retry-after")
    if value:
        if value.strip().isdigit():
            return float(value)
        when = email.utils.parsedate_to_datetime(value)
        if when is not None:
            return max(0.0, when.timestamp() - time.time())
    limit = headers.get("ratelimit")
    if limit:
        left, reset = re.search(r"\br=(\d+)", limit), re.search(r"\bt=(\d+)", limit)
        if left and reset and int(left.group(1)) == 0:
            return float(reset.group(1))
    return None


@dataclass
class Client:
    base_url: str
    token: str | None = None
    per_second: float = 2.0
    timeout: float = 30.0
    max_bytes: int = 50 * 1024 * 1024
    attempts: int = 6
    max_wait: float = 60.0
    limiter: RateLimiter = field(init=False)

    def __post_init__(self):
        self.limiter = RateLimiter(self.per_second)
        self.host = urlsplit(self.base_url).netloc
        self.http = httpx.Client(timeout=self.timeout, follow_redirects=False,
                                 headers={"User-Agent": USER_AGENT})

    def close(self) -> None:
        self.http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def url(self, path: str) -> str:
        return self.base_url.rstrip("/") + "/" + path.lstrip("/")

    def _headers(self, url: str, etag: str | None, last_modified: str | None) -> dict:
        headers = {}
        # The token goes to the configured host only, never to another (a redirect, a page URL).
        if self.token and urlsplit(url).netloc == self.host:
            headers["Authorization"] = f"Bearer {self.token}"
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        return headers

    def _once(self, url: str, params: dict | None, headers: dict, attempt: int) -> Response:
        host = urlsplit(url).netloc
        self.limiter.wait(host)
        try:
            with self.http.stream("GET", url, params=params, headers=headers) as r:
                if r.status_code in RETRY_STATUSES:
                    wait = retry_after(r.headers)
                    if wait is not None:
                        self.limiter.hold(host, min(wait, self.max_wait))
                    raise RetryableStatus(r.status_code, wait)
                if r.status_code == 304:
                    return Response(304, b"", None, r.headers.get("etag"), r.headers.get("last-modified"), attempt)
                if r.status_code != 200:
                    raise FetchError(f"HTTP {r.status_code}")
                declared = int(r.headers.get("content-length") or 0)
                if declared > self.max_bytes:
                    raise FetchError(f"response of {declared} bytes is over the cap of {self.max_bytes}")
                chunks, size = [], 0
                for chunk in r.iter_bytes():
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise FetchError(f"response over the cap of {self.max_bytes} bytes")
                    chunks.append(chunk)
                return Response(200, b"".join(chunks), r.headers.get("content-type"), r.headers.get("etag"),
                                r.headers.get("last-modified"), attempt)
        except httpx.HTTPError as err:
            # Timeouts, refused or dropped connections, bodies cut short (a truncated body is never kept).
            raise TransportFailure(f"{type(err).__name__}: {err}" if str(err) else type(err).__name__) from None

    def get(self, path_or_url: str, params: dict | None = None, etag: str | None = None,
            last_modified: str | None = None, check=None) -> Response:
        """GET with retries. `check(body)` may raise ValueError for a body that is not whole (say,
        JSON that does not parse): that is retried like a dropped connection."""
        url = path_or_url if "://" in path_or_url else self.url(path_or_url)
        headers = self._headers(url, etag, last_modified)

        def wait(state: RetryCallState) -> float:
            err = state.outcome.exception()
            asked = err.wait if isinstance(err, RetryableStatus) else None
            backoff = wait_exponential_jitter(initial=0.5, max=self.max_wait)(state)
            return min(self.max_wait, max(backoff, asked or 0.0))

        retrying = Retrying(stop=stop_after_attempt(self.attempts), wait=wait, reraise=True,
                            retry=retry_if_exception_type((RetryableStatus, TransportFailure, IncompleteBody)))
        for attempt in retrying:
            with attempt:
                response = self._once(url, params, headers, attempt.retry_state.attempt_number)
                if response.status == 200 and check is not None:
                    try:
                        check(response.body)
                    except ValueError as err:
                        raise IncompleteBody(f"body not whole: {err}") from None
                return response
        raise AssertionError("unreachable")


class TransportFailure(FetchError):
    pass


class IncompleteBody(FetchError):
    pass
