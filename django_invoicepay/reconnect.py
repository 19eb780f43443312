"""Surviving a dropped database connection (a restarted server, a killed backend, a failover).

After such an error Django keeps the dead connection until the request ends; code that must
still record something (a failed delivery, a claim to give back) resets it and runs again on
a fresh one. Never inside a transaction: there the caller's atomic block has to roll back first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

logger = logging.getLogger("django_invoicepay.db")
T = TypeVar("T")


def database_errors(using: str = DEFAULT_DB_ALIAS) -> tuple[type[Exception], ...]:
    """Django's database errors and the driver's own. A driver error raised while Django cleans up after
    another one is not wrapped: MySQLdb's "commands out of sync" from `cursor.close()` after a query that a
    signal (SIGTERM in a poller) interrupted reaches the caller as `MySQLdb.ProgrammingError`."""
    driver = connections[using].Database  # type: ignore[attr-defined]  # every backend has it; the stubs' base does not
    return (DatabaseError, driver.Error)


def reset_connection(using: str = DEFAULT_DB_ALIAS) -> bool:
    """Close the connection so the next query opens a new one. False (nothing done) inside a transaction."""
    connection = connections[using]
    if connection.in_atomic_block:
        return False
    try:
        connection.close()
    except database_errors(using):  # closing a dead connection can fail too; it is dropped all the same
        pass
    return True


def on_fresh_connection(action: Callable[[], T], using: str = DEFAULT_DB_ALIAS) -> T:
    """Run `action`; if the database fails, reconnect and run it once more (then let the error go, as
    Django's DatabaseError even when the driver raised its own)."""
    errors = database_errors(using)
    try:
        try:
            return action()
        except errors as exc:
            if not reset_connection(using):
                raise
            logger.warning("Database error (%s); retrying on a fresh connection", type(exc).__name__)
            return action()
    except DatabaseError:
        raise
    except errors as exc:
        raise DatabaseError(f"{type(exc).__module__}.{type(exc).__name__}: {exc}") from exc
