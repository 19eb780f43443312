"""Public signals. All are sent after the database transaction that made the change
commits, exactly once per real transition, whatever delivered the change (webhook,
poll, API call, admin action) and however often or out of order it arrived.

Receivers are called robustly: an exception in one is logged and does not stop the
others or undo the change.
"""

from django.dispatch import Signal

#: The invoice's status changed. kwargs: invoice, old_status, new_status (lower case).
invoice_status_changed = Signal()

#: The invoice became overpaid. kwargs: invoice, amount (minor units of the primary quote's currency).
invoice_overpaid = Signal()

#: The invoice became underpaid. kwargs: invoice, outstanding (minor units of the primary quote's currency).
invoice_underpaid = Signal()

#: The invoice expired unpaid. kwargs: invoice.
invoice_expired = Signal()

#: A hold's status changed. kwargs: hold, old_status, new_status.
hold_status_changed = Signal()
