#!/usr/bin/env python3
"""SQL queries of `apply_invoice` (the one path that writes an invoice's state) by payload size.

For every cell of a grid of quotes x transactions (default {1, 2, 5, 10, 20} x {1, 5, 10, 25, 50}) an
invoice is created through the app (`Invoice.objects.create_for(None, ...)`, at the sandbox and
mirrored), then given its payload at the sandbox: unconfirmed bitcoin deposits
(`sandbox.crypto_deposit`, one transaction each) and the other quotes made by the sandbox's own
`make_quote`. The payload is read back the way a sync reads it (`services.invoices.fetch`: the real
client and the typed parser, `rehive.payloads`) and applied, with `CaptureQueriesContext` around
the call (on-commit work, the signals' outbox, included):

  (a) first   the first apply: the status changes, every quote and transaction is new;
  (b) update  every other deposit gained a confirmation (`sandbox.confirm`) and every other quote was
              refreshed (new expiry and `updated`), the first of each included; nothing new;
  (c) same    the same payload and transactions again (nothing to write);
  (c') same, no transactions: the same invoice payload alone (a re-delivered webhook).

Django is configured as benchmarks/intake.py does (its `role_prepare`: a freshly migrated SQLite temp
file in WAL, sandbox on, in a SQLite file). The counts must not depend on the sizes (bulk
operations); each table says whether they do and, when not, which statements grow.

    .venv/bin/python benchmarks/apply_queries.py
    .venv/bin/python benchmarks/apply_queries.py --quotes 1,20 --transactions 1,50,100 --sql
    .venv/bin/python benchmarks/apply_queries.py --json out.json

tests/test_query_budget.py asserts the same with `apply_cases` from here (1x1 against 20x50).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from django_invoicepay.models import Invoice

QUOTES = (1, 2, 5, 10, 20)
TRANSACTIONS = (1, 5, 10, 25, 50)
CASES = {
    "first": "(a) first apply: status changes, every quote and transaction new",
    "update": "(b) update: every other quote and transaction changed, nothing new, same status",
    "same": "(c) the same payload and transactions again",
    "same_no_tx": "(c') the same invoice payload without transactions (a re-delivered webhook)",
}
EXTRA_PROCESSORS = ("native", "bank_transfer")  # for the quotes beside the payer's bitcoin one
QUOTE_REFRESH_MS = 15 * 60 * 1000  # a refreshed quote is valid 15 more minutes
_TABLE = re.compile(r'(?:FROM|INTO|UPDATE)\s+[`"]?(\w+)', re.IGNORECASE)


# -- the workload (Django configured; also used by tests/test_query_budget.py) ----------------------


def prepare_invoice(quotes: int, transactions: int) -> Invoice:
    """An invoice made through the app; at the sandbox, `transactions` unconfirmed bitcoin deposits on
    its bitcoin quote (the first deposit makes that quote) and `quotes - 1` quotes more."""
    from django_invoicepay import sandbox
    from django_invoicepay.models import Invoice
    from django_invoicepay.sandbox.processors import make_quote

    invoice = Invoice.objects.create_for(None, amount=50_000, description=f"{quotes} quotes, {transactions} txs")
    for _ in range(transactions):
        sandbox.crypto_deposit(invoice.remote_id, amount=1)
    state = sandbox.get_state()
    with state.transaction() as data:
        remote = data["invoices"][invoice.remote_id]
        now = state.now_ms()
        for i in range(quotes - 1):
            quote = make_quote(state.next_quote_id(), remote, EXTRA_PROCESSORS[i % 2], now)
            remote["payment_processor_quotes"].append(quote)
        remote["updated"] = now
    return invoice


def change_some(remote_id: str) -> None:
    """At the sandbox: every other deposit gains a confirmation (still pending), every other quote
    is refreshed; the first of each included, so every size has at least one of each."""
    from django_invoicepay import sandbox

    state = sandbox.get_state()
    with state.transaction() as data:
        for tx in list(data["transactions"][remote_id])[::2]:
            sandbox.confirm(remote_id, tx["rehive_code"], confirmations=1, state=state)
        remote = data["invoices"][remote_id]
        now = state.now_ms()
        for quote in list(remote["payment_processor_quotes"])[::2]:
            quote["expiration_date"] = now + QUOTE_REFRESH_MS
            quote["updated"] = now
        remote["updated"] = now


def captured_sql(call: Callable[[], object]) -> list[str]:
    """The SQL `call` issues on the default connection (BEGIN, COMMIT and savepoints included)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        call()
    return [q["sql"] for q in ctx.captured_queries]


