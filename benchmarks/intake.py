#!/usr/bin/env python3
"""Webhook intake benchmark: how fast django-invoicepay takes in Rehive webhooks, end to end.

Same method as the dj-stripe peer harness (../shared/bench/peer_djstripe.py, section 1 of which is
imported here, not copied): N=500 deliveries after 20 untimed warm-up events, a "distinct" and a
"dup30" scenario (30 % re-deliveries of earlier event ids, byte-identical), `runserver --noreload`
with TCP_NODELAY on accepted sockets, `requests` with keep-alive, a freshly migrated SQLite file in
WAL (synchronous left at SQLite's default, FULL), DEBUG=False, CONN_MAX_AGE=0.

One event: an invoice created in the shop through the app (`Invoice.objects.create_for(None, ...)`,
which creates it at the sandbox and mirrors it), paid at the sandbox (`sandbox.pay`), then Rehive's
`service_payment_requests.request.update` for it (the body `django_invoicepay.testing.webhooks`
builds: the sandbox's invoice as the API shows it) POSTed with `Authorization: Secret <secret>`.
The invoices are made in an untimed setup step, in their own process; the sandbox is a SQLite file
shared by that process and the server. Provider calls are the sandbox's request log
(`sandbox.get_state().requests`) in the server process, read through a stats URL.

    .venv/bin/python benchmarks/intake.py                       # 3 runs per scenario, N=500
    .venv/bin/python benchmarks/intake.py --n 100 --runs 1      # smoke run
    .venv/bin/python benchmarks/intake.py --json out.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PEER_PATH = Path(os.environ.get("PEER_DJSTRIPE", REPO.parent / "shared" / "bench" / "peer_djstripe.py"))


def load_peer() -> Any:
    """The peer harness as a module. Its top level imports only the standard library (dj-stripe and
    stripe are imported inside its child-process functions), so it loads without dj-stripe."""
    spec = importlib.util.spec_from_file_location("peer_djstripe", PEER_PATH)
    if spec is None or spec.loader is None:
        raise SystemExit(f"peer harness not found at {PEER_PATH} (set PEER_DJSTRIPE=/path/to/peer_djstripe.py)")
    module = importlib.util.module_from_spec(spec)
    sys.modules["peer_djstripe"] = module  # its dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


peer = load_peer()
Delivery = peer.Delivery

WEBHOOK_SECRET = "bench-rehive-webhook-secret-0123456789"  # noqa: S105 - benchmark only, never leaves the machine
WEBHOOK_PATH = "/invoicepay/webhooks/rehive/"
EVENT = "service_payment_requests.request.update"
REHIVE_HEADERS = {"Content-Type": "application/json"}  # plus Authorization, added at send time
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


# =====================================================================================
# Django side (child processes only)
# =====================================================================================


def configure_django(db_path: str, sandbox_path: str) -> None:
    import types

    import django
    from django.conf import settings

    db_options: dict[str, Any] = {"transaction_mode": "IMMEDIATE"}  # as the example shop and the tests
    if os.environ.get("BENCH_SQLITE_SYNCHRONOUS"):
        db_options["init_command"] = f"PRAGMA synchronous={os.environ['BENCH_SQLITE_SYNCHRONOUS']}"
    urls = types.ModuleType("bench_urls")
    sys.modules["bench_urls"] = urls
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-only-not-secret",  # noqa: S106
        ALLOWED_HOSTS=["127.0.0.1", "localhost", "testserver"],
        ROOT_URLCONF="bench_urls",
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "django.contrib.sessions",
            "django.contrib.messages",
            "rest_framework",
            "django_invoicepay",
        ],
        MIDDLEWARE=[  # Django's startproject default stack, as the peer harness
            "django.middleware.security.SecurityMiddleware",
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.common.CommonMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
            "django.middleware.clickjacking.XFrameOptionsMiddleware",
        ],
        TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True,
                    "OPTIONS": {"context_processors": ["django.template.context_processors.request",
                                                       "django.contrib.auth.context_processors.auth",
                                                       "django.contrib.messages.context_processors.messages"]}}],
        # CONN_MAX_AGE left at Django's default, 0; WAL is set on the file by role_prepare.
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": db_path, "OPTIONS": db_options}},
        USE_TZ=True,
        TIME_ZONE="UTC",
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        INVOICEPAY={
            "SANDBOX": True,
            "SANDBOX_STATE_FILE": sandbox_path,  # one sandbox for the setup process and the server
            "REHIVE": {"QR_NAME": "Bench Shop", "WEBHOOK_SECRET": WEBHOOK_SECRET},
        },
        LOGGING={"version": 1, "disable_existing_loggers": False,
                 "loggers": {"django_invoicepay": {"level": "WARNING"}}},
    )
    django.setup()

    from django.http import JsonResponse
    from django.urls import include, path

    def stats_view(request: Any) -> JsonResponse:
        return JsonResponse(process_stats())

    urls.urlpatterns = [
        path("invoicepay/", include("django_invoicepay.urls")),
        path("__bench__/stats", stats_view),
    ]


def provider_calls() -> Counter:
    """This process's sandbox request log, by service, method and path (ids replaced by :id)."""
    from django_invoicepay import sandbox

    return Counter(f"{r['service']} {r['method']} {_UUID.sub(':id', r['path'])}" for r in sandbox.get_state().requests)


