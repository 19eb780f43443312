"""Play the customer in a test: pay, overpay, underpay, send bitcoin, let an invoice or hold expire.

Each action changes the invoice at the (sandbox) provider and then, as the provider would, sends
the shop its webhook, so the mirror, the order and the signals move through the same code as in
production. `notify=False` leaves the shop uninformed, to test polling or `invoice.sync()`.
Amounts are integers in minor units of the invoice's (or chosen quote's) currency.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import sandbox
from .sandbox import require_sandbox
from .webhooks import OnePipeNotificationSender, RehiveWebhookSender, remote_id

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse as HttpResponse

    from ..models import Hold, Invoice


def _accepted(response: HttpResponse, what: str) -> None:
    """Fail the test unless the shop answered the provider's message with 200, as a provider expects."""
    if response.status_code != 200:
        raise AssertionError(f"The shop answered the {what} with {response.status_code}: "
                             f"{response.content.decode(errors='replace')}")


class Payer:
    def __init__(self, webhook: RehiveWebhookSender | None = None,
                 notification: OnePipeNotificationSender | None = None) -> None:
        self.webhook = webhook or RehiveWebhookSender()
        self.notification = notification or OnePipeNotificationSender(self.webhook.client)

    def _act(self, action: Callable[..., Any], invoice: Invoice, *args: Any, notify: bool, **kwargs: Any) -> Invoice:
        """Do `action` at the sandbox provider; then, as the provider would, tell the shop."""
        require_sandbox("The payer")
        action(remote_id(invoice), *args, **kwargs)
        if notify:
            _accepted(self.webhook.send(invoice), "webhook")
        invoice.refresh_from_db()
        return invoice

    def choose_processor(self, invoice: Invoice, processor: str, *, notify: bool = True) -> Invoice:
        """Pick how to pay ("native", "native_bitcoin", "bank_transfer", ...: `sandbox.PROCESSORS`)."""
        return self._act(sandbox.choose_processor, invoice, processor, notify=notify)

    def pay(self, invoice: Invoice, amount: int | None = None, *, notify: bool = True) -> Invoice:
        """Pay `amount` (default: what is owed) on the chosen quote (default: the wallet); settles at once."""
        return self._act(sandbox.pay, invoice, amount, notify=notify)

    def overpay(self, invoice: Invoice, by: int = 100, *, notify: bool = True) -> Invoice:
        return self._act(sandbox.overpay, invoice, by, notify=notify)

    def underpay(self, invoice: Invoice, by: int = 100, *, notify: bool = True) -> Invoice:
        """Pay all but `by`: the invoice stays open, underpaid."""
        return self._act(sandbox.underpay, invoice, by, notify=notify)

    def crypto_deposit(self, invoice: Invoice, amount: int | None = None, *, confirmations: int = 0,
                       notify: bool = True) -> Invoice:
        """Send bitcoin, seen with `confirmations`; it completes at `sandbox.CONFIRMATIONS_REQUIRED`."""
        return self._act(sandbox.crypto_deposit, invoice, amount, confirmations=confirmations, notify=notify)

    def confirm(self, invoice: Invoice, confirmations: int = 1, *, notify: bool = True) -> Invoice:
        """Pending bitcoin deposits gain `confirmations`."""
        return self._act(sandbox.confirm, invoice, confirmations=confirmations, notify=notify)

    def expire(self, invoice: Invoice, *, notify: bool = True) -> Invoice:
        """The invoice passes its expiry date unpaid."""
        return self._act(sandbox.expire, invoice, notify=notify)

    def let_hold_expire(self, hold: Hold, *, notify: bool = True) -> Hold:
        """The provider lets the hold lapse (the money goes back to the customer); OnePipe then notifies."""
        require_sandbox("The payer")
        sandbox.expire_hold(hold.transaction_ref)
        if notify:
            _accepted(self.notification.send(hold), "notification")
        hold.refresh_from_db()
        return hold
