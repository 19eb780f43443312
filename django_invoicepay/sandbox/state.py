"""The sandbox's memory: what the simulated providers know, plus injected faults.

The simulated objects live in a store (`store.py`): a SQLite file shared by every process of the
shop (runserver and its autoreloader, shell, workers, `invoicepay_sync`, `invoicepay_sandbox`), or
memory in this process only (tests). Injected faults and the request log always belong to the
process that injected or sent them.

Which store `get_state()` gives follows the settings (`configured_location`); tests replace it
with a fresh one through `isolated()`.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .store import MEMORY, DataView, MemoryStore, SqliteStore, empty_data, open_store

__all__ = ["DEFAULT_FILENAME", "FAULT_KINDS", "MEMORY", "Fault", "SandboxState", "configured_location", "empty_data",
           "get_state", "isolated"]

#: The store's file name when the settings name none (in BASE_DIR, with DEBUG on).
DEFAULT_FILENAME = ".invoicepay-sandbox.sqlite3"

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


class SandboxState:
    """One sandbox: its store (`location`: a file path, or ":memory:") and this process's faults and
    request log."""

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.lock = threading.RLock()  # the request log and the faults (and the data of a memory store)
        self.store: MemoryStore | SqliteStore = open_store(path, self.lock)
        self.requests: list[dict[str, Any]] = []
        self.faults: list[Fault] = []
        self.random = random.Random(7)  # noqa: S311 - reproducible fault draws, not security
        self.faults_taken = 0

    @property
    def path(self) -> str | None:
        """The store's file, or None when the data is in this process's memory."""
        return self.store.path

    @property
    def location(self) -> str:
        return self.store.path or MEMORY

    def describe(self) -> str:
        if self.store.path:
            return f"{self.store.path} (shared by every process that uses this file)"
        return "memory (this process only)"

    @property
    def data(self) -> dict[str, Any] | DataView:
        """The simulated objects. In memory: the live dict. In a file: inside `transaction()` the
        transaction's data; outside it, read-only copies (each read is its own transaction)."""
        return self.store.current()

    def transaction(self) -> contextlib.AbstractContextManager[dict[str, Any] | DataView]:
        """`with state.transaction() as data:` reads, changes and writes simulated objects atomically,
        one process at a time (in a file: BEGIN IMMEDIATE ... COMMIT, rolled back on an exception)."""
        return self.store.transaction()

    def reset(self) -> None:
        """Forget every simulated object (for every process sharing the file) and this process's
        faults and request log."""
        self.store.reset()
        with self.lock:
            self.requests.clear()
            self.faults.clear()
            self.faults_taken = 0

    def close(self) -> None:
        self.store.close()

    def now_ms(self) -> int:
        """Epoch milliseconds, strictly increasing, so every change has a newer `updated`."""
        with self.transaction() as data:
            now = max(int(time.time() * 1000), data["last_ms"] + 1)
            data["last_ms"] = now
            return now

    def next_quote_id(self) -> int:
        with self.transaction() as data:
            value = data["next_quote_id"]
            data["next_quote_id"] = value + 1
            return value

    # -- faults and the request log (this process only) -----------------------------------------

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

    def __repr__(self) -> str:
        return f"<SandboxState in {self.describe()}>"


def configured_location() -> str:
    """Where the current settings keep the sandbox: a file path, or ":memory:" (this process only).

    `SANDBOX_STATE_FILE` when set (":memory:" included). Otherwise, with DEBUG on, the file
    `.invoicepay-sandbox.sqlite3` in `BASE_DIR` (else beside the SQLite database, else in the current
    directory), so every process of the shop shares one sandbox; with DEBUG off (tests, CI), memory.
    """
    from django.conf import settings

    if not settings.configured:
        return MEMORY
    from ..conf import invoicepay_settings

    value = invoicepay_settings.SANDBOX_STATE_FILE
    if value is not None and os.fspath(value) != "":
        return os.fspath(value)
    if not settings.DEBUG:
        return MEMORY
    base = getattr(settings, "BASE_DIR", None)
    if base is None:
        database = settings.DATABASES.get("default", {})
        name = str(database.get("NAME") or "")
        engine = str(database.get("ENGINE") or "")
        if engine.endswith("sqlite3") and name and name != MEMORY and "mode=memory" not in name:
            base = os.path.dirname(os.path.abspath(name.removeprefix("file:").split("?")[0]))
    return os.path.join(os.fspath(base or os.getcwd()), DEFAULT_FILENAME)


_states: dict[str, SandboxState] = {}
_states_lock = threading.Lock()
_isolated: list[SandboxState] = []


def get_state(path: str | os.PathLike | None = None) -> SandboxState:
    """The sandbox at `path` (a file, or ":memory:"); without it, the one the settings name, or the
    innermost `isolated()` one. One SandboxState per location and process."""
    if path is None:
        if _isolated:
            return _isolated[-1]
        path = configured_location()
    key = MEMORY if os.fspath(path) == MEMORY else os.path.abspath(os.fspath(path))
    with _states_lock:
        state = _states.get(key)
        if state is None:
            state = _states[key] = SandboxState(key)
        return state


@contextlib.contextmanager
def isolated(path: str | os.PathLike | None = None) -> Iterator[SandboxState]:
    """Until the block ends, this process's sandbox (every client, payer action and `get_state()`)
    is a fresh, empty one: in memory, or in the file `path` (emptied first). For tests."""
    state = SandboxState(path)
    if state.path:
        state.reset()
    _isolated.append(state)
    try:
        yield state
    finally:
        _isolated.remove(state)
        state.close()