def process_stats() -> dict:
    out = peer.process_stats()  # pid, ru_maxrss, VmHWM/VmRSS, journal_mode, synchronous
    out.pop("stripe_api_calls", None)
    out["provider_calls"] = dict(provider_calls())
    return out


def role_prepare(db_path: str, sandbox_path: str) -> None:
    configure_django(db_path, sandbox_path)
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0, interactive=False)
    with connection.cursor() as c:
        c.execute("PRAGMA journal_mode=WAL")
    connection.close()


def make_paid_invoices(count: int, prefix: str) -> list[tuple[str, bytes]]:
    """`count` invoices created through the app, paid at the sandbox; their update events (id, body)."""
    from django_invoicepay import sandbox
    from django_invoicepay.models import Invoice
    from django_invoicepay.testing.webhooks import RehiveWebhookSender

    sender = RehiveWebhookSender()
    out = []
    for i in range(count):
        invoice = Invoice.objects.create_for(None, amount=1000 + i, description=f"Bench order {prefix}-{i}")
        sandbox.pay(invoice.remote_id)
        event_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench/{prefix}/{i}/{invoice.remote_id}"))
        envelope = sender.envelope(invoice, event=EVENT, event_id=event_id)
        out.append((event_id, json.dumps(envelope).encode()))
    return out


def role_setup(db_path: str, sandbox_path: str, spec: dict, out_path: str) -> None:
    configure_django(db_path, sandbox_path)
    result = {pool: [[e, b.decode()] for e, b in make_paid_invoices(count, f"{spec['tag']}-{pool}")]
              for pool, count in (("warm", spec["warmup"]), ("run", spec["n_new"]))}
    Path(out_path).write_text(json.dumps(result))


def role_serve(db_path: str, sandbox_path: str, port: int) -> None:
    """`runserver 127.0.0.1:PORT --noreload` with TCP_NODELAY on accepted sockets (as the peer harness)."""
    configure_django(db_path, sandbox_path)
    from django.core.management import call_command
    from django.core.management.commands.runserver import Command as Runserver
    from django.core.servers.basehttp import WSGIServer

    class NoDelayWSGIServer(WSGIServer):
        def get_request(self) -> Any:
            conn, addr = super().get_request()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return conn, addr

    cmd = Runserver()
    cmd.server_cls = NoDelayWSGIServer
    call_command(cmd, f"127.0.0.1:{port}", use_reloader=False)


