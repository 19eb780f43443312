"""The offline sandbox: a faithful simulator of the providers' HTTP APIs plus payer actions.

Turn it on with `INVOICEPAY = {"SANDBOX": True}`: the provider clients then talk to it
in-process (no network, no credentials). `manage.py invoicepay_sandbox` serves the same
simulator over HTTP. Payer actions (`pay`, `overpay`, `underpay`, `crypto_deposit`,
`confirm`, `expire`, `choose_processor`, and OnePipe's `expire_hold`) play the customer's side.

Its data is kept in a store that every process of the shop shares (a SQLite file; see
`state.configured_location`), or in memory for one process (tests: `isolated()`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .onepipe import (
    EXPIRED_TOKEN_ACCOUNT,
    PENDING_VALIDATION_ACCOUNT,
    PENDING_VALIDATION_ANSWER,
    SANDBOX_ONEPIPE_OTP,
    OnePipeSandbox,
    expire_hold,
)
from .payer import (
    SandboxActionError,
    choose_processor,
    confirm,
    crypto_deposit,
    expire,
    overpay,
    pay,
    underpay,
)
from .processors import CONFIRMATIONS_REQUIRED, PROCESSORS
from .rehive import SANDBOX_OTP, RehiveSandbox
from .state import MEMORY, SandboxState, configured_location, get_state, isolated

if TYPE_CHECKING:
    from ..clients import OnePipeConfig, RehiveConfig
    from .state import Fault
    from .transport import SandboxAdapter

__all__ = [
    "CONFIRMATIONS_REQUIRED",
    "MEMORY",
    "EXPIRED_TOKEN_ACCOUNT",
    "PENDING_VALIDATION_ACCOUNT",
    "PENDING_VALIDATION_ANSWER",
    "SANDBOX_ONEPIPE_OTP",
    "OnePipeSandbox",
    "onepipe_notification",
    "PROCESSORS",
    "SANDBOX_OTP",
    "RehiveSandbox",
    "SandboxActionError",
    "SandboxState",
    "add_fault",
    "choose_processor",
    "configured_location",
    "confirm",
    "crypto_deposit",
    "expire",
    "expire_hold",
    "get_state",
    "isolated",
    "overpay",
    "pay",
    "reset",
    "underpay",
]


def reset() -> None:
    """Forget every simulated invoice and hold (for every process sharing the sandbox's file), and this
    process's faults and logged requests."""
    get_state().reset()


def add_fault(kind: str, *, path: str = ".*", method: str | None = None, times: int | None = 1,
              rate: float = 1.0, delay: float = 1.0) -> Fault:
    """Make the next `times` matching calls (None: all) fail as `kind`, each with probability `rate`
    (see `state.FAULT_KINDS`)."""
    return get_state().add_fault(kind, path=path, method=method, times=times, rate=rate, delay=delay)


def onepipe_adapter(config: OnePipeConfig) -> SandboxAdapter:
    from .onepipe import OnePipeSandbox
    from .transport import SandboxAdapter

    # No fixed state: each request goes to the sandbox the settings (or a test's `isolated()`) name then.
    simulator = OnePipeSandbox(api_key=config.api_key, client_secret=config.client_secret,
                               encoding=config.encoding)
    return SandboxAdapter(simulator, {config.base_url: "onepipe"})


def onepipe_notification(transaction_ref: str) -> dict:
    """The transaction notification OnePipe would send for this transaction (to POST to the app)."""
    from .onepipe import notification

    return notification(transaction_ref)


def rehive_adapter(config: RehiveConfig) -> SandboxAdapter:
    from .transport import SandboxAdapter

    # No fixed state: each request goes to the sandbox the settings (or a test's `isolated()`) name then.
    simulator = RehiveSandbox(api_key=config.api_key, business_id=config.business_id)
    return SandboxAdapter(
        simulator, {config.business_url: "business", config.payment_requests_url: "requests"}
    )
