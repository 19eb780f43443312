"""An empty sandbox for one test, with the sandbox switched on whatever the shop's settings say."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.test import override_settings

from .. import sandbox
from ..conf import invoicepay_settings
from ..sandbox import SandboxState

#: The Rehive webhook secret a test uses when the shop's settings name none (the receiver refuses
#: every delivery without one).
TEST_WEBHOOK_SECRET = "invoicepay-test-webhook-secret"  # noqa: S105 - a value for tests only


class SandboxRequired(RuntimeError):
    """The kit was used where the sandbox is off: it would have talked to the real provider."""


def sandbox_settings() -> dict[str, Any]:
    """The shop's INVOICEPAY with SANDBOX on and a webhook secret: no test can reach a real provider."""
    user = getattr(settings, "INVOICEPAY", None)
    user = dict(user) if isinstance(user, dict) else {}
    rehive = dict(user.get("REHIVE") or {})
    rehive["WEBHOOK_SECRET"] = rehive.get("WEBHOOK_SECRET") or TEST_WEBHOOK_SECRET
    return {**user, "SANDBOX": True, "REHIVE": rehive}


def require_sandbox(what: str) -> None:
    """Refuse to act against a real provider (a test without the kit's sandbox, or setUpTestData)."""
    if not invoicepay_settings.sandbox_on:
        raise SandboxRequired(f"{what} only works against the sandbox, and INVOICEPAY['SANDBOX'] is off here: "
                              "use the invoicepay_sandbox fixture or InvoicePayTestMixin (in setUp, not "
                              "setUpTestData).")


@contextlib.contextmanager
def isolated_sandbox(path: str | os.PathLike | None = None) -> Iterator[SandboxState]:
    """Until the block ends: the sandbox is on, and empty (in memory, or in the SQLite file `path` when
    the test starts other processes that must see it). Yields its state (`.requests`, `.add_fault`)."""
    with override_settings(INVOICEPAY=sandbox_settings()), sandbox.isolated(path) as state:
        yield state
