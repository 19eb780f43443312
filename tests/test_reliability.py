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
import random
from collections import Counter

import pytest
import requests

from tests.reliability import PLANTED
from tests.reliability.harness import (
    Provider,
    Run,
    events_for_round,
    free_port,
    history_problems,
    leaked_secrets,
    only_on,
    plan_invoices,
    prepare_database,
    publish,
    real_time,  # noqa: F401 - the fixture `sleeps` here: real time
    wait_for,
    with_repeats,
)

pytestmark = pytest.mark.reliability

INVOICES, DELIVERIES, DUPLICATE_SHARE = 200, 2000, 0.30
DB_NAME = "invoicepay_reliability"


@pytest.mark.parametrize("fault_rate", [0.0, 0.2], ids=["no-faults", "20pct-faults"])
@pytest.mark.parametrize("engine", ["sqlite", "postgres", "mariadb"])
def test_webhooks_under_load(engine, fault_rate, tmp_path, request):
    only_on(engine)
    name = prepare_database(engine, tmp_path, DB_NAME)
    run = Run(engine, name, tmp_path)
    request.addfinalizer(run.stop)
    run.manage("migrate", "--noinput")

    sandbox_url = run.start_sandbox()
    port = free_port()
    app = run.start_app(port)
    app_url = f"http://127.0.0.1:{port}"
    wait_for(app_url + "/", app)

    made = run.tool("create", str(INVOICES))
    plans = plan_invoices(made)
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
        deliveries, repeated_late = with_repeats(events, previous, duplicates_per_round, rng)
        late += repeated_late
        provider.deliver_all(deliveries)
        sent_ids.update(e["id"] for e in events)
        previous = events

    # The payer's side is done: one more delivery per invoice settles anything a fault deferred.
    stop_file.touch()
    poller.wait(timeout=300)
    poller_out = Run.output(poller)
    assert poller.returncode == 0, poller_out[-3000:]
    polling = json.loads(poller_out.strip().splitlines()[-1])
    stats = provider.stats()
    report = run.tool("report")
    signal_lines = (tmp_path / "signals.log").read_text().splitlines() if (tmp_path / "signals.log").exists() else []
    log_text = run.log()

    # Every invoice in its true final state, with one history row per real transition, in order.
    truth = provider.truth(plans)
    transitions = Counter()
    for rid, seen in report["invoices"].items():
        history = [(a, b) for a, b, *_ in seen["history"]]
        assert seen["status"] == truth[rid], (rid, plans[rid], seen)
        assert not history_problems(rid, history, provider.sequence[rid])
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
        # Each event stored once with one attempt: a repeat of a finished event is answered, not processed
        # again; two arrivals of one new event at once may both process it (harmless), one is stored.
        processed_more_than_once = [d["event_id"] for d in report["deliveries"] if d["attempts"] != 1]
        assert not processed_more_than_once, processed_more_than_once[:10]

    assert not leaked_secrets({
        "the app's log": [log_text],
        "responses": provider.responses + [text for _, text in otp_answers],
        "the delivery log": [d["body"] for d in report["deliveries"]] +
                            [json.dumps(d["headers"]) for d in report["deliveries"]],
    })

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
    publish(request, f"Reliability run, {engine}, {int(fault_rate * 100)}% faults", figures,
            f"{engine}-{int(fault_rate * 100)}")
