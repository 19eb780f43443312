"""The reliability suite: webhooks under load, duplicates, races and provider faults, on real processes.

For each database (SQLite, PostgreSQL, MariaDB; one that is not reachable or has no driver is
skipped, saying so) and each fault rate (none, 20%):
- a fresh database, the app served by `runserver` in its own process, the sandbox provider in
  another (`invoicepay_sandbox`), and a poller in a third, sweeping every open invoice non-stop;
- 200 invoices driven by the payer through the sandbox in two rounds (so there are intermediate
  states, late deliveries and out-of-order ones);
- 2,000 webhook deliveries in all, 30% of them duplicates (some of round 1 sent again in
  round 2), shuffled and sent by 8 concurrent clients that retry on 503 as the provider does.
Then: every invoice in its true final state, a history with exactly one row per real transition
(a chain, in the provider's order), `invoice_status_changed` once per row, no 500, no lost
delivery, and none of the secrets planted in settings and requests in logs, responses or the
delivery log. Run it alone with `make test-reliability` (prints the figures).
"""

from __future__ import annotations

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
from pathlib import Path
from queue import Empty, Queue

import pytest
import requests

from tests.reliability import PLANTED

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.reliability

INVOICES, DELIVERIES, DUPLICATE_SHARE, CLIENTS = 200, 2000, 0.30, 8
DB_NAME = "invoicepay_reliability"
PLANS = {  # round-1 and round-2 payer actions per kind of invoice
    "wallet": ([("choose_processor", {"processor": "native"})], [("pay", {})]),
    "bank_underpaid": ([("choose_processor", {"processor": "bank_transfer"}), ("underpay", {"by": 300})],
                       [("pay", {})]),
    "crypto": ([("crypto_deposit", {"confirmations": 1})], [("confirm", {"confirmations": 2})]),
    "overpaid": ([("overpay", {"by": 250})], []),
    "expired": ([("choose_processor", {"processor": "bank_transfer"})], [("expire", {})]),
}


@pytest.fixture(autouse=True)
def sleeps():
    """Real time here: the suite-wide fixture that stops the clock for retry backoff must not apply."""
    return []


def prepare_database(engine: str, tmp: Path) -> str:
    """A fresh database for the run; pytest.skip (saying why) when the server or driver is missing."""
    if engine == "sqlite":
        return str(tmp / "reliability.sqlite3")
    try:
        if engine == "postgres":
            import psycopg

            with psycopg.connect(host=os.environ.get("PGHOST", "127.0.0.1"), user=os.environ.get("PGUSER", "postgres"),
                                 dbname="postgres", autocommit=True, connect_timeout=3) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
                conn.execute(f'CREATE DATABASE "{DB_NAME}"')
        else:
            import MySQLdb

            conn = MySQLdb.connect(host=os.environ.get("MYSQL_HOST", "127.0.0.1"),
                                   user=os.environ.get("MYSQL_USER", "root"),
                                   password=os.environ.get("MYSQL_PASSWORD", ""), connect_timeout=3)
            cursor = conn.cursor()
            cursor.execute(f"DROP DATABASE IF EXISTS `{DB_NAME}`")
            cursor.execute(f"CREATE DATABASE `{DB_NAME}` CHARACTER SET utf8mb4")
            conn.close()
    except ImportError as exc:
        pytest.skip(f"{engine}: its driver is not installed here ({exc.name}); `make test-{engine}` installs it")
    except Exception as exc:  # noqa: BLE001 - any connection failure means: not reachable here
        pytest.skip(f"{engine}: the server at 127.0.0.1 is not reachable ({type(exc).__name__}: {exc})")
    return DB_NAME


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Run:
    """The processes and files of one reliability run."""

    def __init__(self, engine: str, name: str, tmp: Path) -> None:
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
        }
        self.processes: list[subprocess.Popen] = []

    def manage(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(ROOT / "example_project" / "manage.py"), *args], env=self.env,
                              capture_output=True, text=True, check=True, timeout=300, **kwargs)

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
        self.processes.append(process)
        return process

    @staticmethod
    def output(process: subprocess.Popen) -> str:
        return process.out_path.read_text(errors="replace")

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


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


