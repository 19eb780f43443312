"""The reliability suite, crashes: webhooks, signals and polling when processes die and connections drop.

Real processes as in tests/test_reliability.py (the app under `runserver --noreload`, the sandbox provider,
a poller), 100 invoices driven through the sandbox in two rounds, their ~400 webhook events sent with 30%
more as duplicates, shuffled, by 8 clients that redeliver like Rehive (no answer, a timeout or any 5xx:
the same event id again, backing off from 0.2 s doubling to 3 s, for up to 90 s). Two runs per database:

- "kills": the app server SIGKILLed 15 times at random moments of the delivery and restarted at once on
  the same port; the poller SIGKILLed three times and SIGTERMed three times, restarted at once; the shop's
  signal receiver slow (0.3 s per call). SQLite, PostgreSQL, MariaDB.
- "drops": every 0.05-0.4 s the database server drops every connection of the app and the poller
  (PostgreSQL, MariaDB; SQLite has no connections to drop).

Then the poller goes on until nothing is left to recover (at most 80 s) and stops, and a shop's cron runs
`invoicepay_sync` and `invoicepay_sync --webhooks` once. Asserted: every invoice in the provider's final
status and its order in the state that status maps to; one history row per real transition, a chain in
the provider's order; every transition announced, and the shop's idempotent receiver
(tests/reliability/apps.py) applied each exactly once (none lost, none twice; repeats deduplicated by
transition id); no 500; every event sent in the delivery log and finished; no event answered 2xx while
unfinished; no exception in the log but a dropped connection's; no planted secret anywhere. The figures
are printed and kept in tests/.reliability/.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from django_invoicepay.conf import DEFAULT_ORDER_STATES
from tests.reliability.chaos import ConnectionKiller, ProgressKiller, Supervised
from tests.reliability.harness import (
    LIKE_REHIVE,
    Provider,
    Run,
    Sender,
    events_for_round,
    free_port,
    history_problems,
    leaked_secrets,
    listening,
    only_on,
    plan_invoices,
    prepare_database,
    publish,
    real_time,  # noqa: F401 - the fixture `sleeps` here: real time
    with_repeats,
)

pytestmark = pytest.mark.reliability

INVOICES, DUPLICATE_SHARE = 100, 0.30
DB_NAME = "invoicepay_crashes"
SENDING_LIMIT = 240  # seconds: a safety net; the sending takes far less
#: After the sending, the poller goes on until nothing is left to recover, at most this long (s): what a
#: killed process held lapses by then (a transition's announcing lease is 60 s) and the sweep takes it over.
RECOVERY_LIMIT = 80
NOTHING_OUTSTANDING = {"unfinished": 0, "unapplied": 0}
FINISHED = {"processed", "ignored"}
TRACEBACK_END = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception))\b", re.MULTILINE)
#: What a dropped connection raises: expected in the log when connections are dropped, nowhere else.
DROPPED = re.compile(r"(OperationalError|InterfaceError)$")


@dataclass(frozen=True)
class Scenario:
    app_kills: tuple[int, int] = (0, 0)  # per round
    poller_kills: tuple[tuple[signal.Signals, ...], tuple[signal.Signals, ...]] = ((), ())  # per round
    slow_receiver: float = 0.0  # seconds per call
    drop_connections: bool = False


SCENARIOS = {
    "kills": Scenario(app_kills=(8, 7), slow_receiver=0.3,
                      poller_kills=((signal.SIGKILL, signal.SIGTERM, signal.SIGKILL),
                                    (signal.SIGTERM, signal.SIGKILL, signal.SIGTERM))),
    "drops": Scenario(drop_connections=True),
}


def kill_points(rng: random.Random, deliveries: int, count: int) -> list[int]:
    """`count` random moments of a round, as numbers of its events sent (between 5% and 60% of them: a kill
    late in the run would only make the run longer, waiting for what the killed process held to lapse)."""
    return sorted(rng.sample(range(deliveries * 5 // 100, deliveries * 60 // 100), count))


def lines_of(path: Path) -> list[str]:
    """The lines a receiver appended (none when it never ran)."""
    return path.read_text().splitlines() if path.exists() else []


def expected_order_state(history: list[tuple[str, str]]) -> str:
    """The order follows the invoice: the state mapped from the last status that maps to one, else "new"."""
    states = [DEFAULT_ORDER_STATES.get(to) for _, to in history]
    return next((state for state in reversed(states) if state), "new")


def invoice_problems(report: dict, truth: dict[str, str], provider: Provider, plans: dict[str, str]) -> list[str]:
    """Every invoice in its true final state, its order following it, its history one row per real transition."""
    problems = []
    for rid, seen in report["invoices"].items():
        history = [(a, b) for a, b, *_ in seen["history"]]
        if seen["status"] != truth[rid]:
            problems.append(f"{rid} ({plans[rid]}): {seen['status']}, the provider says {truth[rid]}")
        if seen["order"] != expected_order_state(history):
            problems.append(f"{rid}: its order is {seen['order']!r}, not {expected_order_state(history)!r}")
        problems += history_problems(rid, history, provider.sequence[rid])
    return problems


def signal_problems(report: dict, signals_log: Path, receiver_log: Path) -> tuple[list[str], dict]:
    """Every transition announced; the idempotent receiver applied each once: none lost, none twice."""
    problems = []
    transitions = {rid: seen["history"][1:] for rid, seen in report["invoices"].items()}  # [0]: the creation
    announced = Counter(tuple(line.split()) for line in lines_of(signals_log))
    unannounced = Counter((rid, a or "-", b) for rid, rows in transitions.items() for a, b, *_ in rows) - announced
    if unannounced:
        problems.append(f"{sum(unannounced.values())} transition(s) never announced (no invoice_status_changed), "
                        f"e.g. {sorted(unannounced)[:3]}")
    recorded = {row[3]: rid for rid, rows in transitions.items() for row in rows}  # transition id -> invoice
    applied = {transition_id for transition_id, *_ in report["applied"]}
    calls = [line.split() for line in lines_of(receiver_log)]  # called <id> ..., applied <id>, redundant <id>
    reached = {words[1] for words in calls if words[0] == "called"}
    if None in recorded:
        problems.append("the history has no transition ids (InvoiceStatusChange.transition_id)")
    if "None" in reached:
        problems.append(f"invoice_status_changed came {sum(1 for w in calls if w[:2] == ['called', 'None'])} "
                        "time(s) without transition_id (the receiver raised)")
    lost = set(recorded) - applied - {None}
    if lost - reached:
        problems.append(f"{len(lost - reached)} transition(s) never reached the idempotent receiver (lost signals), "
                        f"e.g. on {sorted(recorded[t] for t in lost - reached)[:3]}")
    if lost & reached:
        problems.append(f"{len(lost & reached)} transition(s) reached the receiver, which did not finish (it failed "
                        f"or its process died), and never came again (lost signals), e.g. on "
                        f"{sorted(recorded[t] for t in lost & reached)[:3]}")
    if applied - set(recorded):
        problems.append(f"{len(applied - set(recorded))} transition(s) applied that the history does not have")
    doubled = sorted(rid for rid, steps in report["steps"].items() if steps > len(transitions.get(rid, [])))
    if doubled:
        problems.append(f"{len(doubled)} invoice(s) with a transition applied twice, e.g. {doubled[:3]}")
    kinds = Counter(words[0] for words in calls)
    return problems, {
        "transitions": sum(map(len, transitions.values())), "signals": sum(announced.values()),
        "never announced": sum(unannounced.values()), "receiver calls": kinds["called"], "applied": len(applied),
        "redundant (deduplicated)": kinds["redundant"], "lost signals": len(lost), "applied twice": len(doubled),
    }


def delivery_problems(report: dict, at_end_of_sending: dict[str, str], provider: Provider,
                      sent_ids: set[str]) -> tuple[list[str], dict]:
    """No 500; every event sent in the delivery log and finished; none answered 2xx while unfinished."""
    log = {d["event_id"]: d for d in report["deliveries"]}
    unlogged = sent_ids - set(log)
    unfinished = {e for e in sent_ids & set(log) if log[e]["status"] not in FINISHED}
    # a 2xx ends the redelivery: the event must have been finished when the sending ended
    early = {e for e, (status, _) in provider.last_answer.items()
             if 200 <= status < 300 and at_end_of_sending.get(e) not in FINISHED}
    other_5xx = {s: n for s, n in provider.statuses.items() if 500 <= s < 599 and s != 503}  # 599: no answer
    checks = [(len(unlogged), "event(s) sent are not in the delivery log"),
              (len(unfinished), "event(s) not finished in the delivery log (lost)"),
              (len(early), "event(s) answered 2xx while not finished (the sender stopped redelivering)"),
              (len(provider.gave_up), "event(s) the sender gave up on after 90 s of redelivery"),
              (sum(other_5xx.values()), f"answer(s) 5xx other than 503: {other_5xx}")]
    return [f"{count} {what}" for count, what in checks if count], {
        "lost events": len(unfinished | unlogged),
        "lost events by status": dict(Counter(log[e]["status"] for e in unfinished)),
        "2xx while unfinished": len(early),
    }


def process_problems(run: Run, supervised: list[Supervised], plan: Scenario) -> tuple[list[str], dict]:
    """No exit nobody caused; no exception in the log or failed sweep, but a dropped connection's if dropped."""
    problems = [f"{s.name} exited by itself: {tail}" for s in supervised for tail in s.unexpected]
    sweeps: Counter = Counter()  # every poller's failed sweeps, killed ones' included
    for process in run.processes:
        if process.out_path.name.startswith("poller-"):
            sweeps.update(json.loads(line)["failed sweep"] for line in Run.output(process).splitlines()
                          if line.startswith('{"failed sweep"'))
    exceptions = Counter(match.group(1) for match in TRACEBACK_END.finditer(run.log()))
    for what, found in (("failed sweeps", sweeps), ("exceptions in the app's log", exceptions)):
        unexpected = {e: n for e, n in found.items() if not (plan.drop_connections and DROPPED.search(e))}
        if unexpected:
            problems.append(f"{what}: {unexpected}")
    return problems, {"failed sweeps": dict(sweeps), "exceptions logged": dict(exceptions)}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize("engine", ["sqlite", "postgres", "mariadb"])
