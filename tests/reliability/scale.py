"""The scale leg of the reliability suite (tests/test_reliability_scale.py): the shop deployed as in production,
gunicorn with 4 workers, 2 task workers (django-tasks-db's `db_worker`), a poller, PostgreSQL, a Redis cache and
one sandbox store every process shares, under thousands of deliveries and kills. What is new beside harness.py
(the run, the provider, the sender) and chaos.py (supervised processes, kills at points of the progress)."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.reliability.chaos import Supervised
from tests.reliability.harness import (
    ROOT,
    Provider,
    Run,
    Sender,
    free_port,
    prepare_database,
    server_connection,
    wait_for,
)

REDIS_URL = "redis://127.0.0.1:6379/5"  # the Redis DB number the scale leg may use (its own key prefix in it)
GUNICORN_WORKERS, TASK_WORKERS, CLIENTS = 4, 2, 16
ACCEPTED = frozenset({200, 202})  # the answers that end the provider's redelivery of an event
SETTINGS = '''"""Written by tests/reliability/scale.py: the reliability settings, task workers, Redis, one sandbox."""
from demo.settings_workers import INSTALLED_APPS as _WORKER_APPS
from demo.settings_workers import TASKS  # noqa: F401 - django-tasks-db (INVOICEPAY_TASKS=db)
from tests.reliability.settings import *  # noqa: F403
from tests.reliability.settings import INSTALLED_APPS, INVOICEPAY

INSTALLED_APPS = [*INSTALLED_APPS, *(app for app in _WORKER_APPS if app not in INSTALLED_APPS)]
CACHES = {{"default": {{"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": {redis!r},
                        "KEY_PREFIX": {prefix!r}}}}}
# Every process calls the provider through the in-process sandbox, on one store (docs/sandbox.md); the sandbox
# server the test drives the payers with uses it too.
INVOICEPAY = {{**INVOICEPAY, "SANDBOX": True, "SANDBOX_STATE_FILE": {store!r}}}
SILENCED_SYSTEM_CHECKS = ["invoicepay.W003"]  # the sandbox with DEBUG off: on purpose
'''
TASKS_QUERY = ("import json; from django_tasks_db.models import DBTaskResult as T; "
               "print(json.dumps([[t.status, t.enqueued_at.timestamp(), t.started_at and t.started_at.timestamp(), "
               "t.finished_at and t.finished_at.timestamp()] for t in T.objects.all()]))")


def scale_size() -> int:
    """How many deliveries: INVOICEPAY_SCALE_N (`make test-scale` sets 5,000), else the CI size."""
    return int(os.environ.get("INVOICEPAY_SCALE_N") or 600)


def unavailable(message: str) -> None:
    """A server the leg needs is not there: a failure in the PostgreSQL leg (INVOICEPAY_TEST_DB=postgres),
    skipped with the reason where no database was asked for (as the rest of the suite does)."""
    if os.environ.get("INVOICEPAY_TEST_DB") == "postgres":
        pytest.fail(f"The scale leg needs {message}", pytrace=False)
    pytest.skip(f"postgres: the scale leg needs {message}")


def create_database(tmp: Path) -> str:
    """A new PostgreSQL database of this run's own, `invoicepay_scale_<pid>_<random>`."""
    name = f"invoicepay_scale_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        return prepare_database("postgres", tmp, name)
    except pytest.skip.Exception as exc:
        unavailable(f"PostgreSQL at 127.0.0.1 ({exc})")
        raise


def drop_database(name: str) -> None:
    conn = server_connection("postgres")
    try:
        conn.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        conn.close()


class CacheKeys:
    """A key prefix of this run's own in Redis DB 5; `forget()` deletes its keys afterwards (never a flush)."""

    def __init__(self) -> None:
        try:
            import redis
        except ImportError:
            unavailable("redis-py (pip install -e '.[test]')")
        self.client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        try:
            self.client.ping()
        except redis.RedisError as exc:
            unavailable(f"Redis at {REDIS_URL} ({type(exc).__name__}: {exc}): start it")
        self.prefix = f"invoicepay-scale-{uuid.uuid4().hex[:10]}"
        self.forgotten: int | None = None

    def forget(self) -> int:
        """Delete this run's keys (once); how many there were."""
        if self.forgotten is None:
            keys = list(self.client.scan_iter(match=f"{self.prefix}:*", count=500))
            for key in keys:
                self.client.delete(key)
            self.client.close()
            self.forgotten = len(keys)
        return self.forgotten