def apply_cases(quotes: int, transactions: int) -> dict[str, list[str]]:
    """The SQL of `apply_invoice` in each case of CASES, on one new invoice of this size."""
    from django_invoicepay.services.invoices import apply_invoice, fetch

    invoice = prepare_invoice(quotes, transactions)
    out = {}
    data, txs = fetch(invoice, transactions=True)
    assert len(data.quotes) == quotes and txs is not None and len(txs) == transactions
    out["first"] = captured_sql(lambda: apply_invoice(data, source="poll", transactions=txs))
    change_some(invoice.remote_id)
    data, txs = fetch(invoice, transactions=True)
    out["update"] = captured_sql(lambda: apply_invoice(data, source="poll", transactions=txs))
    out["same"] = captured_sql(lambda: apply_invoice(data, source="poll", transactions=txs))
    out["same_no_tx"] = captured_sql(lambda: apply_invoice(data, source="webhook"))
    return out


# -- figures ------------------------------------------------------------------------------------------


def kind(sql: str) -> str:
    """SELECT/INSERT/UPDATE/DELETE/BEGIN/... as the intake probe counts them (the peer's classifier)."""
    import intake

    return str(intake.peer._classify(sql))


def label(sql: str) -> str:
    """The statement's kind and table, e.g. 'INSERT invoicepay_quote'."""
    found = _TABLE.search(sql)
    return f"{kind(sql)} {found.group(1)}" if found else kind(sql)


def counts(sqls: Sequence[str]) -> tuple[int, int]:
    """(total, data): data are SELECT/INSERT/UPDATE/DELETE."""
    return len(sqls), sum(kind(s) in ("SELECT", "INSERT", "UPDATE", "DELETE") for s in sqls)


def growth(grid: dict[tuple[int, int], dict[str, list[str]]], case: str) -> str:
    """'constant', or which statements the largest cell issues more (or fewer) of than the smallest."""
    small, large = grid[min(grid)][case], grid[max(grid)][case]
    more = Counter(map(label, large)) - Counter(map(label, small))
    fewer = Counter(map(label, small)) - Counter(map(label, large))
    if not more and not fewer and all(counts(v[case]) == counts(small) for v in grid.values()):
        return "constant in quotes and transactions"
    return f"NOT constant: {dict(more)} more, {dict(fewer)} fewer at {max(grid)} than at {min(grid)}"


def print_case(grid: dict[tuple[int, int], dict[str, list[str]]], case: str,
               quotes: Sequence[int], transactions: Sequence[int]) -> None:
    print(f"\n{CASES[case]}: queries total (data)\n")
    print("| quotes \\ transactions | " + " | ".join(str(t) for t in transactions) + " |")
    print("|---:|" + "---:|" * len(transactions))
    for q in quotes:
        cells = ["{} ({})".format(*counts(grid[q, t][case])) for t in transactions]
        print(f"| {q} | " + " | ".join(cells) + " |")
    print(f"\n{growth(grid, case)}; at {min(grid)}: {dict(Counter(map(label, grid[min(grid)][case])))}")


def run(quotes: Sequence[int], transactions: Sequence[int], show_sql: bool) -> dict[str, Any]:
    grid = {(q, t): apply_cases(q, t) for q in quotes for t in transactions}
    for case in CASES:
        print_case(grid, case, quotes, transactions)
        if show_sql:
            for cell in (min(grid), max(grid)):
                print(f"\n  SQL at {cell}:")
                for sql in grid[cell][case]:
                    print("   ", sql[:200])
    return {case: {f"{q}x{t}": dict(zip(("total", "data"), counts(grid[q, t][case]), strict=True))
                   for q, t in grid} | {"verdict": growth(grid, case)} for case in CASES}


def sizes(text: str) -> list[int]:
    return sorted({int(part) for part in text.split(",") if part.strip()})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quotes", type=sizes, default=list(QUOTES), help="comma-separated (default 1,2,5,10,20)")
    ap.add_argument("--transactions", type=sizes, default=list(TRANSACTIONS),
                    help="comma-separated (default 1,5,10,25,50)")
    ap.add_argument("--sql", action="store_true", help="also print the statements of the smallest and largest cell")
    ap.add_argument("--json", help="also write the figures here")
    ap.add_argument("--keep-tmp", action="store_true")
    a = ap.parse_args()
    if min(a.quotes) < 1 or min(a.transactions) < 1:
        raise SystemExit("sizes start at 1 (an invoice with a deposit has its quote)")

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import intake  # its Django configuration and machine facts, reused (it loads the peer harness)

    with intake.scratch("invoicepay-apply-bench-", a.keep_tmp) as tmp:
        intake.role_prepare(str(tmp / "bench.sqlite3"), str(tmp / "sandbox.sqlite3"))
        result = {"machine": intake.machine_facts(), "cases": run(a.quotes, a.transactions, a.sql)}
        print("\nmachine:", json.dumps(result["machine"]))
        if a.json:
            Path(a.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
