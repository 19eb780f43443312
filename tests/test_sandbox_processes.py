"""One sandbox for every process of a shop: real, separate processes share the store and lose nothing.

The workers are this file run as a script: the example shop's settings with the sandbox's store
pointed at the test's file, the real provider client and the sandbox's payer actions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from django_invoicepay import sandbox

ROOT = Path(__file__).resolve().parent.parent
EXPECTED = {0: "paid", 1: "underpaid", 2: "paid"}  # what each worker's i-th invoice ends as, by i % 3


@pytest.fixture
def shared_store(tmp_path):
    """This process's sandbox is the file the workers open (as the shop's processes share theirs)."""
    with sandbox.isolated(tmp_path / "shop-sandbox.sqlite3") as state:
        yield state


def worker(store: Path, *args: str, wait: bool = True, **kwargs) -> subprocess.Popen | dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "example_project")])}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    command = [sys.executable, __file__, str(store), *args]
    if not wait:
        return subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, **kwargs)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def wait_for(paths: list[Path], processes: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + 60
    while not all(path.exists() for path in paths):
        for process in processes:
            if process.poll() is not None:
                raise AssertionError(process.stderr.read()[-3000:])
        assert time.monotonic() < deadline, "the workers did not start"
        time.sleep(0.02)


@pytest.mark.django_db
def test_two_processes_create_and_pay_at_once_and_every_invoice_survives(shared_store, rehive, tmp_path):
    count = 30
    # Both processes also pay, a unit at a time, on the same invoices: a lost update would show in the totals.
    shared = [rehive.create_invoice({"request_amount": 1_000_000, "request_reference": f"shared-{n}"}).id
              for n in range(2)]
    go = tmp_path / "go"
    processes = [worker(shared_store.path, "create-and-pay", tag, str(count), str(go), ",".join(shared), wait=False)
                 for tag in ("web", "shell")]
    wait_for([go.with_name("web.ready"), go.with_name("shell.ready")], processes)
    go.touch()  # both start at the same moment
    results = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))

    with shared_store.transaction() as data:
        invoices = {key: value for key, value in data["invoices"].items()}
        transactions = {key: value for key, value in data["transactions"].items()}
    made = {invoice_id: expected for result in results for invoice_id, expected in result.items()}
    assert len(made) == 2 * count
    assert set(invoices) == set(made) | set(shared)  # every invoice of both processes, and none lost
    for invoice_id, (tag, i) in made.items():
        invoice = invoices[invoice_id]
        assert (invoice["request_reference"], invoice["request_amount"]) == (f"{tag}-{i}", 100 + i)
        assert invoice["status"] == EXPECTED[i % 3], (tag, i, invoice["status"])  # none overwritten
        assert len(transactions[invoice_id]) == 1
    for invoice_id in shared:  # 2 processes x `count` payments of 1, each read-modified-written in turn
        quote = invoices[invoice_id]["payment_processor_quotes"]
        assert len(quote) == 1 and quote[0]["total_paid"] == 2 * count
        assert len(transactions[invoice_id]) == 2 * count
    quote_ids = [q["id"] for invoice in invoices.values() for q in invoice["payment_processor_quotes"]]
    assert len(quote_ids) == len(set(quote_ids)) == 2 * count + len(shared)
    assert rehive.get_invoice(made.popitem()[0]).status in {"paid", "underpaid"}  # this process sees them too


@pytest.mark.django_db
def test_a_renewal_in_one_process_does_not_wipe_invoices_made_by_another(shared_store, order):
    from django_invoicepay.models import Invoice

    invoice = Invoice.objects.create_for(order, amount=1250, description="Coffee beans")  # the web process
    made = worker(shared_store.path, "create", "shell", "5")  # meanwhile a shell makes five invoices
    sandbox.expire(invoice.remote_id)
    invoice.sync()
    renewal = invoice.renew()  # the web process renews: it writes only what it changed
    assert renewal.remote_id != invoice.remote_id

    seen = worker(shared_store.path, "sync")  # `invoicepay_sync` in a third process fetches every one
    assert set(seen) == {*made, invoice.remote_id, renewal.remote_id}
    assert seen[invoice.remote_id] == "expired" and seen[renewal.remote_id] == "initiated"
    assert all(seen[invoice_id] == "initiated" for invoice_id in made)


@pytest.mark.django_db
def test_the_http_server_serves_the_store_the_shop_uses(shared_store, rehive):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "demo.settings", "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen(
        [sys.executable, "manage.py", "invoicepay_sandbox", "--port", "0", "--state-file", shared_store.path],
        cwd=ROOT / "example_project", env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        lines = [server.stdout.readline() for _ in range(7)]
        base = next(line for line in lines if "PAYMENT_REQUESTS_URL" in line).split('"')[3]
        business = next(line for line in lines if "BUSINESS_URL" in line).split('"')[3]
        created = rehive.create_invoice({"request_amount": 700})  # in this process
        seen = requests.get(f"{base}requests/{created.id}/", timeout=5)
        paid = requests.post(base.replace("/payment-requests/api/", "/sandbox/pay/"), json={"invoice": created.id},
                             timeout=5)
        over_http = requests.post(f"{business}manager/businesses/sandbox-business/invoices/",
                                  json={"request_amount": 300, "status": "initiated"},
                                  headers={"Authorization": "Token sandbox-api-key"}, timeout=5)
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert seen.status_code == 200 and seen.json()["data"]["request_amount"] == 700
    assert paid.json()["data"]["status"] == "paid"
    assert rehive.get_invoice(created.id).status == "paid"  # paid over there, seen here
    assert rehive.get_invoice(over_http.json()["data"]["id"]).amount == 300  # made over there, seen here


# -- the worker processes --------------------------------------------------------------------------


def _setup(store: str) -> None:
    """The example shop's settings, with the sandbox's store in the test's file."""
    import demo.settings as demo
    import django
    from django.conf import settings

    values = {name: getattr(demo, name) for name in dir(demo) if name.isupper()}
    values["INVOICEPAY"] = {**demo.INVOICEPAY, "SANDBOX_STATE_FILE": store}
    values["DATABASES"] = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}  # unused
    values["LOGGING"] = {"version": 1, "disable_existing_loggers": False}
    settings.configure(**values)
    django.setup()


