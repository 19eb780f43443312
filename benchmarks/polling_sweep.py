#!/usr/bin/env python3
"""Polling sweep benchmark: `sweep()` over N open, unchanged invoices with provider latency injected.

For each N (default 1,000 and 10,000) an untimed setup child migrates a fresh SQLite file (WAL) and
makes one real invoice through the app (created at the in-process sandbox, a processor chosen, synced:
status `processing`, one quote), then bulk-creates N copies of its mirror rows (invoice, quote, due
poll schedule). Each sweep then runs in a fresh child process, so its peak RSS (VmHWM) is its own:
`polling.sweep(concurrency=C)` at C=1 (sequential) and C=16, timed, with every SQL statement counted.

Every provider call goes through the real Rehive client (requests session, retries, JSON envelope,
`InvoiceData.parse`); only the transport is replaced (`--transport`):

- `canned` (default): a benchmark-only adapter that waits `--latency-ms`, then answers the GET with
  the sandbox's own answer for the template invoice, its id replaced. It keeps nothing per invoice,
  so time and memory are the app's, not a simulator's.
- `sandbox`: the real in-process sandbox (memory store, filled with N copies in the child before the
  clock starts) with the documented latency knob, a `slow` fault on every GET
  (`sandbox.add_fault("slow", method="GET", times=None, delay=...)`). Its request log and store grow
  with N and count in the child's RSS.

    .venv/bin/python benchmarks/polling_sweep.py                            # 1k and 10k, 20 ms, C=1 and 16
    .venv/bin/python benchmarks/polling_sweep.py --sizes 200,2000 --latency-ms 5   # smoke run
    .venv/bin/python benchmarks/polling_sweep.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from requests.adapters import BaseAdapter

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from intake import configure_django, peer  # noqa: E402 - settings and process stats shared with bench-intake

WRITES = ("INSERT", "UPDATE", "DELETE")


# =====================================================================================
# Django side (child processes only)
# =====================================================================================


def role_setup(db_path: str, n: int, out_path: str) -> None:
    """Migrate, make one real invoice through the app, then N due copies of its rows (bulk)."""
    configure_django(db_path, ":memory:")
    from django.core.management import call_command
    from django.db import connection

    from django_invoicepay import sandbox
    from django_invoicepay.models import Invoice, PollSchedule, Quote
    from django_invoicepay.services.polling import NORMAL

    call_command("migrate", verbosity=0, interactive=False)
    with connection.cursor() as c:
        c.execute("PRAGMA journal_mode=WAL")
    template = Invoice.objects.create_for(None, amount=1250, description="Bench order")
    sandbox.choose_processor(template.remote_id, "bank_transfer")
    template = template.sync()
    quote = template.quotes.get()
    remote = dict(sandbox.get_state().data["invoices"][template.remote_id])
    skip = {"id", "remote_id", "public_token", "created_at", "updated_at"}
    fields = {f.attname: getattr(template, f.attname) for f in Invoice._meta.concrete_fields if f.name not in skip}
    quote_fields = {f.attname: getattr(quote, f.attname) for f in Quote._meta.concrete_fields
                    if f.name not in {"id", "invoice"}}
    for start in range(0, n, 2000):
        rows = Invoice.objects.bulk_create(
            [Invoice(remote_id=f"bench{i:07d}", **fields) for i in range(start, min(start + 2000, n))])
        Quote.objects.bulk_create([Quote(invoice=row, **quote_fields) for row in rows])
        PollSchedule.objects.bulk_create([PollSchedule(invoice=row, next_at=template.created_at, interval=NORMAL)
                                          for row in rows])
    template.delete()
    Path(out_path).write_text(json.dumps({"template_id": template.remote_id, "remote": remote}, default=str))


class CannedRehive(BaseAdapter):
    """Benchmark-only transport: the provider's latency, then the template's answer for any invoice id.

    Wraps the sandbox adapter the client already has: the first GET goes to the sandbox (which knows
    the template only) to record its real answer; later ones are that answer with the id replaced.
    """

    def __init__(self, inner: BaseAdapter, template_id: str, latency: float) -> None:
        super().__init__()
        self.inner, self.template_id, self.latency = inner, template_id, latency
        self.body: bytes | None = None

    def send(self, request: Any, **kwargs: Any) -> Any:
        from django_invoicepay.sandbox.rehive import SandboxResponse
        from django_invoicepay.sandbox.transport import build_response

        time.sleep(self.latency)
        wanted = (request.url or "").rstrip("/").rsplit("/", 1)[-1]
        if self.body is None:
            template_url = (request.url or "").replace(wanted, self.template_id)
            request.url, original = template_url, request.url
            self.body = self.inner.send(request, **kwargs).content
            request.url = original
        body = self.body.replace(self.template_id.encode(), wanted.encode())
        return build_response(request, SandboxResponse(200, body, {"Content-Type": "application/json"}))

    def close(self) -> None:
        pass


def install_transport(kind: str, spec: dict, n: int, latency: float) -> None:
    """Mount the benchmark's transport on the Rehive client's session (see the module docstring)."""
    import copy

    from django_invoicepay import sandbox
    from django_invoicepay.clients import rehive_client

    client = rehive_client()
    state = sandbox.get_state()
    with state.transaction() as data:
        data["invoices"][spec["template_id"]] = spec["remote"]
        if kind == "sandbox":
            for i in range(n):
                data["invoices"][f"bench{i:07d}"] = {**copy.deepcopy(spec["remote"]), "id": f"bench{i:07d}"}
    if kind == "sandbox":
        sandbox.add_fault("slow", method="GET", times=None, delay=latency)
        return
    session = client.transport.session
    inner = session.get_adapter(client.business_url)
    session.mount(client.business_url, CannedRehive(inner, spec["template_id"], latency))


def vm(key: str) -> float:
    return float(peer.process_stats().get(f"{key}_mib", 0.0))


def role_sweep(db_path: str, spec_path: str, n: int, concurrency: int, kind: str, latency: float) -> None:
    configure_django(db_path, ":memory:")
    from collections import Counter

    from django.db import connection
    from django.utils import timezone

    from django_invoicepay.models import PollSchedule
    from django_invoicepay.services import polling

    spec = json.loads(Path(spec_path).read_text())
    install_transport(kind, spec, n, latency)
    PollSchedule.objects.update(next_at=timezone.now(), leased_until=None, interval=polling.NORMAL)
    statements: Counter = Counter()

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        statements[sql.lstrip().split(None, 1)[0].upper()] += 1
        return execute(sql, params, many, context)

    rss_before, cpu_before = vm("VmRSS"), time.process_time()
    with connection.execute_wrapper(count):
        started = time.perf_counter()
        result = polling.sweep(concurrency=concurrency)
        seconds = time.perf_counter() - started
    cpu_ms = (time.process_time() - cpu_before) * 1000 / n
    outcomes = result.as_dict()
    print(json.dumps({
        "n": n, "concurrency": concurrency, "seconds": round(seconds, 3), "per_s": round(n / seconds, 1),
        "outcomes": {k: outcomes[k] for k in ("polled", "changed", "unchanged", "failed", "missing")},
        "statements": dict(statements), "writes": sum(statements[k] for k in WRITES),
        "writes_per_unchanged": round(sum(statements[k] for k in WRITES) / max(outcomes["unchanged"], 1), 4),
        "cpu_ms_per_invoice": round(cpu_ms, 3), "rss_before_mib": rss_before, "vmhwm_mib": vm("VmHWM"),
    }))


# =====================================================================================
# Orchestration (parent process: no Django imported here)
# =====================================================================================


def _child(args: list[str]) -> str:
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), *args], text=True, capture_output=True)
    if done.returncode:
        raise SystemExit(f"child {args[:2]} failed:\n{done.stderr[-3000:]}")
    return (done.stdout.strip().splitlines() or [""])[-1]


def measure(tmp: Path, n: int, args: argparse.Namespace) -> list[dict]:
    db, spec = tmp / f"sweep-{n}.sqlite3", tmp / f"sweep-{n}.json"
    started = time.perf_counter()
    _child(["--role", "setup", "--db", str(db), "--n", str(n), "--out", str(spec)])
    print(f"N={n}: setup {time.perf_counter() - started:.1f} s", file=sys.stderr)
    runs = []
    for concurrency in args.concurrency:
        line = _child(["--role", "sweep", "--db", str(db), "--spec", str(spec), "--n", str(n),
                       "--threads", str(concurrency), "--transport", args.transport,
                       "--latency-ms", str(args.latency_ms)])
        runs.append(json.loads(line))
        print(f"  {line}", file=sys.stderr)
    return runs


def report(runs: list[dict], args: argparse.Namespace) -> str:
    by = {(r["n"], r["concurrency"]): r for r in runs}
    sizes, threads = sorted({r["n"] for r in runs}), sorted({r["concurrency"] for r in runs})
    lines = [f"Polling sweep: {args.transport} transport, {args.latency_ms:g} ms provider latency, SQLite (WAL)",
             "| N | threads | wall s | invoices/s | speed-up vs 1 thread | CPU ms/invoice | writes/unchanged invoice | "
             "statements (by kind) | peak RSS MiB (before sweep) |", "|---|---|---|---|---|---|---|---|---|"]
    for n in sizes:
        for c in threads:
            r, base = by[(n, c)], by.get((n, min(threads)))
            speed = f"{base['seconds'] / r['seconds']:.1f}x" if base else "-"
            kinds = ", ".join(f"{k} {v}" for k, v in sorted(r["statements"].items()))
            lines.append(f"| {n} | {c} | {r['seconds']:.2f} | {r['per_s']:.0f} | {speed} | "
                         f"{r['cpu_ms_per_invoice']:.2f} | {r['writes_per_unchanged']:.3f} | {kinds} | "
                         f"{r['vmhwm_mib']:.1f} ({r['rss_before_mib']:.1f}) |")
    if len(sizes) > 1:
        small, big = sizes[0], sizes[-1]
        for c in threads:
            ratio = by[(big, c)]["seconds"] / by[(small, c)]["seconds"]
            lines.append(f"time({big}) / time({small}) at {c} thread(s): {ratio:.2f} (N ratio {big / small:g})")
    facts = {k: v for k, v in peer.machine_facts().items() if v and k not in {"dj-stripe", "stripe"}}
    lines.append("Machine: " + ", ".join(f"{k} {v}" for k, v in facts.items()) + f"; load average {os.getloadavg()}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--role", choices=["main", "setup", "sweep"], default="main", help=argparse.SUPPRESS)
    ap.add_argument("--db", help=argparse.SUPPRESS)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--sizes", default="1000,10000", help="invoice counts, comma-separated (default 1000,10000)")
    ap.add_argument("--concurrency", default="1,16", help="thread counts to compare (default 1,16)")
    ap.add_argument("--latency-ms", type=float, default=20.0, help="provider latency per call (default 20)")
    ap.add_argument("--transport", choices=["canned", "sandbox"], default="canned")
    ap.add_argument("--json", help="also write the runs to this file")
    args = ap.parse_args()
    if args.role == "setup":
        return role_setup(args.db, args.n, args.out)
    if args.role == "sweep":
        return role_sweep(args.db, args.spec, args.n, args.threads, args.transport, args.latency_ms / 1000)
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    with tempfile.TemporaryDirectory(prefix="invoicepay-sweep-") as tmp:
        runs = [run for n in (int(s) for s in args.sizes.split(",")) for run in measure(Path(tmp), n, args)]
    print(report(runs, args))
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "machine": peer.machine_facts()}, indent=2))


if __name__ == "__main__":
    main()
