"""What both reliability suites share: the database, the processes of a run, the provider's side
(payer actions and the webhook sender), the checks on history and secrets, and the figures."""

from __future__ import annotations

import heapq
import itertools
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.reliability import PLANTED

ROOT = Path(__file__).resolve().parent.parent.parent
CLIENTS = 8
PLANS = {  # round-1 and round-2 payer actions per kind of invoice
    "wallet": ([("choose_processor", {"processor": "native"})], [("pay", {})]),
    "bank_underpaid": ([("choose_processor", {"processor": "bank_transfer"}), ("underpay", {"by": 300})],
                       [("pay", {})]),
    "crypto": ([("crypto_deposit", {"confirmations": 1})], [("confirm", {"confirmations": 2})]),
    "overpaid": ([("overpay", {"by": 250})], []),
    "expired": ([("choose_processor", {"processor": "bank_transfer"})], [("expire", {})]),
}


@pytest.fixture(autouse=True, name="sleeps")
def real_time():
    """Real time here: the suite-wide fixture that stops the clock for retry backoff must not apply
    (it replaces time.sleep itself, which the sender's and the supervisors' threads need).
    Import it into a test module as `sleeps` to override that fixture there."""
    return []


def only_on(engine: str) -> None:
    """pytest.skip unless INVOICEPAY_TEST_DB is unset or names this engine."""
    only = os.environ.get("INVOICEPAY_TEST_DB")
    if only and only != engine:
        pytest.skip(f"{engine}: this run is for {only} (INVOICEPAY_TEST_DB)")


def server_connection(engine: str):
    """A connection to the PostgreSQL or MariaDB server (not to a run's database), autocommit."""
    if engine == "postgres":
        import psycopg

        return psycopg.connect(host=os.environ.get("PGHOST", "127.0.0.1"), user=os.environ.get("PGUSER", "postgres"),
                               port=int(os.environ.get("PGPORT", "5432")), dbname="postgres", autocommit=True,
                               connect_timeout=3)
    import MySQLdb

    conn = MySQLdb.connect(host=os.environ.get("MYSQL_HOST", "127.0.0.1"), user=os.environ.get("MYSQL_USER", "root"),
                           password=os.environ.get("MYSQL_PASSWORD", ""),
                           port=int(os.environ.get("MYSQL_PORT", "3306")), connect_timeout=3)
    conn.autocommit(True)
    return conn


def prepare_database(engine: str, tmp: Path, name: str) -> str:
    """A fresh database `name` for the run; pytest.skip (saying why) when the server or driver is missing."""
    if engine == "sqlite":
        return str(tmp / "reliability.sqlite3")
    try:
        conn = server_connection(engine)
        try:
            cursor = conn.cursor()
            if engine == "postgres":
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                cursor.execute(f'CREATE DATABASE "{name}"')
            else:
                cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
                cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        finally:
            conn.close()
    except ImportError as exc:
        pytest.skip(f"{engine}: its driver is not installed here ({exc.name}); `make test-{engine}` installs it")
    except Exception as exc:  # noqa: BLE001 - any connection failure means: not reachable here
        pytest.skip(f"{engine}: the server at 127.0.0.1 is not reachable ({type(exc).__name__}: {exc})")
    return name


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Run:
    """The processes and files of one reliability run."""

    def __init__(self, engine: str, name: str, tmp: Path, **env: str) -> None:
        self.tmp = tmp
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.reliability.settings",
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "example_project")]),
            "PYTHONUNBUFFERED": "1",
            "INVOICEPAY_RELIABILITY_DB": engine,
            "INVOICEPAY_RELIABILITY_NAME": name,
            "INVOICEPAY_RELIABILITY_SIGNALS": str(tmp / "signals.log"),
            "INVOICEPAY_RELIABILITY_LOG": str(tmp / "app.log"),
            **env,
        }
        self.processes: list[subprocess.Popen] = []
        self.lock = threading.Lock()

    def manage(self, *args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(ROOT / "example_project" / "manage.py"), *args], env=self.env,
                              capture_output=True, text=True, check=check, timeout=300, **kwargs)

    def tool(self, *args: str) -> dict | list:
        done = subprocess.run([sys.executable, "-m", "tests.reliability.tool", *args], env=self.env, cwd=ROOT,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout)

    def start(self, name: str, *args: str, module: bool = False) -> subprocess.Popen:
        """Start a process whose output goes to `<name>.out` (never a pipe nobody reads: it would fill)."""
        command = [sys.executable, "-m", *args] if module else [
            sys.executable, str(ROOT / "example_project" / "manage.py"), *args]
        out = open(self.tmp / f"{name}.out", "w")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(command, env=self.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, text=True)
        process.out_path = self.tmp / f"{name}.out"
        out.close()  # the child has its own copy
        with self.lock:
            self.processes.append(process)
        return process

    def start_sandbox(self) -> str:
        """The sandbox provider in its own process; returns its URL (and points the app's settings at it)."""
        sandbox = self.start("sandbox", "invoicepay_sandbox", "--port", "0")
        for _ in range(300):
            lines = [line for line in Run.output(sandbox).splitlines() if "BUSINESS_URL" in line]
            if lines:
                url = lines[0].split('"')[3].removesuffix("/business/api/")
                self.env["INVOICEPAY_RELIABILITY_SANDBOX"] = url
                return url
            if sandbox.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"the sandbox server did not start: {Run.output(sandbox)[-2000:]}")

    def start_app(self, port: int, name: str = "app", *options: str) -> subprocess.Popen:
        return self.start(name, "runserver", f"127.0.0.1:{port}", "--noreload", *options)

    @staticmethod
    def output(process: subprocess.Popen) -> str:
        return process.out_path.read_text(errors="replace")

    def log(self) -> str:
        """The log every process of the run writes to (INVOICEPAY_RELIABILITY_LOG)."""
        path = Path(self.env["INVOICEPAY_RELIABILITY_LOG"])
        return path.read_text(errors="replace") if path.exists() else ""

    def outputs(self) -> str:
        """Everything every process of the run wrote."""
        return "".join(Run.output(process) for process in self.processes)

    def stop(self) -> None:
        with self.lock:
            processes = list(self.processes)
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=20)


