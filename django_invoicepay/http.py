"""One place for outbound HTTP: timeouts, bounded retries with backoff, safe logging.

Provider clients build requests and read the wire format; this module only moves
bytes. It retries when that cannot do harm:
- a connection that was never made (nothing reached the provider), for any method;
- a timeout, a reset connection, a 502/503/504 or (with `expect_json`) an unreadable
  body only when the request is idempotent (GET, or a POST carrying an Idempotency-Key,
  which the provider de-duplicates; the same headers, key included, go on every attempt).
Log lines carry the method, the path and the outcome: never headers or bodies.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import NewConnectionError

from .errors import ProviderUnavailable

logger = logging.getLogger("django_invoicepay.http")

RETRY_STATUSES = frozenset({502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 2
    backoff: float = 0.2
    max_backoff: float = 2.0

    def delay(self, attempt: int) -> float:
        return min(self.backoff * (2**attempt), self.max_backoff)


def with_trailing_slash(url: str) -> str:
    """A base URL that relative paths can be appended to: the settings may name it with or without the "/"."""
    return url if url.endswith("/") else url + "/"


def _sleep(seconds: float) -> None:
    time.sleep(seconds)  # looked up at call time, so tests can stop the clock


def _is_json(response: requests.Response) -> bool:
    if not response.content:
        return True  # 204 and friends: nothing to read is fine
    try:
        response.json()
    except ValueError:
        return False
    return True


def never_sent(exc: requests.RequestException) -> bool:
    """True when the request cannot have reached the server (no connection was made)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError):
        seen: set[int] = set()
        stack: list[BaseException] = [exc]
        while stack:
            current = stack.pop()
            if id(current) in seen:
                continue
            seen.add(id(current))
            if isinstance(current, NewConnectionError | ConnectionRefusedError):
                return True
            stack.extend(a for a in current.args if isinstance(a, BaseException))
            for linked in (current.__cause__, current.__context__, getattr(current, "reason", None)):
                if isinstance(linked, BaseException):
                    stack.append(linked)
    return False


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@functools.lru_cache(maxsize=32)
def _environment_proxies(origin: str) -> dict[str, str]:
    """The proxies requests would take from the environment for `origin` (HTTP(S)_PROXY, NO_PROXY)."""
    return dict(requests.utils.get_environ_proxies(origin))


def _environment_ca_bundle() -> str | None:
    """The CA bundle requests would take from the environment (REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE)."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None


class HttpTransport:
    """A requests session with the app's timeout and retry rules."""

    def __init__(
        self,
        session: requests.Session,
        *,
        provider: str,
        timeout: float,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.session = session
        # requests reads proxies, NO_PROXY and the CA bundle from os.environ on every call when trust_env is
        # on (~0.7 ms a call, profiled: benchmarks/README.md); read them once per host instead. The
        # environment is the process's at start-up, as for most settings (docs/deployment.md#proxies).
        if session.trust_env:
            session.trust_env = False
            if session.verify is True:  # as requests: the environment's bundle only where none was chosen
                session.verify = _environment_ca_bundle() or True
            self._env_proxies: Callable[[str], dict[str, str]] | None = _environment_proxies
        else:
            self._env_proxies = None
        self.provider = provider
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.sleep = sleep or _sleep

    def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,  # a JSON-serialisable body
        params: dict | None = None,
        headers: dict | None = None,
        idempotent: bool = False,
        expect_json: bool = False,
    ) -> requests.Response:
        path = urlsplit(url).path
        attempt = 0
        while True:
            started = time.monotonic()
            try:
                proxies = self._env_proxies(origin(url)) if self._env_proxies else None
                response = self.session.request(method, url, json=json, params=params, headers=headers,
                                                timeout=self.timeout, proxies=proxies)
            except requests.RequestException as exc:
                safe = never_sent(exc) or idempotent
                reason = "timed out" if isinstance(exc, requests.Timeout) else "connection failed"
                if safe and attempt < self.retry.max_retries:
                    logger.warning(
                        "%s %s %s %s (attempt %d), retrying",
                        self.provider, method, path, reason, attempt + 1,
                    )
                    self.sleep(self.retry.delay(attempt))
                    attempt += 1
                    continue
                logger.error(
                    "%s %s %s %s after %d attempt(s)", self.provider, method, path, reason, attempt + 1
                )
                raise ProviderUnavailable(provider=self.provider) from exc
            elapsed_ms = int((time.monotonic() - started) * 1000)
            retry_status = response.status_code in RETRY_STATUSES
            unreadable = expect_json and response.status_code < 500 and not _is_json(response)
            if (retry_status or unreadable) and idempotent and attempt < self.retry.max_retries:
                logger.warning(
                    "%s %s %s -> %d%s (attempt %d), retrying",
                    self.provider, method, path, response.status_code,
                    " with an unreadable body" if unreadable else "", attempt + 1,
                )
                response.close()
                self.sleep(self.retry.delay(attempt))
                attempt += 1
                continue
            log = logger.warning if response.status_code >= 400 else logger.info
            log("%s %s %s -> %d in %d ms", self.provider, method, path, response.status_code, elapsed_ms)
            return response