class Gunicorn:
    """The shop under gunicorn: a master and its sync workers. `kill` signals one worker at random (the master
    starts another): the same interface as a `Supervised` process, so `chaos.ProgressKiller` aims at it."""

    name = "gunicorn worker"

    def __init__(self, run: Run, port: int, workers: int, rng: random.Random) -> None:
        self.workers, self.rng = workers, rng
        self.master = run.start("gunicorn", "gunicorn", "demo.wsgi:application", "--bind", f"127.0.0.1:{port}",
                                "--workers", str(workers), "--worker-class", "sync", "--timeout", "30",
                                "--graceful-timeout", "10", "--no-control-socket", module=True)
        self.ready = threading.Event()
        self.ready.set()  # kill() itself waits for a full set of workers
        self.kills: Counter = Counter()

    def pids(self) -> list[int]:
        """The master's workers now (Linux's /proc)."""
        found = []
        for task in Path(f"/proc/{self.master.pid}/task").glob("*"):
            try:
                found += [int(pid) for pid in (task / "children").read_text().split()]
            except OSError:  # gone meanwhile
                continue
        return found

    def kill(self, sig: signal.Signals, *, ready_within: float = 30.0) -> bool:
        """Send `sig` to one worker once all of them are up (waiting at most `ready_within` s)."""
        deadline = time.monotonic() + ready_within
        while len(pids := self.pids()) < self.workers:
            if time.monotonic() > deadline or self.master.poll() is not None:
                return False
            time.sleep(0.05)
        try:
            os.kill(self.rng.choice(pids), sig)
        except ProcessLookupError:
            return False
        self.kills[sig.name] += 1
        return True

    def figures(self) -> dict:
        out = Run.output(self.master)
        return {"gunicorn workers started": out.count("Booting worker"),
                "gunicorn worker timeouts": out.count("WORKER TIMEOUT")}


def task_worker(run: Run, number: int) -> Supervised:
    """`manage.py db_worker`, restarted at once whenever it exits (a process manager's `Restart=always`)."""

    def launch(generation: int) -> object:
        process = run.start(f"worker{number}-{generation}", "db_worker", "--no-reload", "--no-startup-delay",
                            "--interval", "0.1", "--worker-id", f"scale-{number}-{generation}")
        process.started_at = time.monotonic()
        return process

    return Supervised(f"task worker {number}", launch, lambda process: time.monotonic() - process.started_at > 1.5)


def poller(run: Run, stop_file: Path) -> Supervised:
    """The reliability tool's poller (the scheduled sweep twice a second), supervised as in the crash runs."""
    return Supervised(
        "poller", lambda n: run.start(f"poller-{n}", "tests.reliability.tool", "poll", str(stop_file), module=True),
        lambda process: "polling" in Run.output(process))


@dataclass
class Deployment:
    run: Run
    database: str
    store: Path
    app_url: str
    sandbox_url: str
    gunicorn: Gunicorn
    workers: list[Supervised]
    poller: Supervised
    stop_file: Path
    cache: CacheKeys

    def halt(self) -> None:
        """Stop restarting the supervised processes and let the poller finish (the run's finalizer stops the rest)."""
        for process in [self.poller, *self.workers]:
            process.halt()
        self.stop_file.touch()
        with contextlib.suppress(subprocess.TimeoutExpired):  # else the run's finalizer stops it
            self.poller.process.wait(timeout=60)