def wait_for(url: str, process: subprocess.Popen) -> None:
    for _ in range(300):
        if process.poll() is not None:
            raise AssertionError(f"{url}: the process exited: {Run.output(process)[-2000:]}")
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not come up")


@dataclass(frozen=True)
class Redelivery:
    """How the sender retries one event (always with the same event id)."""

    retry: Callable[[int], bool] = lambda status: status == 503  # 599: no answer (connection error, timeout)
    first_wait: float = 0.05
    factor: float = 1.0
    max_wait: float = 0.05
    attempts: int = 12
    patience: float = float("inf")  # seconds per event before it gives up
    timeout: float = 30.0  # per request


#: Rehive's webhook sender: every failure (no answer, a timeout, any 5xx) retried with exponential backoff.
LIKE_REHIVE = Redelivery(retry=lambda status: status >= 500, first_wait=0.2, factor=2.0, max_wait=3.0,
                         attempts=10_000, patience=90.0, timeout=10.0)


class Provider:
    """The test's side of the sandbox: payer actions, faults, and the webhook deliveries it sends."""

    def __init__(self, sandbox_url: str, app_url: str) -> None:
        self.sandbox_url, self.app_url = sandbox_url, app_url
        self.session = requests.Session()
        self.statuses: Counter = Counter()
        self.errors: Counter = Counter()  # no answer, by kind
        self.sequence: dict[str, list[str]] = {}
        self.posts = 0
        self.done = 0  # events whose sending is over (answered or given up)
        self.responses: list[str] = []
        self.last_answer: dict[str, tuple[int, str]] = {}  # event id -> (status, body) of its last try
        self.gave_up: list[str] = []
        self.lock = threading.Lock()

    def act(self, remote_id: str, action: str, args: dict) -> dict:
        answer = self.session.post(f"{self.sandbox_url}/sandbox/{action}/", json={"invoice": remote_id, **args},
                                   timeout=10)
        assert answer.status_code == 200, answer.text
        invoice = answer.json()["data"]
        seen = self.sequence.setdefault(remote_id, ["initiated"])
        if seen[-1] != invoice["status"]:
            seen.append(invoice["status"])
        return invoice

    def faults(self, rate: float) -> None:
        self.session.post(f"{self.sandbox_url}/sandbox/faults/", json={"clear": True}, timeout=5)
        if rate:
            kinds = {"503": 0.3, "502": 0.15, "504": 0.15, "garbage": 0.15, "malformed": 0.15, "slow": 0.1}
            for kind, share in kinds.items():
                spec = {"kind": kind, "path": "invoices/", "method": "GET", "times": None, "rate": rate * share}
                if kind == "slow":
                    spec["delay"] = 0.05
                self.session.post(f"{self.sandbox_url}/sandbox/faults/", json=spec, timeout=5).raise_for_status()

    def stats(self) -> dict:
        return self.session.post(f"{self.sandbox_url}/sandbox/stats/", timeout=5).json()["data"]

    def truth(self, remote_ids) -> dict[str, str]:
        """Each invoice's status as the provider has it."""
        return {rid: self.session.get(f"{self.sandbox_url}/payment-requests/api/requests/{rid}/", timeout=5).json()
                ["data"]["status"] for rid in remote_ids}

    def deliver_all(self, deliveries: list[dict], policy: Redelivery = Redelivery()) -> None:  # noqa: B008 - frozen
        """Send every event and wait until each has its final answer (see `Sender`)."""
        sender = Sender(self, policy)
        sender.add(deliveries)
        sender.close()
        sender.join()

    def record(self, event_id: str, status: int, text: str, error: Exception | None) -> None:
        with self.lock:
            self.posts += 1
            self.statuses[status] += 1
            self.responses.append(text)
            self.last_answer[event_id] = (status, text)
            if error is not None:
                self.errors["timeout" if isinstance(error, requests.Timeout) else "connection"] += 1


