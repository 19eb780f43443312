"""The reliability suite, scale leg: the shop deployed as in production, under thousands of deliveries and kills.

PostgreSQL only (a new database of its own, dropped afterwards), a Redis cache (DB 5, a key prefix of its own),
gunicorn with 4 sync workers serving the shop with the reliability app's receivers, 2 task workers (django-tasks-db
`db_worker`: a new event is stored, answered 202 and processed by `process_webhook` on a worker), the poller of the
crash runs, and one sandbox store (a SQLite file) that every process calls the provider through. N deliveries
(INVOICEPAY_SCALE_N; 600 here, 5,000 with `make test-scale`) for N/10 invoices driven through the sandbox in two
rounds, 30% of them duplicates, shuffled, sent by 16 clients that redeliver like Rehive. Meanwhile gunicorn workers
and task workers are killed (SIGKILL and SIGTERM; the gunicorn master and a process manager start new ones) and the
poller is SIGKILLed once. Measured: throughput, acknowledgement latency, the time until everything is processed.
Asserted, as in the crash runs: 0 lost (every event finished, every invoice in the provider's status, every order
following it), 0 double (one history row per real transition, each transition id applied once by the idempotent
receiver), no 500, no 200 for an unfinished event, no secret anywhere. Figures: docs/reliability.md#scale.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time

import pytest

from tests.reliability.chaos import ProgressKiller
from tests.reliability.harness import (
    LIKE_REHIVE,
    events_for_round,
    leaked_secrets,
    only_on,
    plan_invoices,
    publish,
    real_time,  # noqa: F401 - the fixture `sleeps` here: real time
    with_repeats,
)
from tests.reliability.scale import (
    CLIENTS,
    PayerReads,
    StoreProbe,
    TimedProvider,
    TimedSender,
    answered_200_unfinished,
    deploy,
    scale_size,
    task_figures,
    wait_drained,
)
from tests.test_reliability_crashes import (
    NOTHING_OUTSTANDING,
    Scenario,
    delivery_problems,
    invoice_problems,
    kill_points,
    process_problems,
    signal_problems,
)

pytestmark = pytest.mark.reliability

DUPLICATE_SHARE = 0.30
SENDING_LIMIT = 900  # seconds: a safety net; 5,000 deliveries take about a minute
#: What a killed process held lapses within this (a transition's announcing lease is 60 s), and the poller takes
#: it over; the rest of the drain is the backlog the workers have still to process.
RECOVERY_LIMIT = 300
#: Per round, the signals for the gunicorn workers and the task workers, in turn (one round's kills at each
#: `kills_per_round` point); the poller is SIGKILLed once, in the first round.
ROUND_SIGNALS = ((signal.SIGKILL, signal.SIGTERM), (signal.SIGTERM, signal.SIGKILL))


def send(deployment, provider, sender, plans, n, rng, stop) -> tuple[set[str], int, list[ProgressKiller]]:
    """Two rounds of deliveries with kills at random points of each; the second starts when half the first is
    acknowledged. Returns the events sent, the deliveries sent and the killers."""
    kills_per_round = max(1, n // 2500)
    unique = int(n * (1 - DUPLICATE_SHARE)) // 2
    sent_ids: set[str] = set()
    sent, previous, killers = 0, [], []
    for round_no in (0, 1):
        events = events_for_round(provider, plans, round_no, unique)
        deliveries, _ = with_repeats(events, previous, max(n // 2 - len(events), 0), rng)
        sender.add(deliveries, batch=round_no)

        def progress(batch=round_no) -> int:
            return sender.finished[batch]

        def at(count: int, total: int = len(deliveries)) -> list[int]:
            return kill_points(rng, total, count)

        signals = list(ROUND_SIGNALS[round_no])
        new = [ProgressKiller(deployment.gunicorn, progress, at(kills_per_round), signals, stop, rng),
               ProgressKiller(deployment.workers[round_no % 2], progress, at(kills_per_round), signals, stop, rng)]
        if round_no == 0:
            new.append(ProgressKiller(deployment.poller, progress, at(1), [signal.SIGKILL], stop, rng))
        for killer in new:
            killer.start()
        killers += new
        sender.wait_finished(round_no, len(deliveries) // 2)
        sent_ids.update(e["id"] for e in events)
        sent, previous = sent + len(deliveries), events
    return sent_ids, sent, killers


def check(deployment, provider, plans, sent_ids, at_end_of_sending, n) -> tuple[list[str], dict]:
    """The crash runs' checks on the final state (nothing lost, nothing twice, no 500, no secret), a 200 only for
    a finished event, and the kills planned all done; the problems found and the figures."""
    run = deployment.run
    report = run.tool("report")
    truth = provider.truth(plans)
    problems = invoice_problems(report, truth, provider, plans)
    found, signal_figures = signal_problems(report, run.tmp / "signals.log", run.tmp / "receiver.log")
    problems += found
    final = {d["event_id"]: d["status"] for d in report["deliveries"]}
    found, delivery_figures = delivery_problems(report, final, provider, sent_ids)  # unfinished at the end: lost
    delivery_figures.pop("2xx while unfinished")  # with a task backend a 202 is an acknowledgement: see below
    problems += found
    early = answered_200_unfinished(provider, at_end_of_sending)
    problems += [f"{len(early)} event(s) answered 200 while not finished, e.g. {early[:3]}"] if early else []
    found, process_figures = process_problems(run, [*deployment.workers, deployment.poller], Scenario())
    problems += found
    problems += [f"secret {leak}" for leak in leaked_secrets({
        "the app's log": [run.log()], "the processes' output": [run.outputs()], "responses": provider.responses,
        "the delivery log": [d["body"] for d in report["deliveries"]] +
                            [json.dumps(d["headers"]) for d in report["deliveries"]],
    })]
    gunicorn_figures = deployment.gunicorn.figures()
    if gunicorn_figures["gunicorn worker timeouts"]:
        problems.append(f"gunicorn killed {gunicorn_figures['gunicorn worker timeouts']} worker(s) stuck for 30 s")
    kills = {"gunicorn": sum(deployment.gunicorn.kills.values()),
             "task workers": sum(sum(w.kills.values()) for w in deployment.workers),
             "poller": sum(deployment.poller.kills.values())}
    planned = 2 * max(1, n // 2500)
    if kills != {"gunicorn": planned, "task workers": planned, "poller": 1}:
        problems.append(f"not every planned kill happened: {kills}")
    return problems, {
        "gunicorn kills": dict(deployment.gunicorn.kills),
        "task worker kills": [dict(w.kills) for w in deployment.workers],
        "task worker restarts": [w.restarts for w in deployment.workers],
        "poller kills": dict(deployment.poller.kills), **gunicorn_figures,
        **process_figures, **signal_figures, **delivery_figures, "200 while unfinished": len(early),
    }


def test_webhooks_at_scale(tmp_path, request):
    only_on("postgres")
    n = scale_size()
    seed = int(os.environ.get("INVOICEPAY_RELIABILITY_SEED") or random.randrange(10**6))
    rng = random.Random(seed)
    started = time.monotonic()
    deployment = deploy(tmp_path, request, rng)
    run = deployment.run
    made = run.tool("create", str(max(n // 10, 20)))
    plans = plan_invoices(made)
    provider = TimedProvider(deployment.sandbox_url, deployment.app_url)
    stop = threading.Event()
    request.addfinalizer(stop.set)
    probe, payers = StoreProbe(deployment.store, stop), PayerReads(deployment.app_url, [m["token"] for m in made], stop)
    probe.start()
    payers.start()
    sender = TimedSender(provider, LIKE_REHIVE, time.monotonic() + SENDING_LIMIT, CLIENTS)
    request.addfinalizer(sender.abort)
    sent_ids, sent, killers = send(deployment, provider, sender, plans, n, rng, stop)
    sender.close()
    sender.join()
    load = os.getloadavg()[0]  # the machine's, others' work included: the figures depend on it
    for killer in killers:  # every kill point has passed: each kill is done once its process is up
        killer.join(timeout=90)
    at_end_of_sending = {d["event_id"]: d["status"] for d in run.tool("report")["deliveries"]}
    drain = wait_drained(run, NOTHING_OUTSTANDING, RECOVERY_LIMIT)
    processed_after = time.monotonic() - sender.began
    stop.set()
    deployment.halt()

    problems, check_figures = check(deployment, provider, plans, sent_ids, at_end_of_sending, n)
    if len(sender.acks) != sent:
        problems.append(f"{sent - len(sender.acks)} deliveries never acknowledged (a final answer other than 200/202)")
    problems += [f"payer reads answered {dict(payers.statuses)}"] if set(payers.statuses) - {200, 599} else []
    figures = {
        "database": "postgres", "seed": seed, "deliveries": sent, "unique events": len(sent_ids),
        "duplicates": sent - len(sent_ids), "invoices": len(plans), "clients": CLIENTS,
        **sender.figures(), "load average at the end of the sending": round(load, 1),
        "processed after (s)": round(processed_after, 1), "drain after the sending (s)": round(drain, 1),
        "requests sent": provider.posts, "retries": provider.posts - sent, "statuses": dict(provider.statuses),
        "500 answered": provider.statuses[500], "no answer (connection)": provider.errors["connection"],
        "no answer (timeout)": provider.errors["timeout"], "given up": len(provider.gave_up),
        **check_figures, **task_figures(run), **probe.figures(), **payers.figures(),
        "cache keys (Redis)": deployment.cache.forget(),
        "problems": len(problems), "run (s)": round(time.monotonic() - started, 1),
    }
    publish(request, f"Reliability run at scale, postgres, {n} deliveries", figures, f"scale-{n}")
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems[:60])
