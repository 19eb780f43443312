"""Crashes on purpose, for tests/test_reliability_crashes.py: processes killed (and restarted at once, as a
process manager would), database connections dropped by the server. Every loop here is bounded in count
and in time, and every process goes through `Run.start`, so the run's finalizer stops it."""

from __future__ import annotations

import random
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable

from tests.reliability.harness import Run, server_connection

#: A supervised process that keeps dying by itself is restarted this many times, then left dead.
MAX_UNEXPECTED_EXITS = 5


class Supervised:
    """A process kept running: started by `launch(generation)`, restarted at once whenever it exits,
    until `halt()`. Exits that `kill()` caused are counted apart from the ones nobody caused."""

    def __init__(self, name: str, launch: Callable[[int], subprocess.Popen],
                 ready: Callable[[subprocess.Popen], bool]) -> None:
        self.name, self.launch, self.is_ready = name, launch, ready
        self.kills: Counter = Counter()  # signal name -> times sent
        self.unexpected: list[str] = []  # the output tails of exits nobody caused
        self.generation = 0
        self.ready = threading.Event()
        self.halted = threading.Event()
        self.lock = threading.Lock()
        self.killed: set[subprocess.Popen] = set()  # the processes kill() signalled
        self.process = launch(0)
        self.thread = threading.Thread(target=self._watch, name=f"supervise-{name}", daemon=True)
        self.thread.start()

    @property
    def restarts(self) -> int:
        return self.generation

    def _watch(self) -> None:
        deadline = time.monotonic() + 3600  # a bound, never reached by a run
        while not self.halted.is_set() and time.monotonic() < deadline:
            process = self.process
            if process.poll() is None:
                if not self.ready.is_set() and process not in self.killed and self.is_ready(process):
                    self.ready.set()
                time.sleep(0.02)
                continue
            with self.lock:
                self.ready.clear()
                if self.halted.is_set():
                    return
                if process not in self.killed:
                    self.unexpected.append(f"exit {process.returncode}: {Run.output(process)[-2000:]}")
                    if len(self.unexpected) > MAX_UNEXPECTED_EXITS:
                        return
                self.generation += 1
                self.process = self.launch(self.generation)

    def kill(self, sig: signal.Signals, *, ready_within: float = 30.0) -> bool:
        """Send `sig` to the process once it is up (waiting at most `ready_within` s); False if it never was."""
        if not self.ready.wait(ready_within):
            return False
        with self.lock:
            process = self.process
            if self.halted.is_set() or process.poll() is not None:
                return False
            self.killed.add(process)
            self.ready.clear()  # until the next one is up
            process.send_signal(sig)
            self.kills[sig.name] += 1
        return True

    def halt(self) -> None:
        """Stop restarting; the process now running is left running (the run's finalizer stops it)."""
        self.halted.set()
        self.thread.join(timeout=30)


class ProgressKiller(threading.Thread):
    """Kills a supervised process when the sender's progress passes each of `points` (a number of events
    sent), with signals taken in turn from `signals`; after its process is up again, and a random moment
    later. Stops at `stop` or after `limit` seconds."""

    def __init__(self, target: Supervised, progress: Callable[[], int], points: list[int],
                 signals: list[signal.Signals], stop: threading.Event, rng: random.Random, limit: float = 600) -> None:
        super().__init__(name=f"kill-{target.name}", daemon=True)
        self.target, self.progress, self.points, self.signals = target, progress, sorted(points), signals
        self.stop, self.rng, self.limit = stop, rng, limit

    def run(self) -> None:
        deadline = time.monotonic() + self.limit
        for n, point in enumerate(self.points):
            while self.progress() < point:
                if self.stop.wait(0.02) or time.monotonic() > deadline:
                    return
            self.target.ready.wait(30)
            if self.stop.wait(self.rng.uniform(0.0, 0.6)):  # a random moment of its life, not its first
                return
            self.target.kill(self.signals[n % len(self.signals)])


class ConnectionKiller(threading.Thread):
    """Every 0.05-0.4 s, the database server drops every connection to the run's database but its own
    (PostgreSQL: pg_terminate_backend; MariaDB: KILL CONNECTION). Stops at `stop` or after `limit` s."""

    def __init__(self, engine: str, database: str, stop: threading.Event, rng: random.Random,
                 limit: float = 600) -> None:
        super().__init__(name="kill-connections", daemon=True)
        self.engine, self.database, self.stop, self.rng, self.limit = engine, database, stop, rng, limit
        self.rounds = self.dropped = 0
        self.failures: list[str] = []

    def run(self) -> None:
        deadline = time.monotonic() + self.limit
        conn = server_connection(self.engine)
        try:
            cursor = conn.cursor()
            while not self.stop.wait(self.rng.uniform(0.05, 0.4)) and time.monotonic() < deadline:
                try:
                    self.dropped += self._drop(cursor)
                    self.rounds += 1
                except Exception as exc:  # noqa: BLE001 - reported; the run goes on
                    self.failures.append(repr(exc))
                    if len(self.failures) > 20:
                        return
        finally:
            conn.close()

    def _drop(self, cursor) -> int:
        if self.engine == "postgres":
            cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = %s AND pid <> pg_backend_pid()", [self.database])
            return sum(1 for (terminated,) in cursor.fetchall() if terminated)
        cursor.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s AND ID <> CONNECTION_ID()",
                       [self.database])
        dropped = 0
        for (connection_id,) in cursor.fetchall():
            try:
                cursor.execute(f"KILL CONNECTION {int(connection_id)}")
                dropped += 1
            except Exception as exc:  # noqa: BLE001 - it ended by itself meanwhile (unknown thread id)
                if "Unknown thread" not in str(exc):
                    raise
        return dropped