def _create_and_pay(tag: str, count: str, go: str, shared: str) -> dict:
    from django_invoicepay.clients import rehive_client

    client = rehive_client()
    Path(go).with_name(f"{tag}.ready").touch()
    while not Path(go).exists():
        time.sleep(0.005)
    made = {}
    for i in range(int(count)):
        invoice_id = client.create_invoice({"request_amount": 100 + i, "request_reference": f"{tag}-{i}"}).id
        if i % 3 == 0:
            sandbox.pay(invoice_id)
        elif i % 3 == 1:
            sandbox.choose_processor(invoice_id, "bank_transfer")
            sandbox.underpay(invoice_id, by=1)
        else:
            sandbox.crypto_deposit(invoice_id, confirmations=0)
            sandbox.confirm(invoice_id, confirmations=3)
        for shared_id in shared.split(","):
            sandbox.pay(shared_id, amount=1)
        made[invoice_id] = (tag, i)
    return made


def _create(tag: str, count: str) -> list[str]:
    from django_invoicepay.clients import rehive_client

    client = rehive_client()
    return [client.create_invoice({"request_amount": 10 + i, "request_reference": f"{tag}-{i}"}).id
            for i in range(int(count))]


def _sync() -> dict[str, str]:
    from django_invoicepay.clients import rehive_client

    client = rehive_client()
    return {invoice.id: client.get_invoice(invoice.id).status for invoice in client.list_invoices()}


if __name__ == "__main__":
    store, action, *arguments = sys.argv[1:]
    _setup(store)
    actions = {"create-and-pay": _create_and_pay, "create": _create, "sync": _sync}
    print(json.dumps(actions[action](*arguments)))  # noqa: T201 - the worker's answer to the test