def deploy(tmp: Path, request, rng: random.Random) -> Deployment:
    """A fresh database, the settings, migrations, the sandbox server, gunicorn, the task workers and the poller;
    each stopped (and the database dropped, the cache keys deleted) by the test's finalizers."""
    database = create_database(tmp)
    request.addfinalizer(lambda: drop_database(database))
    cache = CacheKeys()
    request.addfinalizer(cache.forget)
    store = tmp / "sandbox.sqlite3"
    (tmp / "invoicepay_scale_settings.py").write_text(
        SETTINGS.format(redis=REDIS_URL, prefix=cache.prefix, store=str(store)))
    run = Run("postgres", database, tmp, DJANGO_SETTINGS_MODULE="invoicepay_scale_settings", INVOICEPAY_TASKS="db",
              PYTHONPATH=os.pathsep.join([str(tmp), str(ROOT), str(ROOT / "example_project")]),
              INVOICEPAY_RELIABILITY_RECEIVER=str(tmp / "receiver.log"))
    request.addfinalizer(run.stop)
    run.manage("migrate", "--noinput")
    sandbox_url = run.start_sandbox()
    port = free_port()
    gunicorn = Gunicorn(run, port, GUNICORN_WORKERS, rng)
    wait_for(f"http://127.0.0.1:{port}/", gunicorn.master)
    workers = [task_worker(run, n) for n in range(1, TASK_WORKERS + 1)]
    stop_file = tmp / "stop-polling"
    polling = poller(run, stop_file)
    for process in [*workers, polling]:
        request.addfinalizer(process.halt)
    return Deployment(run, database, store, f"http://127.0.0.1:{port}", sandbox_url, gunicorn, workers, polling,
                      stop_file, cache)


# -- measuring ------------------------------------------------------------------------------------


def percentile(values: list[float], share: float) -> float:
    """The value below which `share` of them lie (nearest rank); 0 for none."""
    ordered = sorted(values)
    return ordered[min(int(share * len(ordered)), len(ordered) - 1)] if ordered else 0.0


def ms(seconds: float) -> int:
    return round(seconds * 1000)


class TimedProvider(Provider):
    """The harness's provider, also keeping the status of the answer each sender thread recorded last."""

    def __init__(self, sandbox_url: str, app_url: str) -> None:
        super().__init__(sandbox_url, app_url)
        self.local = threading.local()

    def record(self, event_id: str, status: int, text: str, error: Exception | None) -> None:
        super().record(event_id, status, text, error)
        self.local.status = status


class TimedSender(Sender):
    """The harness's sender (redelivery policy, retry queue) with `clients` clients, timing every delivery from
    its first try to the answer that ends it: an acknowledgement when that answer is 200 or 202."""

    def __init__(self, provider: TimedProvider, policy, deadline: float, clients: int) -> None:
        self.acks: list[tuple[float, float, float]] = []  # (when, since its first try, its accepted request)
        self.acks_lock = threading.Lock()
        self.began = time.monotonic()
        super().__init__(provider, policy, deadline)
        more = [threading.Thread(target=self._client, name=f"sender-{n}", daemon=True)
                for n in range(len(self.threads), clients)]
        for thread in more:
            thread.start()
        self.threads += more

    def _try(self, session, due: float, order: int, batch: int, body: dict, tries: int, first: float | None,
             wait: float) -> tuple | None:
        self.provider.local.status = None
        start = time.monotonic()
        again = super()._try(session, due, order, batch, body, tries, first, wait)
        end = time.monotonic()
        if again is None and self.provider.local.status in ACCEPTED:
            with self.acks_lock:
                self.acks.append((end, end - (first or start), end - start))
        return again

    def figures(self) -> dict:
        """Throughput (acknowledged deliveries per second of sending) and acknowledgement latencies."""
        with self.acks_lock:
            acks = list(self.acks)
        window = max((at for at, _, _ in acks), default=self.began) - self.began
        per_delivery, per_request = [a[1] for a in acks], [a[2] for a in acks]
        return {
            "acknowledged": len(acks), "sending (s)": round(window, 1),
            "throughput (acknowledged/s)": round(len(acks) / window, 1) if window else 0,
            "ack latency p50 (ms)": ms(percentile(per_delivery, 0.5)),
            "ack latency p99 (ms)": ms(percentile(per_delivery, 0.99)),
            "ack latency max (ms)": ms(max(per_delivery, default=0)),
            "accepted request p50 (ms)": ms(percentile(per_request, 0.5)),
            "accepted request p99 (ms)": ms(percentile(per_request, 0.99)),
        }