def role_probe(db_path: str, sandbox_path: str) -> None:
    """Per-event SQL (CaptureQueriesContext around one test-Client POST) and provider calls."""
    configure_django(db_path, sandbox_path)
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    events = make_paid_invoices(3, "probe")
    client = Client()
    steps = [
        ("first event after deploy (new invoice event)", 0),
        ("new event (steady state: a paid invoice the shop has not seen paid)", 1),
        ("new event again (check)", 2),
        ("duplicate re-delivery of an already processed event", 1),
    ]
    out = []
    for label, idx in steps:
        event_id, body = events[idx]
        before = provider_calls()
        with CaptureQueriesContext(connection) as ctx:
            t = time.perf_counter()
            r = client.post(WEBHOOK_PATH, data=body, content_type="application/json",
                            headers={"Authorization": f"Secret {WEBHOOK_SECRET}"})
            dt = time.perf_counter() - t
        if r.status_code != 200:
            raise RuntimeError(f"{label}: HTTP {r.status_code} {r.content[:200]!r}")
        sqls = [q["sql"] for q in ctx.captured_queries]
        kinds = Counter(peer._classify(s) for s in sqls)
        out.append({
            "step": label,
            "queries_total": len(sqls),
            "queries_data": sum(kinds[k] for k in ("SELECT", "INSERT", "UPDATE", "DELETE")),
            "by_kind": dict(kinds),
            "provider_calls": dict(provider_calls() - before),
            "answer": r.json(),
            "ms": round(dt * 1000, 2),
            "sql": [s[:160] for s in sqls],
        })
    print(json.dumps(out))


# =====================================================================================
# Orchestration (parent process: no Django imported here)
# =====================================================================================


