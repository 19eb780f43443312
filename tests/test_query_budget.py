"""Applying a provider payload costs the same number of queries for 1 quote and 1 transaction as for
20 quotes and 50 transactions: quotes and transactions are written in bulk, never row by row.

The payloads come from the sandbox the way a sync reads them (benchmarks/apply_queries.py, which
prints the whole grid); the absolute counts are not asserted here, only that size does not change them.
"""

from __future__ import annotations

import re

import pytest

from benchmarks.apply_queries import apply_cases

# A real commit after each apply (not the test's wrapping transaction), so the on-commit work that
# follows a status change, the signals' outbox, is counted as it runs in production.
pytestmark = pytest.mark.django_db(transaction=True)

WRITE = re.compile(r'^(INSERT INTO|UPDATE|DELETE FROM)\s+[`"]invoicepay_(quote|invoicetransaction)[`"]', re.IGNORECASE)


def written(statements: list[str]) -> set[str]:
    """Which of the mirror's quote and transaction tables the statements write (insert, upsert or update)."""
    found = (WRITE.match(sql.lstrip()) for sql in statements)
    return {m.group(2) for m in found if m}


@pytest.mark.parametrize(
    ("case", "tables"),
    [
        ("first", {"quote", "invoicetransaction"}),
        ("update", {"quote", "invoicetransaction"}),
        ("same", set()),
        ("same_no_tx", set()),
    ],
)
def test_an_apply_costs_as_many_queries_for_20_quotes_and_50_transactions_as_for_1_and_1(
    case: str, tables: set[str]
) -> None:
    small, large = apply_cases(1, 1)[case], apply_cases(20, 50)[case]
    assert written(small) == written(large) == tables  # the case did what it says
    assert len(large) == len(small), "\n".join(["1 quote, 1 transaction:", *small, "20 quotes, 50:", *large])
