#!/usr/bin/env python3
"""Our webhook intake against dj-stripe's, interleaved in one invocation, on the same machine.

Each round runs our two scenarios (benchmarks/intake.py, in this interpreter) and then one
invocation of the peer harness (`peer_djstripe.py --runs 1 --modes http`, both scenarios, in the
dj-stripe virtualenv); odd rounds run the peer first, so slow drift of a noisy machine hits both
sides alike. Medians over the rounds; ratios are ours / dj-stripe's.

    python3 -m venv .venv-djstripe
    .venv-djstripe/bin/pip install dj-stripe==2.11.0 Django==5.2.19 stripe==15.6.2 requests==2.34.2
    .venv/bin/python benchmarks/compare_djstripe.py --json compare.json     # 3 rounds, N=500
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import intake  # noqa: E402 - benchmarks/intake.py (loads the peer harness too)

PEER_PYTHON = Path(os.environ.get("DJSTRIPE_PYTHON", intake.REPO / ".venv-djstripe" / "bin" / "python"))
SCENARIOS = ("distinct", "dup30")

#: The issue's targets for later work (ours compared with dj-stripe's on the same machine).
TARGETS = "intake >= 2.0x dj-stripe's events/s, <= 8 queries per new event, <= 3 per duplicate, " \
          "1 provider call per event, peak RSS <= dj-stripe's"


def peer_round(a: argparse.Namespace, tmp: Path, i: int) -> dict:
    out = tmp / f"peer-{i}.json"
    cmd = [str(PEER_PYTHON), str(intake.PEER_PATH), "--n", str(a.n), "--runs", "1", "--modes", "http",
           "--warmup", str(a.warmup), "--dup-ratio", str(a.dup_ratio), "--json", str(out)]
    if a.sqlite_synchronous:
        cmd += ["--sqlite-synchronous", a.sqlite_synchronous]
    subprocess.run(cmd, check=True, text=True, capture_output=True)
    result = json.loads(out.read_text())
    runs = {}
    for scen in SCENARIOS:
        r = result["http"][scen]["median_run"]
        n_new = r["n"] - r["n_duplicates"]
        calls = sum(r["stripe_api_calls"].values())
        r["provider_calls_per_delivery"] = round(calls / r["n"], 3)
        r["provider_calls_per_new_event"] = round(calls / n_new, 3) if n_new else None
        runs[scen] = r
        print(f"[dj-stripe http/{scen} round {i + 1}] {r['events_per_s']:7.1f} ev/s  p50 {r['p50_ms']} ms  "
              f"new {r['first_delivery_mean_ms']} ms  dup {r['duplicate_mean_ms']} ms  "
              f"peakRSS {r['peak_rss_mib']} MiB  api calls/new event {r['provider_calls_per_new_event']}", flush=True)
    return {"runs": runs, "per_event_queries": result["per_event_queries"], "machine": result["machine"]}


def ours_round(a: argparse.Namespace, tmp: Path, template: Path, i: int) -> dict:
    return {scen: intake.run_scenario(tmp, template, a, scen, i) for scen in SCENARIOS}


def med(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    intake.add_common_args(ap)
    a = ap.parse_args()
    if a.server_python:
        os.environ["BENCH_SERVER_PYTHON"] = a.server_python
    if not PEER_PYTHON.exists():
        raise SystemExit(f"{PEER_PYTHON} not found: create .venv-djstripe first (see benchmarks/README.md)")
    if a.sqlite_synchronous:
        os.environ["BENCH_SQLITE_SYNCHRONOUS"] = a.sqlite_synchronous

    with intake.scratch("invoicepay-compare-bench-", a.keep_tmp) as tmp:
        ours: list[dict] = []
        theirs: list[dict] = []
        template = intake.prepare_template(tmp)
        ours_probe = intake.probe(tmp, template)
        intake.print_probe(ours_probe)
        for i in range(a.runs):
            if i % 2:
                theirs.append(peer_round(a, tmp, i))
                ours.append(ours_round(a, tmp, template, i))
            else:
                ours.append(ours_round(a, tmp, template, i))
                theirs.append(peer_round(a, tmp, i))

    peer_probe = theirs[0]["per_event_queries"]
    intake.print_probe(peer_probe, who="dj-stripe")
    q_ours_new = ours_probe[1]  # steady state: a new event for a paid invoice
    q_ours_dup = ours_probe[3]
    q_peer_new = peer_probe[2]  # steady state: known customer, new PaymentIntent
    q_peer_dup = peer_probe[4]

    summary: dict = {}
    for scen in SCENARIOS:
        o = [r[scen] for r in ours]
        t = [r["runs"][scen] for r in theirs]
        s = {
            "ours_events_per_s": med([r["events_per_s"] for r in o]),
            "djstripe_events_per_s": med([r["events_per_s"] for r in t]),
            "ours_peak_rss_mib": med([r["peak_rss_mib"] for r in o]),
            "djstripe_peak_rss_mib": med([r["peak_rss_mib"] for r in t]),
            "ours_provider_calls_per_new_event": med([r["provider_calls_per_new_event"] for r in o]),
            "djstripe_provider_calls_per_new_event": med([r["provider_calls_per_new_event"] for r in t]),
            "ours_provider_calls_per_delivery": med([r["provider_calls_per_delivery"] for r in o]),
            "djstripe_provider_calls_per_delivery": med([r["provider_calls_per_delivery"] for r in t]),
            "ours_events_per_s_runs": [r["events_per_s"] for r in o],
            "djstripe_events_per_s_runs": [r["events_per_s"] for r in t],
        }
        s["events_per_s_ratio"] = round(s["ours_events_per_s"] / s["djstripe_events_per_s"], 2)
        s["peak_rss_ratio"] = round(s["ours_peak_rss_mib"] / s["djstripe_peak_rss_mib"], 2)
        summary[scen] = s
    queries = {
        "new_event": {"ours": [q_ours_new["queries_total"], q_ours_new["queries_data"]],
                      "djstripe": [q_peer_new["queries_total"], q_peer_new["queries_data"]]},
        "duplicate": {"ours": [q_ours_dup["queries_total"], q_ours_dup["queries_data"]],
                      "djstripe": [q_peer_dup["queries_total"], q_peer_dup["queries_data"]]},
    }

    print(f"\n=== ours vs dj-stripe, http, median of {a.runs} interleaved rounds, N={a.n} ===")
    for scen in SCENARIOS:
        s = summary[scen]
        print(f"{scen:8s} events/s {s['ours_events_per_s']:6.1f} vs {s['djstripe_events_per_s']:6.1f}  "
              f"ratio {s['events_per_s_ratio']:.2f}x   peak RSS {s['ours_peak_rss_mib']} vs "
              f"{s['djstripe_peak_rss_mib']} MiB (ratio {s['peak_rss_ratio']:.2f})   provider calls/new event "
              f"{s['ours_provider_calls_per_new_event']} vs {s['djstripe_provider_calls_per_new_event']}")
    for case, q in queries.items():
        ratio = q["ours"][0] / q["djstripe"][0]
        print(f"queries per {case:9s} ours {q['ours'][0]} ({q['ours'][1]} data) vs dj-stripe {q['djstripe'][0]} "
              f"({q['djstripe'][1]} data)  ratio {ratio:.2f}")
    d = summary["distinct"]
    checks = [
        ("events/s >= 2.0x dj-stripe's (distinct)", d["events_per_s_ratio"] >= 2.0, f"{d['events_per_s_ratio']}x"),
        ("events/s >= 2.0x dj-stripe's (dup30)", summary["dup30"]["events_per_s_ratio"] >= 2.0,
         f"{summary['dup30']['events_per_s_ratio']}x"),
        ("<= 8 queries per new event", q_ours_new["queries_total"] <= 8, q_ours_new["queries_total"]),
        ("<= 3 queries per duplicate", q_ours_dup["queries_total"] <= 3, q_ours_dup["queries_total"]),
        ("1 provider call per new event", d["ours_provider_calls_per_new_event"] <= 1,
         d["ours_provider_calls_per_new_event"]),
        ("peak RSS <= dj-stripe's", d["ours_peak_rss_mib"] <= d["djstripe_peak_rss_mib"],
         f"{d['ours_peak_rss_mib']} vs {d['djstripe_peak_rss_mib']} MiB"),
    ]
    print("targets:")
    for label, ok, value in checks:
        print(f"  {'met ' if ok else 'MISS'}  {label}: {value}")
    if a.json:
        Path(a.json).write_text(json.dumps({
            "machine": {"ours": intake.machine_facts(), "djstripe": theirs[0]["machine"]},
            "params": {k: v for k, v in vars(a).items() if k in ("n", "runs", "dup_ratio", "warmup",
                                                                  "sqlite_synchronous")},
            "summary": summary, "queries": queries, "targets": TARGETS,
            "checks": [{"target": label, "met": ok, "value": value} for label, ok, value in checks],
            "per_event_queries": {"ours": ours_probe, "djstripe": peer_probe},
            "rounds": {"ours": ours, "djstripe": [r["runs"] for r in theirs]},
        }, indent=2, default=str))


if __name__ == "__main__":
    main()
