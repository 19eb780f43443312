"""Real task workers, started as a shop starts them: the database backend's `db_worker` and RQ's `rqworker`.

Every test has its own database (a SQLite file, or a new PostgreSQL/MariaDB database with INVOICEPAY_TEST_DB),
one sandbox store that all its processes share (docs/sandbox.md) and, for RQ, its own keys in Redis DB 3
(RQ_KEY_PREFIX; deleted afterwards, nothing else is touched). The processes run the example shop's
`demo.settings_workers` on that database. The shop's own side (an invoice, the customer, the provider's
webhook through the testing kit, what the database then says) runs in a process too: this file as a script.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.reliability.harness import (
    ROOT,
    Run,
    prepare_database,
    real_time,  # noqa: F401 - the fixture `sleeps` here: real time (the workers run in real time)
    server_connection,
)

ENGINE = os.environ.get("INVOICEPAY_TEST_DB", "sqlite")
REDIS_URL = "redis://127.0.0.1:6379/3"  # the Redis DB number these tests may use
WORKERS = {
    "db": ["db_worker", "--batch", "--no-reload", "--no-startup-delay", "--interval", "0"],
    "rq": ["rqworker", "--burst", "--job-class", "django_tasks_rq.Job", "default"],
}
SETTINGS = '''"""Written by tests/test_task_workers.py: the example shop's worker settings on this test's database."""
from demo.settings_workers import *  # noqa: F403
from demo.settings_workers import INSTALLED_APPS, INVOICEPAY
from tests.reliability.settings import DATABASES  # noqa: F401 - INVOICEPAY_RELIABILITY_DB and _NAME

DEBUG = False
ALLOWED_HOSTS = ["testserver"]  # the testing kit's webhook sender posts through Django's test client
INSTALLED_APPS = [*INSTALLED_APPS, "tests.reliability"]  # its signal recorder (INVOICEPAY_RELIABILITY_SIGNALS)
# One provider call without retries: a killed worker's lease on a delivery lapses in 12 s.
INVOICEPAY = {{**INVOICEPAY, "SANDBOX_STATE_FILE": {store!r}, "HTTP_TIMEOUT": 1.0, "HTTP_MAX_RETRIES": 0}}
RQ_QUEUES = {{"default": {{"URL": {redis!r}}}}}
LOGGING = {{"version": 1, "disable_existing_loggers": False}}
SILENCED_SYSTEM_CHECKS = ["invoicepay.W003"]  # the sandbox with DEBUG off: on purpose
'''


class Shop:
    """The processes of one test: the shop's side (this file as a script), and its workers."""

    def __init__(self, backend: str, run: Run, tmp: Path) -> None:
        self.backend, self.run, self.tmp = backend, run, tmp
        self.store = tmp / "sandbox.sqlite3"

    def act(self, action: str, *args: object) -> dict:
        done = subprocess.run([sys.executable, __file__, action, *map(str, args)], env=self.run.env, cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    def manage(self, *args: str) -> str:
        done = self.run.manage(*args, check=False)
        assert done.returncode == 0, f"manage.py {' '.join(args)} failed:\n{done.stderr[-3000:]}"
        return done.stdout + done.stderr

    def work(self) -> str:
        """One worker run until the queue is empty (`--batch`, `--burst`), as a worker would take them."""
        return self.manage(*WORKERS[self.backend])

    def start(self, name: str, *args: str) -> subprocess.Popen:
        """A long-running process in a session of its own (its children die with it), output to `<name>.out`."""
        out_path = self.tmp / f"{name}.out"
        with open(out_path, "w") as out:
            process = subprocess.Popen([sys.executable, str(ROOT / "example_project" / "manage.py"), *args],
                                       env=self.run.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        process.out_path = out_path
        self.run.processes.append(process)
        return process

    def signals(self, remote_id: str) -> list[str]:
        """The invoice_status_changed signals every process received, one line each: `<id> <old> <new>`."""
        path = Path(self.run.env["INVOICEPAY_RELIABILITY_SIGNALS"])
        lines = path.read_text().splitlines() if path.exists() else []
        return [line for line in lines if line.startswith(f"{remote_id} ")]


def descendants(pid: int) -> list[int]:
    """Every process `pid` started, however deep (Linux's /proc)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:  # gone meanwhile
            continue
        for child in map(int, children):
            found += [child, *descendants(child)]
    return found


def killed(process: subprocess.Popen) -> None:
    """SIGKILL the process and everything it started, as a lost machine would: an RQ worker's work-horse
    too, which runs in a session of its own."""
    for pid in [process.pid, *descendants(process.pid)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait(timeout=10)


def database(tmp: Path) -> str:
    """This test's database: a SQLite file, or a new one on the server INVOICEPAY_TEST_DB names."""
    if ENGINE == "sqlite":
        return str(tmp / "shop.sqlite3")
    name = f"invoicepay_workers_{uuid.uuid4().hex[:10]}"
    try:
        return prepare_database(ENGINE, tmp, name)
    except pytest.skip.Exception as exc:  # not reachable: a failure here, not a silent skip
        pytest.fail(f"INVOICEPAY_TEST_DB={ENGINE}: {exc}", pytrace=False)


def drop(name: str) -> None:
    conn = server_connection(ENGINE)
    try:
        force = " WITH (FORCE)" if ENGINE == "postgres" else ""
        quoted = f'"{name}"' if ENGINE == "postgres" else f"`{name}`"
        conn.cursor().execute(f"DROP DATABASE IF EXISTS {quoted}{force}")
    finally:
        conn.close()


@pytest.fixture
def redis_prefix():
    """A key prefix of this test's own in Redis DB 3; its keys are deleted afterwards (never a flush)."""
    try:
        import redis
    except ImportError:
        pytest.fail("The RQ worker tests need redis-py: pip install -e '.[tasks-rq]'", pytrace=False)
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis at {REDIS_URL} is not reachable ({type(exc).__name__}: {exc}): start it "
                    "(the RQ worker tests need it)", pytrace=False)
    prefix = f"invoicepay-test-{uuid.uuid4().hex[:10]}"
    yield prefix
    for key in client.scan_iter(match=f"{prefix}:*", count=500):
        client.delete(key)
    client.close()


@pytest.fixture(params=["db", "rq"])
def shop(request, tmp_path):
    """The example shop on `db_worker` or `rqworker`, migrated, with nothing queued."""
    backend = request.param
    (tmp_path / "invoicepay_worker_settings.py").write_text(
        SETTINGS.format(store=str(tmp_path / "sandbox.sqlite3"), redis=REDIS_URL))
    env = {"DJANGO_SETTINGS_MODULE": "invoicepay_worker_settings", "INVOICEPAY_TASKS": backend,
           "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT), str(ROOT / "example_project")])}
    if backend == "rq":
        env["RQ_KEY_PREFIX"] = request.getfixturevalue("redis_prefix")
    name = database(tmp_path)
    run = Run(ENGINE, name, tmp_path, **env)
    try:
        shop = Shop(backend, run, tmp_path)
        shop.manage("migrate", "-v0")
        yield shop
    finally:
        run.stop()
        if ENGINE != "sqlite":
            drop(name)


def test_a_webhook_is_answered_at_once_and_the_worker_applies_it_once(shop):
    paid = shop.act("pay", "evt-paid")
    assert paid["answers"] == [[202, "queued"], [202, "queued"]]  # the provider's repeat is queued again
    assert paid["report"]["status"] == "initiated"  # not applied in the request: a worker does it
    assert paid["report"]["deliveries"] == [{"status": "received", "attempts": 0, "deliveries": 2, "lease": 0}]

    shop.work()
    again = shop.act("send", paid["invoice"], "evt-paid")  # the provider sends it once more, later
    assert again["answers"] == [[200, "Already received."]]
    report = again["report"]
    assert (report["status"], report["order"]) == ("paid", "completed")
    assert report["deliveries"] == [{"status": "processed", "attempts": 1, "deliveries": 3, "lease": 0}]
    assert [change[1:] for change in report["changes"]] == [["initiated", True], ["paid", True]]
    assert [line.split()[-1] for line in shop.signals(paid["remote_id"])] == ["paid"]  # once, by the worker


def test_the_sweep_enqueued_finds_a_payment_no_webhook_told(shop):
    quiet = shop.act("pay-quietly")  # paid at the provider; the shop heard nothing; sync_invoices enqueued
    assert quiet["report"]["status"] == "initiated"
    shop.work()
    report = shop.act("report", quiet["invoice"])["report"]
    assert (report["status"], report["order"]) == ("paid", "completed")
    assert [change[1:] for change in report["changes"]] == [["initiated", True], ["paid", True]]
    assert [line.split()[-1] for line in shop.signals(quiet["remote_id"])] == ["paid"]


def test_a_worker_killed_mid_delivery_loses_nothing(shop):
    paid = shop.act("pay", "evt-crash", 1)
    assert paid["answers"] == [[202, "queued"]]
    lock = sqlite3.connect(shop.store, isolation_level=None, timeout=10)
    lock.execute("BEGIN IMMEDIATE")  # the provider hangs: the worker waits in its fetch, the delivery leased
    try:
        worker = shop.start("worker", *WORKERS[shop.backend])
        deadline = time.monotonic() + 45
        while shop.act("report", paid["invoice"])["report"]["deliveries"][0]["attempts"] == 0:
            assert worker.poll() is None, worker.out_path.read_text()[-3000:]
            assert time.monotonic() < deadline, "the worker did not take the delivery"
        killed(worker)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    left = shop.act("report", paid["invoice"])["report"]
    assert left["status"] == "initiated"
    assert left["deliveries"][0]["status"] == "received" and left["deliveries"][0]["lease"] > 0

    time.sleep(left["deliveries"][0]["lease"])  # the dead worker's lease lapses; the sweep is enqueued
    shop.act("enqueue-sync")
    shop.work()
    report = shop.act("report", paid["invoice"])["report"]
    assert (report["status"], report["order"]) == ("paid", "completed")
    assert report["deliveries"] == [{"status": "processed", "attempts": 2, "deliveries": 1, "lease": 0}]
    assert [line.split()[-1] for line in shop.signals(paid["remote_id"])] == ["paid"]


@pytest.mark.parametrize("shop", ["rq"], indirect=True)
def test_rq_cron_schedules_the_sweep(shop):
    quiet = shop.act("pay-quietly", "no-enqueue")
    config = shop.tmp / "invoicepay_cron.py"  # the file docs/tasks.md shows
    config.write_text("from django_invoicepay.tasks import register_rq_cron\n\nregister_rq_cron()\n")
    cron = shop.start("cron", "rqcron", str(config))
    deadline = time.monotonic() + 60
    while "Enqueued job sync_invoices" not in cron.out_path.read_text():  # at start, then every minute
        assert cron.poll() is None and time.monotonic() < deadline, cron.out_path.read_text()[-3000:]
        time.sleep(0.1)
    cron.terminate()
    cron.wait(timeout=10)
    shop.work()
    report = shop.act("report", quiet["invoice"])["report"]
    assert (report["status"], report["order"]) == ("paid", "completed")


# -- the shop's side, in a process of its own -------------------------------------------------------


def _invoice():
    from shop.models import Order

    from django_invoicepay.models import Invoice

    order = Order.objects.create(description="Coffee beans", total=1250)
    return Invoice.objects.create_for(order, amount=order.total, description=order.description)


def _answer(response) -> list:
    return [response.status_code, response.json()["message"]]


def _report(invoice_id: int) -> dict:
    from django_invoicepay import leases
    from django_invoicepay.models import Invoice, InvoiceStatusChange, WebhookDelivery

    invoice = Invoice.objects.get(pk=invoice_id)
    changes = InvoiceStatusChange.objects.filter(invoice=invoice).order_by("pk")
    deliveries = WebhookDelivery.objects.filter(object_id=invoice.remote_id).order_by("pk")
    return {"status": invoice.status, "order": invoice.order.status,
            "changes": [[c.from_status, c.to_status, c.announced_at is not None] for c in changes],
            "deliveries": [{"status": d.status, "attempts": d.attempts, "deliveries": d.deliveries,
                            "lease": leases.seconds_left(d.leased_until)} for d in deliveries]}


def _pay(event_id: str, times: str = "2") -> dict:
    """The customer pays; the provider tells the shop (`times` deliveries of the same event)."""
    from django_invoicepay import sandbox
    from django_invoicepay.testing import RehiveWebhookSender

    invoice = _invoice()
    sandbox.pay(invoice.remote_id)
    sender = RehiveWebhookSender()
    answers = [_answer(sender.send(invoice, event_id=event_id)) for _ in range(int(times))]
    return {"invoice": invoice.pk, "remote_id": invoice.remote_id, "answers": answers, "report": _report(invoice.pk)}


def _send(invoice_id: str, event_id: str) -> dict:
    from django_invoicepay.models import Invoice
    from django_invoicepay.testing import RehiveWebhookSender

    answer = _answer(RehiveWebhookSender().send(Invoice.objects.get(pk=invoice_id), event_id=event_id))
    return {"answers": [answer], "report": _report(int(invoice_id))}


def _pay_quietly(enqueue: str = "enqueue") -> dict:
    """The customer pays and the provider tells nobody (`notify=False`); the sweep is enqueued."""
    from django_invoicepay import tasks
    from django_invoicepay.testing import Payer

    invoice = Payer().pay(_invoice(), notify=False)
    if enqueue == "enqueue":
        tasks.sync_invoices.enqueue()
    return {"invoice": invoice.pk, "remote_id": invoice.remote_id, "report": _report(invoice.pk)}


def _enqueue_sync() -> dict:
    from django_invoicepay import tasks

    return {"id": str(tasks.sync_invoices.enqueue().id)}


if __name__ == "__main__":
    import django

    django.setup()
    action, *arguments = sys.argv[1:]
    actions = {"pay": _pay, "send": _send, "pay-quietly": _pay_quietly, "enqueue-sync": _enqueue_sync,
               "report": lambda invoice_id: {"report": _report(int(invoice_id))}}
    print(json.dumps(actions[action](*arguments)))  # noqa: T201 - the shop's answer to the test
