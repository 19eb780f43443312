"""Public signals, sent after the database transaction that made the change commits.

Delivery is durable and at least once: each transition is recorded (`InvoiceStatusChange`,
`HoldStatusChange`) in the same transaction as the change, its signals are sent after commit,
and a transition whose process died before announcing it is announced by the next polling
sweep, in order per invoice or hold. Every signal carries `transition_id` (a string, stable for
that transition): a receiver that must not act twice records it and ignores a repeat. See
docs/signals.md for the guarantee and an idempotent receiver.

Receivers are called robustly: an exception in one is logged and does not stop the others or
undo the change; the transition is then sent again (to every receiver) by the sweep, a few times
with backoff.
"""

from django.dispatch import Signal

#: The invoice's status changed. kwargs: invoice, old_status, new_status (lower case), transition_id.
invoice_status_changed = Signal()

#: The invoice became overpaid. kwargs: invoice, amount (minor units of the primary quote's currency),
#: transition_id.
invoice_overpaid = Signal()

#: The invoice became underpaid. kwargs: invoice, outstanding (minor units of the primary quote's currency),
#: transition_id.
invoice_underpaid = Signal()

#: The invoice expired unpaid. kwargs: invoice, transition_id.
invoice_expired = Signal()

#: A hold's status changed. kwargs: hold, old_status, new_status, transition_id.
hold_status_changed = Signal()

#: A hold consent's status changed (e.g. waiting_for_otp -> active, or -> failed).
#: kwargs: consent, old_status, new_status, transition_id.
consent_status_changed = Signal()