class Provider:
    """The test's side of the sandbox: payer actions, faults, and the webhook deliveries it sends."""

    def __init__(self, sandbox_url: str, app_url: str) -> None:
        self.sandbox_url, self.app_url = sandbox_url, app_url
        self.session = requests.Session()
        self.statuses: Counter = Counter()
        self.sequence: dict[str, list[str]] = {}
        self.posts = 0
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

    def deliver_all(self, deliveries: list[dict]) -> None:
        """8 clients; each retries a 503 like the provider does (same event id, up to 12 times)."""
        queue: Queue = Queue()
        for body in deliveries:
            queue.put(body)
        headers = {"Authorization": f"Secret {PLANTED['webhook_secret']}", "Content-Type": "application/json"}

        def client() -> None:
            session = requests.Session()
            while True:
                try:
                    body = queue.get_nowait()
                except Empty:
                    return
                for _ in range(12):
                    try:
                        response = session.post(f"{self.app_url}/invoicepay/webhooks/rehive/", data=json.dumps(body),
                                                headers=headers, timeout=30)
                        status = response.status_code
                        text = response.text
                    except requests.RequestException as exc:
                        status, text = 599, repr(exc)
                    with self.lock:
                        self.posts += 1
                        self.statuses[status] += 1
                        self.responses.append(text)
                    if status != 503:
                        break
                    time.sleep(0.05)

        self.responses: list[str] = getattr(self, "responses", [])
        threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


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


