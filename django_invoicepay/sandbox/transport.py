"""Serves the sandbox to a requests session in-process: same client code path, no network.

`SandboxAdapter` is mounted on the configured base URLs, so the client builds and
sends real `PreparedRequest`s (headers, JSON body, query string) and reads real
`Response`s; only the socket is replaced. Injected faults happen here, as they would
on the wire.
"""

from __future__ import annotations

from http import HTTPStatus
from io import BytesIO
from urllib.parse import urlsplit

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from urllib3.exceptions import NewConnectionError

from .rehive import RehiveSandbox, SandboxResponse
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


def fault_response(kind: str) -> SandboxResponse | None:
    """The answer a fault stands for, or None when it is a transport failure instead."""
    if kind.isdigit():
        page = f"<html><body><h1>{kind} {HTTPStatus(int(kind)).phrase}</h1></body></html>"
        return SandboxResponse(int(kind), page.encode(), {"Content-Type": "text/html"})
    if kind == "garbage":
        return SandboxResponse(200, b"<html>Maintenance</html>", {"Content-Type": "text/html"})
    return None


def raise_transport_fault(kind: str, request: requests.PreparedRequest) -> None:
    if kind == "connect":
        reason = NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused")
        raise requests.exceptions.ConnectionError(reason, request=request)
    if kind in {"timeout", "timeout_after"}:
        raise requests.exceptions.ReadTimeout("Read timed out. (sandbox fault)", request=request)


class SandboxAdapter(BaseAdapter):
    """A transport adapter that hands requests to the Rehive simulator."""

    def __init__(self, simulator: RehiveSandbox, bases: dict[str, str]) -> None:
        super().__init__()
        self.simulator = simulator
        self.bases = bases  # base url -> service name ('business' | 'requests')

    @property
    def state(self) -> SandboxState:
        return self.simulator.state

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):  # noqa: D102
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
        fault = self.state.take_fault(request.method, path)
        if fault and fault.kind in {"connect", "timeout"}:
            raise_transport_fault(fault.kind, request)
        if fault and fault_response(fault.kind) and fault.kind != "garbage":
            return build_response(request, fault_response(fault.kind))
        answer = self.simulator.handle(
            service, request.method, path, query=parts.query, headers=headers, body=body, base_url=base
        )
        if fault and fault.kind == "timeout_after":
            raise_transport_fault(fault.kind, request)
        if fault and fault.kind == "garbage":
            answer = fault_response("garbage")
        return build_response(request, answer)

    def close(self) -> None:
        pass
