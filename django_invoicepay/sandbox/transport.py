"""Serves the sandbox to a requests session in-process: same client code path, no network.

`SandboxAdapter` is mounted on the configured base URLs, so the client builds and
sends real `PreparedRequest`s (headers, JSON body, query string) and reads real
`Response`s; only the socket is replaced. Injected faults happen here, as they would
on the wire.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from http import HTTPStatus
from io import BytesIO
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from urllib3.exceptions import NewConnectionError

from .rehive import SandboxResponse
from .state import SandboxState


def build_response(request: requests.PreparedRequest, answer: SandboxResponse) -> requests.Response:
    response = requests.Response()
    response.status_code = answer.status
    response.reason = HTTPStatus(answer.status).phrase if answer.status in HTTPStatus._value2member_map_ else ""
    response.headers = CaseInsensitiveDict({"Content-Type": answer.content_type, **answer.headers})
    response.raw = BytesIO(answer.content())
    response.url = request.url or ""
    response.request = request
    response.encoding = "utf-8"
    return response


def error_page(status: int) -> SandboxResponse:
    page = f"<html><body><h1>{status} {HTTPStatus(status).phrase}</h1></body></html>"
    return SandboxResponse(status, page.encode(), {"Content-Type": "text/html"})


def mangle(kind: str, answer: SandboxResponse) -> SandboxResponse:
    """The service's real answer as a faulty network or proxy would deliver it."""
    if kind == "garbage":
        return SandboxResponse(200, b"<html>Maintenance</html>", {"Content-Type": "text/html"})
    if kind == "malformed":
        return SandboxResponse(200, answer.content()[: max(len(answer.content()) // 2, 1)])
    if kind == "wrong_content_type":
        return SandboxResponse(answer.status, answer.content(), {"Content-Type": "text/html"})
    return answer


def raise_transport_fault(kind: str, request: requests.PreparedRequest) -> None:
    if kind == "connect":
        # No connection exists to name (urllib3's own __reduce__ passes None too; its annotation says otherwise).
        reason = NewConnectionError(None,  # type: ignore[arg-type]
                                    "Failed to establish a new connection: [Errno 111] Connection refused")
        raise requests.exceptions.ConnectionError(reason, request=request)
    if kind in {"timeout", "timeout_after"}:
        raise requests.exceptions.ReadTimeout("Read timed out. (sandbox fault)", request=request)
    if kind == "reset":
        raise requests.exceptions.ConnectionError(
            ConnectionResetError(104, "Connection reset by peer"), request=request
        )


RequestsTimeout = float | tuple[float | None, float | None] | None  # what requests passes an adapter


def _read_timeout(timeout: RequestsTimeout) -> float | None:
    if isinstance(timeout, tuple):
        timeout = timeout[-1]
    return float(timeout) if timeout else None


class SandboxAdapter(BaseAdapter):
    """A transport adapter that hands requests to the Rehive simulator."""

    def __init__(self, simulator: Any, bases: dict[str, str]) -> None:
        super().__init__()
        self.simulator = simulator  # RehiveSandbox or OnePipeSandbox: handle(service, method, path, ...)
        self.bases = bases  # base url -> service name

    @property
    def state(self) -> SandboxState:
        return self.simulator.state

    def send(  # noqa: D102
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: RequestsTimeout = None,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        url = request.url or ""
        matches = [(base, service) for base, service in self.bases.items() if url.startswith(base)]
        if not matches:
            raise requests.exceptions.ConnectionError(f"The sandbox does not serve {url}", request=request)
        base, service = max(matches, key=lambda item: len(item[0]))
        parts = urlsplit(url)
        path = url[len(base) :].split("?", 1)[0]
        body = request.body or b""
        body = body.encode() if isinstance(body, str) else body
        headers = dict(request.headers)
        self.state.log_request(
            {"service": service, "method": request.method, "path": path, "query": parts.query,
             "headers": headers, "body": body}
        )
        fault = self.state.take_fault(request.method or "", path)  # a prepared request always has a method
        kind = fault.kind if fault else ""
        delay = fault.delay if fault else 0.0
        if kind in {"connect", "timeout"}:
            raise_transport_fault(kind, request)
        if kind.isdigit():
            return build_response(request, error_page(int(kind)))
        if kind == "slow":
            limit = _read_timeout(timeout)
            time.sleep(min(delay, limit) if limit else delay)
            if limit and delay >= limit:
                raise_transport_fault("timeout", request)
        if service == "onepipe":
            answer = self.simulator.handle(request.method, path, headers=headers, body=body)
        else:
            answer = self.simulator.handle(
                service, request.method, path, query=parts.query, headers=headers, body=body, base_url=base
            )
        if kind in {"timeout_after", "reset"}:
            raise_transport_fault(kind, request)
        return build_response(request, mangle(kind, answer))

    def close(self) -> None:
        pass
