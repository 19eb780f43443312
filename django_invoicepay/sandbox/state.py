"""The sandbox's memory: what the simulated providers know, plus injected faults.

One state per process (a thread-safe singleton), optionally persisted to a JSON
file so the demo shop keeps its sandbox invoices across restarts. Tests reset it.
"""

from __future__ import annotations

import json
import os
import random
import re
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

FAULT_KINDS = (
    "500", "502", "503", "504",  # an HTTP error page (HTML, not the JSON envelope)
    "connect",                   # the connection is refused: nothing reached the service (in-process only)
    "timeout",                   # the request times out before the service handles it
    "timeout_after",             # the service handles it, then the answer is lost to a timeout
    "reset",                     # the service handles it, then the connection is reset (in-process only)
    "slow",                      # the answer comes after `delay` seconds (a timeout if that is too long)
    "garbage",                   # HTTP 200, an HTML page (wrong content type, not JSON)
    "malformed",                 # HTTP 200, application/json, but the JSON is cut off
    "wrong_content_type",        # the right JSON answer, labelled text/html
)


@dataclass
class Fault:
    """Make matching calls fail as `kind`: the next `times` of them (None: no limit), each with
    probability `rate` (1.0: always)."""

    kind: str
    path: str = ".*"
    method: str | None = None
    times: int | None = 1
    rate: float = 1.0
    delay: float = 1.0
    pattern: re.Pattern = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; choose from {', '.join(FAULT_KINDS)}")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError("rate is a probability from 0 to 1")
        self.pattern = re.compile(self.path)

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method.upper() == method) and bool(self.pattern.search(path))


def empty_data() -> dict[str, Any]:
    return {
        "invoices": {},
        "transactions": {},
        "refunds": {},
        "idempotency": {},
        "next_quote_id": 1,
        "last_ms": 0,
    }


class SandboxState:
    def __init__(self, path: str | None = None) -> None:
        self.lock = threading.RLock()
        self.path = path
        self.data: dict[str, Any] = empty_data()
        self.requests: list[dict[str, Any]] = []
        self.faults: list[Fault] = []
        self.random = random.Random(7)  # noqa: S311 - reproducible fault draws, not security
        self.faults_taken = 0
        if path and os.path.exists(path):
            with open(path, encoding="utf-8") as fh:
                self.data = {**empty_data(), **json.load(fh)}

    def reset(self) -> None:
        with self.lock:
            self.data = empty_data()
            self.requests.clear()
            self.faults.clear()
            self.faults_taken = 0
            self.save()

    def save(self) -> None:
        """Write the state atomically when a file is configured."""
        if not self.path:
            return
        with self.lock:
            directory = os.path.dirname(os.path.abspath(self.path))
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=".sandbox-", suffix=".json")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(self.data, fh)
            os.replace(tmp, self.path)

    def now_ms(self) -> int:
        """Epoch milliseconds, strictly increasing, so every change has a newer `updated`."""
        with self.lock:
            now = max(int(time.time() * 1000), self.data["last_ms"] + 1)
            self.data["last_ms"] = now
            return now

    def next_quote_id(self) -> int:
        with self.lock:
            value = self.data["next_quote_id"]
            self.data["next_quote_id"] = value + 1
            return value

    # -- faults and the request log (tests and the demo's fault panel) --------------------------

    def add_fault(self, kind: str, *, path: str = ".*", method: str | None = None, times: int | None = 1,
                  rate: float = 1.0, delay: float = 1.0) -> Fault:
        fault = Fault(kind=kind, path=path, method=method, times=times, rate=rate, delay=delay)
        with self.lock:
            self.faults.append(fault)
        return fault

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if (fault.times is None or fault.times > 0) and fault.matches(method, path):
                    if fault.rate < 1.0 and self.random.random() >= fault.rate:
                        continue
                    if fault.times is not None:
                        fault.times -= 1
                    self.faults_taken += 1
                    return fault
        return None

    def log_request(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self.requests.append(entry)


_state: SandboxState | None = None
_state_lock = threading.Lock()


def get_state(path: str | None = None) -> SandboxState:
    """The process's sandbox state, created on first use (loaded from `path` when given)."""
    global _state
    with _state_lock:
        if _state is None:
            _state = SandboxState(path)
        return _state