class PayerReads(threading.Thread):
    """Payers watching their invoice on the pay page while the webhooks come: the payer API's read every 0.25 s,
    an invoice at a time, through gunicorn (its rate limit counts in the Redis cache). Stops at `stop`."""

    def __init__(self, app_url: str, tokens: list[str], stop: threading.Event) -> None:
        super().__init__(name="payer-reads", daemon=True)
        self.app_url, self.tokens, self.stop = app_url, tokens, stop
        self.statuses: Counter = Counter()
        self.latencies: list[float] = []

    def run(self) -> None:
        session = requests.Session()
        deadline = time.monotonic() + 3600  # a bound, never reached by a run
        for token in itertools.cycle(self.tokens):
            if self.stop.wait(0.25) or time.monotonic() > deadline:
                return
            start = time.monotonic()
            try:
                status = session.get(f"{self.app_url}/invoicepay/api/invoices/{token}/", timeout=10).status_code
            except requests.RequestException:
                status = 599  # a killed gunicorn worker's connection
            self.statuses[status] += 1
            self.latencies.append(time.monotonic() - start)

    def figures(self) -> dict:
        return {"payer reads": dict(self.statuses), "payer read p50/p99 (ms)":
                f"{ms(percentile(self.latencies, 0.5))}/{ms(percentile(self.latencies, 0.99))}"}


class StoreProbe(threading.Thread):
    """Every 0.2 s, an empty write transaction on the sandbox's store (a SQLite file, `BEGIN IMMEDIATE`): how
    long a process waits for the store's lock while every process of the run calls the provider through it."""

    def __init__(self, path: Path, stop: threading.Event) -> None:
        super().__init__(name="store-probe", daemon=True)
        self.path, self.stop = path, stop
        self.waits: list[float] = []
        self.failures: Counter = Counter()

    def run(self) -> None:
        from django_invoicepay.sandbox.state import SandboxState

        state = SandboxState(self.path)
        deadline = time.monotonic() + 3600  # a bound, never reached by a run
        while not self.stop.wait(0.2) and time.monotonic() < deadline:
            start = time.monotonic()
            try:
                with state.transaction():
                    pass
            except Exception as exc:  # noqa: BLE001 - counted: a store that times out is a result
                self.failures[type(exc).__name__] += 1
                continue
            self.waits.append(time.monotonic() - start)

    def figures(self) -> dict:
        return {"sandbox store lock wait p50 (ms)": ms(percentile(self.waits, 0.5)),
                "sandbox store lock wait p99 (ms)": ms(percentile(self.waits, 0.99)),
                "sandbox store lock wait max (ms)": ms(max(self.waits, default=0)),
                "sandbox store probe failures": dict(self.failures)}


def task_figures(run: Run) -> dict:
    """The task backend's rows: by status (RUNNING left by a killed worker), and how long a `process_webhook`
    waited in the queue and ran (a provider call and the database)."""
    done = run.manage("shell", "-c", TASKS_QUERY)
    rows = json.loads(done.stdout.strip().splitlines()[-1])
    ran = [finished - started for _, _, started, finished in rows if started and finished]
    queued = [started - enqueued for _, enqueued, started, _ in rows if started]
    return {"tasks": dict(Counter(status for status, *_ in rows)),
            "task queue wait p50/p99 (ms)": f"{ms(percentile(queued, 0.5))}/{ms(percentile(queued, 0.99))}",
            "task run time p50/p99 (ms)": f"{ms(percentile(ran, 0.5))}/{ms(percentile(ran, 0.99))}"}


def answered_200_unfinished(provider: Provider, at_end_of_sending: dict[str, str]) -> list[str]:
    """Events whose last answer was 200 but that were not finished when the sending ended. With a task backend a
    new event is answered 202 (stored, queued); 200 only says `done` or `duplicate` of a finished event."""
    return [event_id for event_id, (status, _) in provider.last_answer.items()
            if status == 200 and at_end_of_sending.get(event_id) not in {"processed", "ignored"}]


def wait_drained(run: Run, nothing: dict, limit: float) -> float:
    """Wait until recovery has nothing left to do (`tool outstanding`), at most `limit` s; how long it took."""
    began = time.monotonic()
    while time.monotonic() < began + limit and run.tool("outstanding") != nothing:
        time.sleep(1)
    return time.monotonic() - began