@pytest.mark.parametrize("fault_rate", [0.0, 0.2], ids=["no-faults", "20pct-faults"])
@pytest.mark.parametrize("engine", ["sqlite", "postgres", "mariadb"])
def test_webhooks_under_load(engine, fault_rate, tmp_path, request):
    only = os.environ.get("INVOICEPAY_TEST_DB")
    if only and only != engine:
        pytest.skip(f"{engine}: this run is for {only} (INVOICEPAY_TEST_DB)")
    name = prepare_database(engine, tmp_path)
    run = Run(engine, name, tmp_path)
    request.addfinalizer(run.stop)
    run.manage("migrate", "--noinput")

    sandbox_process = run.start("sandbox", "invoicepay_sandbox", "--port", "0")
    sandbox_url = None
    for _ in range(300):
        lines = [line for line in Run.output(sandbox_process).splitlines() if "BUSINESS_URL" in line]
        if lines:
            sandbox_url = lines[0].split('"')[3].removesuffix("/business/api/")
            break
        time.sleep(0.1)
    assert sandbox_url, f"the sandbox server did not start: {Run.output(sandbox_process)[-2000:]}"
    run.env["INVOICEPAY_RELIABILITY_SANDBOX"] = sandbox_url
    port = free_port()
    app = run.start("app", "runserver", f"127.0.0.1:{port}", "--noreload")
    app_url = f"http://127.0.0.1:{port}"
    wait_for(app_url + "/", app)

    made = run.tool("create", str(INVOICES))
    kinds = list(PLANS)
    plans = {item["remote_id"]: kinds[n % len(kinds)] for n, item in enumerate(made)}
    provider = Provider(sandbox_url, app_url)
    provider.faults(fault_rate)
    stop_file = tmp_path / "stop-polling"
    poller = run.start("poller", "tests.reliability.tool", "poll", str(stop_file), module=True)

    # Payers try OTP payments with a planted code (refused by the provider, forwarded to them).
    otp_answers = []
    for item in made[:20]:
        api = f"{app_url}/invoicepay/api/invoices/{item['token']}/"
        requests.post(api + "processor/", json={"processor": "native"}, timeout=30)
        requests.post(api + "payer/", json={"payer_email": "payer@example.com",
                                            "payer_mobile_number": "+27821234567"}, timeout=30)
        answer = requests.post(api + "otp/", json={"otp": PLANTED["otp"]}, timeout=30)
        otp_answers.append((answer.status_code, answer.text))
    assert {code for code, _ in otp_answers} <= {400, 503}, otp_answers
    for item in made[:20]:
        provider.sequence.setdefault(item["remote_id"], ["initiated"]).append("processing")

    unique_per_round = int(DELIVERIES * (1 - DUPLICATE_SHARE)) // 2
    duplicates_per_round = DELIVERIES // 2 - unique_per_round
    rng = random.Random(42)
    sent_ids: set[str] = set()
    late = 0
    previous: list[dict] = []
    for round_no in (0, 1):
        events = events_for_round(provider, plans, round_no, unique_per_round)
        pool = events + previous  # round 2 repeats some round-1 events: late and out of order
        repeats = [rng.choice(pool) for _ in range(duplicates_per_round)]
        late += sum(1 for e in repeats if e in previous)
        deliveries = events + repeats
        rng.shuffle(deliveries)
        provider.deliver_all(deliveries)
        sent_ids.update(e["id"] for e in events)
        previous = events

    # The payer's side is done: one more delivery per invoice settles anything a fault deferred.
    stop_file.touch()
    poller.wait(timeout=300)
    poller_out = Run.output(poller)
    assert poller.returncode == 0, poller_out[-3000:]
    polling = json.loads(poller_out.strip().splitlines()[-1])
    stats = provider.session.post(f"{sandbox_url}/sandbox/stats/", timeout=5).json()["data"]
    report = run.tool("report")
    signal_lines = (tmp_path / "signals.log").read_text().splitlines() if (tmp_path / "signals.log").exists() else []
    log_text = (tmp_path / "app.log").read_text(errors="replace")

    # Every invoice in its true final state, with one history row per real transition, in order.
    truth = {rid: provider.session.get(f"{sandbox_url}/payment-requests/api/requests/{rid}/", timeout=5).json()
             ["data"]["status"] for rid in plans}
    transitions = Counter()
    for rid, seen in report["invoices"].items():
        history = [(a, b) for a, b, _ in seen["history"]]
        assert seen["status"] == truth[rid], (rid, plans[rid], seen)
        assert history[0] == ("", "initiated")
        assert all(prev[1] == nxt[0] and nxt[0] != nxt[1] for prev, nxt in zip(history, history[1:], strict=False))
        states = [b for _, b in history]
        provider_states = iter(provider.sequence[rid])
        assert all(state in provider_states for state in states), (rid, states, provider.sequence[rid])
        transitions.update((rid, a, b) for a, b in history[1:])

    signals = Counter(tuple(line.split()) for line in signal_lines)
    assert signals == Counter({(rid, a, b): n for (rid, a, b), n in transitions.items()})
    assert set(signals.values()) <= {1}

    deliveries_by_id = {d["event_id"]: d for d in report["deliveries"]}
    assert sent_ids <= set(deliveries_by_id)  # zero lost
    assert Counter(d["status"] for d in report["deliveries"]) <= Counter(processed=10**6, ignored=10**6)
    assert sum(d["deliveries"] for d in report["deliveries"]) == provider.posts - provider.statuses[599]
    assert provider.statuses[500] == 0 and provider.statuses[599] == 0
    if not fault_rate:
        assert not [s for s in provider.statuses if s >= 500]

    for secret in PLANTED.values():
        assert secret not in log_text
        assert not any(secret in text for text in provider.responses + [text for _, text in otp_answers])
        assert not any(secret in d["body"] or secret in json.dumps(d["headers"]) for d in report["deliveries"])

    figures = {
        "database": engine, "fault rate": fault_rate, "invoices": len(plans),
        "deliveries": provider.posts, "unique events": len(sent_ids),
        "duplicates": DELIVERIES - len(sent_ids), "late (round-1 events resent in round 2)": late,
        "provider calls": stats["requests"], "provider faults injected": stats["faults"],
        "503 answered (retried by the sender)": provider.statuses[503],
        "500 answered": provider.statuses[500], "transitions": sum(transitions.values()),
        "signals": sum(signals.values()), "poller sweeps": polling["sweeps"],
        "lost deliveries": len(sent_ids - set(deliveries_by_id)),
    }
    summary = "\n".join(f"  {key}: {value}" for key, value in figures.items())
    with request.config.pluginmanager.getplugin("capturemanager").global_and_fixture_disabled():
        print(f"\nReliability run, {engine}, {int(fault_rate * 100)}% faults:\n{summary}")
    (ROOT / "tests" / ".reliability").mkdir(exist_ok=True)
    (ROOT / "tests" / ".reliability" / f"{engine}-{int(fault_rate * 100)}.json").write_text(json.dumps(figures))
