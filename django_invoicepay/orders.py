"""Orders follow invoices: invoice status -> order state, through a replaceable adapter.

The mapping is `INVOICEPAY["ORDER_STATES"]`; a status mapped to None leaves the
order alone. The adapter (`INVOICEPAY["ORDER_ADAPTER"]`) is how the app touches the
shop's order: by default it sets `ORDER_STATUS_FIELD` and saves only that field.
The state is applied inside the same database transaction as the invoice's own
change, so the two commit or roll back together.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.utils.module_loading import import_string

from .conf import invoicepay_settings
from .errors import OrderAdapterError

if TYPE_CHECKING:
    from django.db import models

    from .models import Invoice

logger = logging.getLogger("django_invoicepay.orders")


class OrderAdapter:
    """How the app reads and moves a shop's order. Subclass it to fit your Order model."""

    def reference(self, order: models.Model) -> str:
        """The order number sent to the provider as `request_reference`."""
        return str(getattr(order, "number", "") or order.pk)

    def set_state(self, order: models.Model, state: str, *, invoice: Invoice) -> None:
        raise NotImplementedError

    def owner(self, order: models.Model) -> Any:
        """The user the order belongs to, or None for a guest order."""
        return getattr(order, "user", None)


class StatusFieldOrderAdapter(OrderAdapter):
    """Sets `ORDER_STATUS_FIELD` on the order and saves that field only."""

    def set_state(self, order: models.Model, state: str, *, invoice: Invoice) -> None:
        from django.db.models import Field

        name = status_field(type(order))
        field = type(order)._meta.get_field(name)
        assert isinstance(field, Field)  # status_field() accepts a concrete field only, never a relation
        refused = state_refused(field, state)
        if refused:
            raise OrderAdapterError(
                f"INVOICEPAY['ORDER_STATES'] maps invoice status {invoice.status!r} to {state!r}, which "
                f"{type(order).__name__}.{name} does not accept ({refused}). Map it to a state your orders "
                "have, or to None to leave the order alone.")
        if getattr(order, field.attname) == state:
            return
        setattr(order, field.attname, state)
        order.save(update_fields=[field.name])


def status_field(model: type[models.Model]) -> str:
    """The name of `model`'s field that ORDER_STATUS_FIELD names; OrderAdapterError saying what to set if none."""
    from django.core.exceptions import FieldDoesNotExist

    name = invoicepay_settings.ORDER_STATUS_FIELD
    try:
        field = model._meta.get_field(name) if isinstance(name, str) else None
    except FieldDoesNotExist:
        field = None
    if field is None or not getattr(field, "concrete", False) or field.is_relation:
        candidates = [f.name for f in model._meta.concrete_fields if f.get_internal_type() == "CharField"]
        raise OrderAdapterError(
            f"INVOICEPAY['ORDER_STATUS_FIELD'] is {name!r}, but {model._meta.label} has no such field. Set it "
            f"to the field that holds your order's state (text fields of {model.__name__}: "
            f"{', '.join(candidates) or 'none'}), or set INVOICEPAY['ORDER_ADAPTER'] to an adapter of your own.")
    return field.name


def state_refused(field: models.Field, state: str) -> str:
    """Why `field` would refuse `state` ("" when it takes it): not one of its choices, or too long."""
    choices = [str(value) for value, _ in field.flatchoices] if field.choices else []
    if choices and state not in choices:
        return f"its choices are {', '.join(choices)}"
    if field.max_length and len(state) > field.max_length:
        return f"it holds at most {field.max_length} characters"
    return ""


def get_order_adapter() -> OrderAdapter:
    adapter = invoicepay_settings.ORDER_ADAPTER
    cls = import_string(adapter) if isinstance(adapter, str) else adapter
    return cls()


def order_state_for(status: str) -> str | None:
    return invoicepay_settings.ORDER_STATES.get(status)


def follow_invoice(invoice: Invoice, new_status: str) -> None:
    """Move the invoice's order to the state mapped to `new_status` (inside the caller's transaction)."""
    state = order_state_for(new_status)
    if state is None or not invoice.object_id:
        return
    order = invoice.order
    if order is None:
        logger.warning("Invoice %s points at an order that no longer exists", invoice.remote_id)
        return
    get_order_adapter().set_state(order, state, invoice=invoice)
    logger.info("Order %s -> %s (invoice %s is %s)", order.pk, state, invoice.remote_id, new_status)