class Sender:
    """The provider's webhook sender: 8 clients take the events that are due from one schedule. A try
    the policy retries is scheduled again after its backoff, with the same event id, and the client goes
    on with other events meanwhile (a provider's retry queue), until the answer stands, the attempts or
    the patience run out, or `deadline` (monotonic) passes: the event is then given up."""

    def __init__(self, provider: Provider, policy: Redelivery, deadline: float = float("inf")) -> None:
        self.provider, self.policy, self.deadline = provider, policy, deadline
        self.schedule: list[tuple] = []  # heap of (due, order, batch, body, tries, first try, next wait)
        self.order = itertools.count()
        self.finished: Counter = Counter()  # events whose sending is over, per batch
        self.busy, self.closed = 0, False
        self.cond = threading.Condition()
        self.threads = [threading.Thread(target=self._client, name=f"sender-{n}", daemon=True)
                        for n in range(CLIENTS)]
        for thread in self.threads:
            thread.start()

    def add(self, deliveries: list[dict], batch: int = 0) -> None:
        with self.cond:
            for body in deliveries:
                heapq.heappush(self.schedule, (0.0, next(self.order), batch, body, 0, None, self.policy.first_wait))
            self.cond.notify_all()

    def wait_finished(self, batch: int, count: int) -> bool:
        """Wait until `count` events of `batch` are over (at most until the deadline)."""
        with self.cond:
            return self.cond.wait_for(lambda: self.finished[batch] >= count,
                                      timeout=max(min(self.deadline - time.monotonic(), 3600), 0))

    def close(self) -> None:
        """No more events: the clients stop once every event's sending is over."""
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def abort(self) -> None:
        """Send nothing more (what is in flight finishes)."""
        with self.cond:
            self.schedule.clear()
            self.closed = True
            self.cond.notify_all()

    def join(self) -> None:
        for thread in self.threads:
            thread.join(timeout=max(min(self.deadline - time.monotonic(), 3600), 0) + 2 * self.policy.timeout)

    def _next(self) -> tuple | None:
        """The next due try (waiting for it), or None when there is nothing left to send. Under the lock."""
        while True:
            now = time.monotonic()
            if self.schedule and self.schedule[0][0] <= now:
                return heapq.heappop(self.schedule)
            if not self.schedule and self.closed and not self.busy:
                return None
            self.cond.wait(min(self.schedule[0][0] - now, 1.0) if self.schedule else 1.0)

    def _client(self) -> None:
        session = requests.Session()
        while True:
            with self.cond:
                item = self._next()
                if item is None:
                    self.cond.notify_all()
                    return
                self.busy += 1
            again = self._try(session, *item)
            with self.cond:
                self.busy -= 1
                if again:
                    heapq.heappush(self.schedule, again)
                else:
                    self.finished[item[2]] += 1
                    with self.provider.lock:
                        self.provider.done += 1
                self.cond.notify_all()

    def _try(self, session: requests.Session, due: float, order: int, batch: int, body: dict, tries: int,
             first: float | None, wait: float) -> tuple | None:
        """One try; returns the event's next scheduled try, or None when its sending is over."""
        policy, now = self.policy, time.monotonic()
        if now >= self.deadline:
            return self._give_up(body)
        first = now if first is None else first
        headers = {"Authorization": f"Secret {PLANTED['webhook_secret']}", "Content-Type": "application/json"}
        try:
            response = session.post(f"{self.provider.app_url}/invoicepay/webhooks/rehive/", data=json.dumps(body),
                                    headers=headers, timeout=policy.timeout)
            status, text, error = response.status_code, response.text, None
        except requests.RequestException as exc:
            status, text, error = 599, repr(exc), exc
        self.provider.record(body["id"], status, text, error)
        if not policy.retry(status) or tries + 1 >= policy.attempts:
            return None  # the answer stands
        if error is not None and not isinstance(error, requests.Timeout):
            time.sleep(policy.first_wait)  # nobody listening: this client waits before its next event too
        now = time.monotonic()
        if now + wait > min(first + policy.patience, self.deadline):
            return self._give_up(body)
        return (now + wait, order, batch, body, tries + 1, first, min(wait * policy.factor, policy.max_wait))

    def _give_up(self, body: dict) -> None:
        with self.provider.lock:
            self.provider.gave_up.append(body["id"])


