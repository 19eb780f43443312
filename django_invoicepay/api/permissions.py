"""Who may act on an invoice: the public token is the capability for guests; an order that
belongs to a user can only be acted on by that user. Everyone else gets 404, so the API
never tells whether an invoice exists.
"""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.translation import gettext as _
from rest_framework.exceptions import NotFound

from ..models import HoldConsent, Invoice
from ..orders import get_order_adapter


def owned_by_requester(request: HttpRequest, obj: Invoice | HoldConsent) -> bool:
    """Guests may act on what has no owner; what belongs to a user is that user's alone. The owner is the
    object's own (a consent asked for by a logged-in user), else its order's (the order adapter's)."""
    owner_id = getattr(obj, "owner_id", None)  # a consent's; an invoice has none
    if owner_id is not None:
        owner = owner_id
    else:
        order = obj.order if obj.object_id else None
        owner = get_order_adapter().owner(order) if order is not None else None
    if owner is None:
        return True
    user = getattr(request, "user", None)
    return bool(user and user.is_authenticated and getattr(owner, "pk", owner) == user.pk)


def invoice_for(request: HttpRequest, token: str) -> Invoice:
    invoice = (
        Invoice.objects.filter(public_token=token)
        .select_related("renewed_by")
        .prefetch_related("quotes", "transactions", "refunds")
        .first()
    )
    if invoice is None or not owned_by_requester(request, invoice):
        raise NotFound(_("No such invoice."))
    return invoice