def test_webhooks_survive_crashes(engine, scenario, tmp_path, request):
    only_on(engine)
    plan = SCENARIOS[scenario]
    if plan.drop_connections and engine == "sqlite":
        pytest.skip("sqlite: no connections to drop (the database is a file the processes open themselves)")
    started = time.monotonic()
    seed = int(os.environ.get("INVOICEPAY_RELIABILITY_SEED") or random.randrange(10**6))
    rng = random.Random(seed)
    name = prepare_database(engine, tmp_path, DB_NAME)
    run = Run(engine, name, tmp_path, INVOICEPAY_RELIABILITY_RECEIVER=str(tmp_path / "receiver.log"),
              INVOICEPAY_RELIABILITY_SLOW_RECEIVER=str(plan.slow_receiver))
    request.addfinalizer(run.stop)  # finalizers run last first: everything below stops before this
    run.manage("migrate", "--noinput")

    sandbox_url = run.start_sandbox()
    port = free_port()
    app = Supervised("app", lambda n: run.start_app(port, f"app-{n}", *(["--skip-checks"] if n else [])),
                     lambda _: listening(port))  # restarted without the system checks, which the first start ran
    request.addfinalizer(app.halt)
    assert app.ready.wait(60), f"the app did not come up: {app.unexpected}"
    made = run.tool("create", str(INVOICES))
    plans = plan_invoices(made)
    provider = Provider(sandbox_url, f"http://127.0.0.1:{port}")
    stop_file = tmp_path / "stop-polling"
    poller = Supervised(
        "poller", lambda n: run.start(f"poller-{n}", "tests.reliability.tool", "poll", str(stop_file), module=True),
        lambda process: "polling" in Run.output(process))
    request.addfinalizer(poller.halt)

    # The sending: round 2 starts when 90% of round 1 is over (its retries go on meanwhile, as a provider's do).
    sender = Sender(provider, LIKE_REHIVE, deadline=time.monotonic() + SENDING_LIMIT)
    stop = threading.Event()
    request.addfinalizer(stop.set)
    request.addfinalizer(sender.abort)
    drops = [ConnectionKiller(engine, name, stop, rng)] if plan.drop_connections else []
    chaos: list[threading.Thread] = list(drops)
    for thread in drops:
        thread.start()
    sent_ids: set[str] = set()
    sent = late = 0
    previous: list[dict] = []
    began = time.monotonic()
    for round_no in (0, 1):
        events = events_for_round(provider, plans, round_no, 0)
        repeats = round(len(events) * DUPLICATE_SHARE / (1 - DUPLICATE_SHARE))
        deliveries, repeated_late = with_repeats(events, previous, repeats, rng)
        sender.add(deliveries, batch=round_no)

        def progress(batch=round_no) -> int:
            return sender.finished[batch]

        killers = [
            ProgressKiller(app, progress, kill_points(rng, len(deliveries), plan.app_kills[round_no]),
                           [signal.SIGKILL], stop, rng),
            ProgressKiller(poller, progress, kill_points(rng, len(deliveries), len(plan.poller_kills[round_no])),
                           list(plan.poller_kills[round_no]), stop, rng),
        ]
        for thread in killers:
            thread.start()
        chaos += killers
        sender.wait_finished(round_no, len(deliveries) * 9 // 10)
        sent_ids.update(e["id"] for e in events)
        sent, late, previous = sent + len(deliveries), late + repeated_late, events
    sender.close()
    sender.join()
    stop.set()
    for thread in chaos:
        thread.join(timeout=30)
    sending = time.monotonic() - began

    at_end_of_sending = {d["event_id"]: d["status"] for d in run.tool("report")["deliveries"]}
    recovering = time.monotonic()  # the poller goes on until nothing is left to recover (bounded), then stops
    while time.monotonic() < recovering + RECOVERY_LIMIT and run.tool("outstanding") != NOTHING_OUTSTANDING:
        time.sleep(2)
    recovering = time.monotonic() - recovering
    poller.halt()
    app.halt()
    stop_file.touch()
    try:
        poller.process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        poller.process.kill()
    # What a shop's cron does every minute or so: recovery may come from it too.
    cron = [run.manage("invoicepay_sync", check=False), run.manage("invoicepay_sync", "--webhooks", check=False)]
    report = run.tool("report")
    truth = provider.truth(plans)

    problems = invoice_problems(report, truth, provider, plans)
    found, signal_figures = signal_problems(report, tmp_path / "signals.log", tmp_path / "receiver.log")
    problems += found
    found, delivery_figures = delivery_problems(report, at_end_of_sending, provider, sent_ids)
    problems += found
    problems += [f"`{' '.join(c.args[2:])}` exited {c.returncode}: {(c.stdout + c.stderr)[-500:]}"
                 for c in cron if c.returncode]
    found, process_figures = process_problems(run, [app, poller], plan)
    problems += found
    problems += [f"secret {leak}" for leak in leaked_secrets({
        "the app's log": [run.log()],
        "the processes' output": [run.outputs()],
        "responses": provider.responses,
        "the delivery log": [d["body"] for d in report["deliveries"]] +
                            [json.dumps(d["headers"]) for d in report["deliveries"]],
    })]
    # The scenario really happened (a run without crashes would prove nothing).
    dropped = sum(killer.dropped for killer in drops)
    if sum(app.kills.values()) < sum(plan.app_kills) * 2 // 3 or \
            sum(poller.kills.values()) < sum(map(len, plan.poller_kills)) * 2 // 3:
        problems.append(f"too few kills: app {dict(app.kills)}, poller {dict(poller.kills)}")
    if plan.drop_connections and dropped < 20:
        problems.append(f"too few connections dropped: {dropped} ({[k.failures for k in drops]})")

    figures = {
        "database": engine, "scenario": scenario, "seed": seed, "invoices": len(plans),
        "unique events": len(sent_ids), "duplicates": sent - len(sent_ids), "late": late,
        "requests sent": provider.posts, "retries": provider.posts - sent,
        "503 answered": provider.statuses[503], "500 answered": provider.statuses[500],
        "no answer (connection)": provider.errors["connection"], "no answer (timeout)": provider.errors["timeout"],
        "given up": len(provider.gave_up),
        "app kills": app.kills["SIGKILL"], "app restarts": app.restarts,
        "poller SIGKILL": poller.kills["SIGKILL"], "poller SIGTERM": poller.kills["SIGTERM"],
        "connections dropped": dropped, "drop rounds": sum(killer.rounds for killer in drops),
        **process_figures, **signal_figures, **delivery_figures,
        "wrong status": sum(1 for rid, seen in report["invoices"].items() if seen["status"] != truth[rid]),
        "problems": len(problems), "sending (s)": round(sending, 1), "recovery (s)": round(recovering, 1),
        "run (s)": round(time.monotonic() - started, 1),
    }
    publish(request, f"Reliability run with crashes, {engine}, {scenario}", figures, f"crashes-{engine}-{scenario}")
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems[:60])