def events_for_round(provider: Provider, plans: dict[str, str], round_no: int, unique: int) -> list[dict]:
    events = []
    current = {}
    for remote_id, plan in plans.items():
        for action, args in PLANS[plan][round_no]:
            invoice = provider.act(remote_id, action, args)
            current[remote_id] = invoice
            events.append({"id": str(uuid.uuid4()), "event": "service_payment_requests.request.update",
                           "company": "sandbox", "data": invoice})
            for quote in invoice["payment_processor_quotes"]:
                events.append({"id": str(uuid.uuid4()), "event": "service_payment_requests.quote.create",
                               "company": "sandbox", "data": quote})
    rng = random.Random(round_no)
    ids = sorted(current) or sorted(plans)
    while len(events) < unique:  # more changes of the same invoices (payer edits, quote updates...)
        remote_id = rng.choice(ids)
        snapshot = current.get(remote_id) or {"id": remote_id}
        events.append({"id": str(uuid.uuid4()), "event": "service_payment_requests.request.update",
                       "company": "sandbox", "data": snapshot})
    return events


def with_repeats(events: list[dict], previous: list[dict], count: int, rng: random.Random) -> tuple[list[dict], int]:
    """A round's deliveries, shuffled: its events and `count` repeats of them or of the previous round's events
    (those are late and out of order); and how many repeats are late."""
    pool = events + previous
    repeats = [rng.choice(pool) for _ in range(count)]
    deliveries = events + repeats
    rng.shuffle(deliveries)
    return deliveries, sum(1 for e in repeats if e in previous)


def plan_invoices(made: list[dict]) -> dict[str, str]:
    """Each created invoice's kind of payment (remote id -> a key of PLANS), in turn."""
    kinds = list(PLANS)
    return {item["remote_id"]: kinds[n % len(kinds)] for n, item in enumerate(made)}


def history_problems(remote_id: str, history: list[tuple[str, str]], sequence: list[str]) -> list[str]:
    """What is wrong with an invoice's history (pairs of from, to) against the provider's sequence of states:
    it must be a chain from "initiated", one row per real transition, in the provider's order."""
    problems = []
    if not history or history[0] != ("", "initiated"):
        problems.append(f"{remote_id}: the history does not start with its creation: {history}")
    if not all(prev[1] == nxt[0] and nxt[0] != nxt[1] for prev, nxt in zip(history, history[1:], strict=False)):
        problems.append(f"{remote_id}: the history is not a chain of real transitions: {history}")
    provider_states = iter(sequence)
    if not all(state in provider_states for _, state in history):
        problems.append(f"{remote_id}: the history {history} is not in the provider's order {sequence}")
    return problems


def leaked_secrets(texts: dict[str, list[str]]) -> list[str]:
    """Which planted secret appears where (texts: a place -> its texts)."""
    return [f"{name} in {place}" for name, secret in PLANTED.items() for place, found in texts.items()
            if any(secret in text for text in found)]


def publish(request, title: str, figures: dict, name: str) -> None:
    """Print the figures (even under capture) and keep them in tests/.reliability/<name>.json."""
    summary = "\n".join(f"  {key}: {value}" for key, value in figures.items())
    with request.config.pluginmanager.getplugin("capturemanager").global_and_fixture_disabled():
        print(f"\n{title}:\n{summary}")
    (ROOT / "tests" / ".reliability").mkdir(exist_ok=True)
    (ROOT / "tests" / ".reliability" / f"{name}.json").write_text(json.dumps(figures))