@contextmanager
def scratch(prefix: str, keep: bool) -> Iterator[Path]:
    """A fresh temp directory for one benchmark run, deleted afterwards unless `keep` (--keep-tmp)."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield tmp
    finally:
        if keep:
            print("kept", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def server_python() -> str:
    """The server's interpreter: BENCH_SERVER_PYTHON, e.g. .venv-bench/bin/python (the app with its runtime
    dependencies only, as dj-stripe runs from its own virtualenv), else this one."""
    return os.environ.get("BENCH_SERVER_PYTHON") or sys.executable


def _child(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(Path(__file__).resolve()), *args],
                          check=True, text=True, capture_output=True)


def db_counts(db_path: Path) -> dict:
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        status = dict(con.execute("SELECT status, count(*) FROM invoicepay_webhookdelivery GROUP BY status"))
        invoices = dict(con.execute("SELECT status, count(*) FROM invoicepay_invoice GROUP BY status"))
        return {"webhook_deliveries": status, "invoices": invoices}
    finally:
        con.close()


def prepare_template(tmp: Path) -> Path:
    template = tmp / "template.sqlite3"
    _child(["--role", "prepare", "--db", str(template), "--sandbox", str(tmp / "template-sandbox.sqlite3")])
    return template


def probe(tmp: Path, template: Path) -> list[dict]:
    db = tmp / "probe.sqlite3"
    shutil.copyfile(template, db)
    cp = _child(["--role", "probe", "--db", str(db), "--sandbox", str(tmp / "probe-sandbox.sqlite3")])
    return json.loads(cp.stdout.strip().splitlines()[-1])


def http_run(tmp: Path, template: Path, spec: dict) -> dict:
    """One run over HTTP on a fresh DB and sandbox: setup child, server child, N timed deliveries."""
    import requests

    db = tmp / f"{spec['tag']}.sqlite3"
    sandbox_file = tmp / f"{spec['tag']}-sandbox.sqlite3"
    shutil.copyfile(template, db)
    plan = peer.delivery_plan(spec["n"], spec["dup_ratio"], spec["seed"])
    spec = {**spec, "n_new": sum(1 for _, dup in plan if not dup)}
    events_file = tmp / f"{spec['tag']}-events.json"
    t = time.perf_counter()
    _child(["--role", "setup", "--db", str(db), "--sandbox", str(sandbox_file), "--spec", json.dumps(spec),
            "--out", str(events_file)])
    setup_s = time.perf_counter() - t
    events = json.loads(events_file.read_text())

    def deliveries(pool: str, order: list[tuple[int, bool]]) -> list:
        return [Delivery(events[pool][i][0], events[pool][i][1].encode(), dict(REHIVE_HEADERS), dup)
                for i, dup in order]

    port = peer._free_port()
    log = open(tmp / f"{spec['tag']}.server.log", "w")  # closed in finally
    proc = subprocess.Popen([server_python(), str(Path(__file__).resolve()), "--role", "serve", "--db", str(db),
                             "--sandbox", str(sandbox_file), "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        sess = requests.Session()
        for _ in range(300):
            try:
                if sess.get(base + "/__bench__/stats", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if proc.poll() is not None:
                raise RuntimeError(f"server died, see {log.name}")
            time.sleep(0.1)
        else:
            raise RuntimeError("server did not come up")
        idle = sess.get(base + "/__bench__/stats").json()

        def post_one(d: Any) -> None:
            headers = {**d.headers, "Authorization": f"Secret {WEBHOOK_SECRET}"}
            r = sess.post(base + WEBHOOK_PATH, data=d.body, headers=headers, timeout=60)
            if r.status_code != 200:
                raise RuntimeError(f"{d.event_id}: HTTP {r.status_code} {r.text[:200]!r}")

        for d in deliveries("warm", [(i, False) for i in range(spec["warmup"])]):
            post_one(d)
        before = Counter(sess.get(base + "/__bench__/stats").json()["provider_calls"])
        res = peer.run_sequential(post_one, deliveries("run", plan))
        server = sess.get(base + "/__bench__/stats").json()
        server["provider_calls"] = dict(Counter(server["provider_calls"]) - before)
        server["idle_rss_mib"] = idle.get("VmRSS_mib", idle.get("ru_maxrss_mib"))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    out = {"summary": res.summary(), "server": server, "db": db_counts(db), "db_size_mib": peer._db_size_mib(db),
           "setup_s": round(setup_s, 1)}
    if not spec.get("keep"):
        for p in tmp.glob(f"{spec['tag']}*"):
            p.unlink()
    return out


def flat(run: dict) -> dict:
    r = dict(run["summary"])
    calls = run["server"]["provider_calls"]
    n_new = r["n"] - r["n_duplicates"]
    r["peak_rss_mib"] = run["server"].get("VmHWM_mib", run["server"].get("ru_maxrss_mib"))
    r["idle_rss_mib"] = run["server"].get("idle_rss_mib")
    r["provider_calls"] = calls
    r["provider_calls_per_delivery"] = round(sum(calls.values()) / r["n"], 3)
    r["provider_calls_per_new_event"] = round(sum(calls.values()) / n_new, 3) if n_new else None
    r["sqlite"] = {"journal_mode": run["server"].get("journal_mode"), "synchronous": run["server"].get("synchronous")}
    r["db"] = run["db"]
    r["db_size_mib"] = run["db_size_mib"]
    r["setup_s"] = run["setup_s"]
    return r


def run_scenario(tmp: Path, template: Path, a: argparse.Namespace, scen: str, i: int) -> dict:
    dup = 0.0 if scen == "distinct" else a.dup_ratio
    spec = {"tag": f"ours-{scen}-{i}", "n": a.n, "dup_ratio": dup, "seed": 1000 + i, "warmup": a.warmup,
            "keep": a.keep_tmp}
    r = flat(http_run(tmp, template, spec))
    print(f"[ours http/{scen} run {i + 1}] {r['events_per_s']:7.1f} ev/s  p50 {r['p50_ms']} ms  "
          f"new {r['first_delivery_mean_ms']} ms  dup {r['duplicate_mean_ms']} ms  p99 {r['p99_ms']} ms  "
          f"peakRSS {r['peak_rss_mib']} MiB  provider calls/new event {r['provider_calls_per_new_event']}  "
          f"db={r['db']}  (setup {r['setup_s']} s)", flush=True)
    return r


def machine_facts() -> dict:
    facts = peer.machine_facts()  # nproc, cpu, python, sqlite, Django, requests (dj-stripe/stripe: None here)
    from importlib.metadata import version

    facts["django-invoicepay"] = version("django-invoicepay")
    return facts


def print_probe(steps: list[dict], who: str = "ours") -> None:
    for p in steps:
        calls = p.get("provider_calls", p.get("stripe_api_calls"))
        print(f"[{who} probe] {p['queries_total']:3d} queries ({p['queries_data']} data) "
              f"provider calls={calls}  {p['step']}", flush=True)


def add_common_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--n", type=int, default=500, help="deliveries per run (default 500)")
    ap.add_argument("--runs", type=int, default=3, help="runs per scenario; median reported")
    ap.add_argument("--dup-ratio", type=float, default=0.30, help="share of re-deliveries in scenario dup30")
    ap.add_argument("--warmup", type=int, default=20, help="untimed warm-up events before each run")
    ap.add_argument("--sqlite-synchronous", choices=["OFF", "NORMAL", "FULL"],
                    help="PRAGMA synchronous per connection (default: SQLite's default, FULL)")
    ap.add_argument("--json", help="also write the full result JSON here")
    ap.add_argument("--keep-tmp", action="store_true")
    ap.add_argument("--server-python", help="the server's interpreter (default: BENCH_SERVER_PYTHON, else this one); "
                                            "make bench-intake uses .venv-bench, the app with its runtime dependencies")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(ap)
    ap.add_argument("--role", choices=["prepare", "setup", "serve", "probe"], help=argparse.SUPPRESS)
    ap.add_argument("--db", help=argparse.SUPPRESS)
    ap.add_argument("--sandbox", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a.role == "prepare":
        return role_prepare(a.db, a.sandbox)
    if a.role == "setup":
        return role_setup(a.db, a.sandbox, json.loads(a.spec), a.out)
    if a.role == "serve":
        return role_serve(a.db, a.sandbox, a.port)
    if a.role == "probe":
        return role_probe(a.db, a.sandbox)

    if a.server_python:
        os.environ["BENCH_SERVER_PYTHON"] = a.server_python
    if a.sqlite_synchronous:  # inherited by every child process
        os.environ["BENCH_SQLITE_SYNCHRONOUS"] = a.sqlite_synchronous
    with scratch("invoicepay-intake-bench-", a.keep_tmp) as tmp:
        result: dict = {"machine": machine_facts(),
                        "params": {k: v for k, v in vars(a).items() if k in ("n", "runs", "dup_ratio", "warmup",
                                                                              "sqlite_synchronous")}}
        template = prepare_template(tmp)
        result["per_event_queries"] = probe(tmp, template)
        print_probe(result["per_event_queries"])
        result["http"] = {}
        for scen in ("distinct", "dup30"):
            result["http"][scen] = peer.median_of_runs(lambda i, scen=scen: run_scenario(tmp, template, a, scen, i),
                                                       a.runs)
        print(f"\n=== summary: ours, http (median of {a.runs} runs, N={a.n}) ===")
        for scen in ("distinct", "dup30"):
            m = result["http"][scen]["median_run"]
            print(f"{scen:8s} {m['events_per_s']:7.1f} ev/s  mean {m['mean_ms']} ms (first delivery "
                  f"{m['first_delivery_mean_ms']} ms, duplicate {m['duplicate_mean_ms']} ms)  p95 {m['p95_ms']} ms  "
                  f"peak RSS {m['peak_rss_mib']} MiB (idle {m['idle_rss_mib']} MiB)  "
                  f"provider calls/new event {m['provider_calls_per_new_event']}  sqlite {m['sqlite']}")
        print("machine:", json.dumps(result["machine"]))
        if a.json:
            Path(a.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
