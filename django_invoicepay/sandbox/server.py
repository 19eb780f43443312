"""The sandbox over HTTP, for shops that want a separate process (or a non-Python client).

It uses the same store as the in-process sandbox (`state.py`): with a file, what the server
serves and what the shop's processes see in-process is one sandbox. Faults and the request log
are the server process's own.

Paths:
- `/business/api/...`          the business service (set REHIVE.BUSINESS_URL to this)
- `/payment-requests/api/...`  the payment-requests service (REHIVE.PAYMENT_REQUESTS_URL)
- `/onepipe/v2/...`            OnePipe's /transact family (ONEPIPE.BASE_URL)
- `POST /sandbox/<action>/`    payer actions, JSON body `{"invoice": "<id>", ...}`:
  choose_processor (`processor`), pay (`amount`), overpay / underpay (`by`),
  crypto_deposit (`amount`, `confirmations`), confirm (`code`, `confirmations`), expire;
  `POST /sandbox/reset/` forgets everything; `POST /sandbox/stats/` counts requests, faults and invoices;
- `POST /sandbox/faults/`         inject faults: `{"kind": "503", "path": "invoices/", "rate": 0.2, "times": null}`,
  `{"clear": true}` removes them (kinds in `state.FAULT_KINDS`; connect and reset are in-process only).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from . import payer
from .onepipe import OnePipeSandbox
from .rehive import RehiveSandbox, SandboxResponse, _detached, error, ok
from .transport import error_page, mangle

SERVICES = {"/business/api/": "business", "/payment-requests/api/": "requests", "/onepipe/v2/": "onepipe"}
ACTIONS: dict[str, Callable] = {
    "choose_processor": payer.choose_processor,
    "pay": payer.pay,
    "overpay": payer.overpay,
    "underpay": payer.underpay,
    "crypto_deposit": payer.crypto_deposit,
    "confirm": payer.confirm,
    "expire": payer.expire,
}
ACTION_ARGS = {"processor", "amount", "by", "confirmations", "code"}


class SandboxApp:
    """A WSGI application around one simulator."""

    def __init__(self, simulator: RehiveSandbox, onepipe: OnePipeSandbox | None = None) -> None:
        self.simulator = simulator
        self.onepipe = onepipe

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"].upper()
        path = environ.get("PATH_INFO", "")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {
            key[5:].replace("_", "-").title(): value for key, value in environ.items() if key.startswith("HTTP_")
        }
        host = environ.get("HTTP_HOST") or f"{environ['SERVER_NAME']}:{environ['SERVER_PORT']}"
        answer = self.dispatch(method, path, environ.get("QUERY_STRING", ""), headers, body, host)
        content = answer.content()
        start_response(
            f"{answer.status} {HTTPStatus(answer.status).phrase}",
            [("Content-Type", answer.content_type), ("Content-Length", str(len(content)))],
        )
        return [content]

    def dispatch(self, method: str, path: str, query: str, headers: dict, body: bytes, host: str) -> SandboxResponse:
        for prefix, service in SERVICES.items():
            if path.startswith(prefix):
                sub = path[len(prefix) :]
                self.simulator.state.log_request({"service": service, "method": method, "path": sub})
                fault = self.simulator.state.take_fault(method, sub)
                kind = fault.kind if fault else ""
                if kind.isdigit():
                    return error_page(int(kind))
                if fault is not None and kind in {"slow", "timeout", "timeout_after"}:
                    time.sleep(fault.delay)  # longer than the client's timeout: it gives up
                if service == "onepipe":
                    if self.onepipe is None:
                        return error(404, "This sandbox serves no OnePipe.")
                    answer = self.onepipe.handle(method, sub, headers=headers, body=body)
                else:
                    answer = self.simulator.handle(
                        service, method, sub, query=query, headers=headers, body=body,
                        base_url=f"http://{host}{prefix}",
                    )
                return mangle(kind, answer)
        if path.rstrip("/") == "/sandbox/faults" and method == "POST":
            return self.fault(body)
        if path.startswith("/sandbox/") and method == "POST":
            return self.action(path.strip("/").split("/")[-1], body)
        return error(404, "Not found.")

    def fault(self, body: bytes) -> SandboxResponse:
        """POST /sandbox/faults/ {"kind", "path", "method", "times", "rate", "delay"}; {"clear": true} removes all."""
        try:
            spec = json.loads(body or b"{}")
            if spec.get("clear"):
                with self.simulator.state.lock:
                    self.simulator.state.faults.clear()
                return ok(None)
            allowed = {"path", "method", "times", "rate", "delay"}
            self.simulator.state.add_fault(spec["kind"], **{k: v for k, v in spec.items() if k in allowed})
        except (ValueError, KeyError, TypeError) as exc:
            return error(400, f"Bad fault: {exc}")
        return ok(None, status=201)

    def action(self, name: str, body: bytes) -> SandboxResponse:
        state = self.simulator.state
        if name == "reset":
            state.reset()
            return ok(None)
        if name == "stats":
            with state.transaction() as data:
                invoices = len(data["invoices"])
            return ok({"requests": len(state.requests), "faults": state.faults_taken, "invoices": invoices})
        if name not in ACTIONS:
            return error(404, f"Unknown sandbox action {name!r}.")
        try:
            payload = json.loads(body or b"{}")
            invoice_id = str(payload["invoice"])
            kwargs = {key: value for key, value in payload.items() if key in ACTION_ARGS}
        except (ValueError, KeyError, TypeError):
            return error(400, 'Send JSON like {"invoice": "<id>"}.')
        try:
            with state.transaction():
                if name == "choose_processor":
                    invoice = ACTIONS[name](invoice_id, kwargs.get("processor", ""), state=state)
                else:
                    invoice = ACTIONS[name](invoice_id, state=state, **kwargs)
                invoice = _detached(invoice)  # as it was when the action ended
        except (payer.SandboxActionError, TypeError) as exc:
            return error(400, str(exc))
        return ok(invoice)


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def make_sandbox_server(simulator: RehiveSandbox, host: str = "127.0.0.1", port: int = 8765,
                        onepipe: OnePipeSandbox | None = None) -> WSGIServer:
    return make_server(host, port, SandboxApp(simulator, onepipe), server_class=_ThreadingServer,
                       handler_class=_QuietHandler)
