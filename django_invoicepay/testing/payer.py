"""Play the customer in a test: pay, overpay, underpay, send bitcoin, let an invoice or hold expire.

Each action changes the invoice at the (sandbox) provider and then, as the provider would, sends
the shop its webhook, so the mirror, the order and the signals move through the same code as in
production. `notify=False` leaves the shop uninformed, to test polling or `invoice.sync()`.
Amounts are integers in minor units of the invoice's (or chosen quote's) currency.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import sandbox
from .webhooks import OnePipeNotificationSender, RehiveWebhookSender, remote_id

if TYPE_CHECKING:
    from ..models import Hold, Invoice


class Payer:
    def __init__(self, webhook: RehiveWebhookSender | None = None,
                 notification: OnePipeNotificationSender | None = None) -> None:
        self.webhook = webhook or RehiveWebhookSender()
        self.notification = notification or OnePipeNotificationSender(self.webhook.client)

    def _told(self, invoice: Invoice | str, notify: bool) -> Invoice | None:
        """Send the webhook when asked; return the shop's invoice, refreshed (None for a bare remote id)."""
        if notify:
            response = self.webhook.send(invoice)
            if response.status_code != 200:
                raise AssertionError(f"The shop answered the webhook with {response.status_code}: "
                                     f"{response.content.decode(errors='replace')}")
        if isinstance(invoice, str):
            return None
        invoice.refresh_from_db()
        return invoice

    def choose_processor(self, invoice: Invoice, processor: str, *, notify: bool = True) -> Invoice | None:
        """Pick how to pay ("native", "native_bitcoin", "bank_transfer", ...: `sandbox.PROCESSORS`)."""
        sandbox.choose_processor(remote_id(invoice), processor)
        return self._told(invoice, notify)

    def pay(self, invoice: Invoice, amount: int | None = None, *, notify: bool = True) -> Invoice | None:
        """Pay `amount` (default: what is owed) on the chosen quote (default: the wallet); settles at once."""
        sandbox.pay(remote_id(invoice), amount)
        return self._told(invoice, notify)

    def overpay(self, invoice: Invoice, by: int = 100, *, notify: bool = True) -> Invoice | None:
        sandbox.overpay(remote_id(invoice), by)
        return self._told(invoice, notify)

    def underpay(self, invoice: Invoice, by: int = 100, *, notify: bool = True) -> Invoice | None:
        """Pay all but `by`: the invoice stays open, underpaid."""
        sandbox.underpay(remote_id(invoice), by)
        return self._told(invoice, notify)

    def crypto_deposit(self, invoice: Invoice, amount: int | None = None, *, confirmations: int = 0,
                       notify: bool = True) -> Invoice | None:
        """Send bitcoin, seen with `confirmations`; it completes at `sandbox.CONFIRMATIONS_REQUIRED`."""
        sandbox.crypto_deposit(remote_id(invoice), amount, confirmations=confirmations)
        return self._told(invoice, notify)

    def confirm(self, invoice: Invoice, confirmations: int = 1, *, notify: bool = True) -> Invoice | None:
        """Pending bitcoin deposits gain `confirmations`."""
        sandbox.confirm(remote_id(invoice), confirmations=confirmations)
        return self._told(invoice, notify)

    def expire(self, invoice: Invoice, *, notify: bool = True) -> Invoice | None:
        """The invoice passes its expiry date unpaid."""
        sandbox.expire(remote_id(invoice))
        return self._told(invoice, notify)

    def let_hold_expire(self, hold: Hold, *, notify: bool = True) -> Hold:
        """The provider lets the hold lapse (the money goes back to the customer); OnePipe then notifies."""
        sandbox.expire_hold(hold.transaction_ref)
        if notify:
            response = self.notification.send(hold)
            if response.status_code != 200:
                raise AssertionError(f"The shop answered the notification with {response.status_code}.")
        hold.refresh_from_db()
        return hold
