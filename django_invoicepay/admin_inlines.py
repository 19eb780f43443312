"""The shop's side of the admin: its orders' invoices and hold consents, and links back to the order.

Add the inlines to your own Order admin (docs/invoices.md#admin)::

    from django_invoicepay.admin_inlines import ConsentInline, InvoiceInline

    @admin.register(Order)
    class OrderAdmin(admin.ModelAdmin):
        inlines = [InvoiceInline, ConsentInline]

Both are read-only: invoices and consents change through the services, never through a form.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from django.contrib.admin import display as admin_display
from django.contrib.admin.utils import flatten
from django.contrib.contenttypes.admin import GenericTabularInline
from django.db import models
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from .models import HoldConsent, Invoice

if TYPE_CHECKING:
    from django.contrib.admin.options import _FieldGroups


def admin_link(obj: models.Model | None, text: object = None) -> str:
    """A link to `obj`'s admin change page when it has one, else its text ("—" for nothing)."""
    if obj is None:
        return "—"
    try:
        url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    except NoReverseMatch:
        return str(text if text is not None else obj)
    return format_html('<a href="{}">{}</a>', url, text if text is not None else obj)


def order_link(obj: Invoice | HoldConsent) -> str:
    """The shop's order of an invoice or consent, linked to its admin page when it has one."""
    if not obj.object_id:
        return "—"
    order = obj.order
    if order is None:
        return str(_("(order {id} no longer exists)")).format(id=obj.object_id)
    return admin_link(order)


class _ShowsFields(Protocol):
    def get_fields(self, request: HttpRequest, obj: Any = None) -> _FieldGroups: ...


class ReadOnlyMixin:
    """An admin page or inline that shows rows and never adds, edits or deletes one: the services change
    them, under a lock (a form saved here would write the whole row back from a stale read).

    Every field shown is read-only, so it needs `fields` or a `get_fields` that does not build a form.
    """

    def has_add_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def get_readonly_fields(self: _ShowsFields, request: HttpRequest, obj: models.Model | None = None
                            ) -> tuple[str, ...]:
        return tuple(flatten(self.get_fields(request, obj)))


class ReadOnlyInlineMixin(ReadOnlyMixin):
    """An inline of read-only rows: no empty forms, no delete boxes."""

    extra = 0
    can_delete = False


class _ReadOnlyGenericInline(ReadOnlyInlineMixin, GenericTabularInline):
    ct_field, ct_fk_field = "content_type", "object_id"


class InvoiceInline(_ReadOnlyGenericInline):
    """An order's invoices, newest first, each linked to its page in the invoicepay admin."""

    model = Invoice
    fields = ("invoice", "status", "amount_display", "outstanding_display", "created_at")
    verbose_name_plural = _("invoices")

    @admin_display(description=_("invoice"))
    def invoice(self, obj: Invoice) -> str:
        return admin_link(obj, obj.reference or obj.remote_id)

    @admin_display(description=_("amount"))
    def amount_display(self, obj: Invoice) -> str:
        return str(obj.amount)

    @admin_display(description=_("still owed"))
    def outstanding_display(self, obj: Invoice) -> str:
        return str(obj.outstanding_money)


class ConsentInline(_ReadOnlyGenericInline):
    """An order's consents to hold funds, with their holds."""

    model = HoldConsent
    fields = ("consent", "status", "masked_identifier", "holds_display", "created_at")
    verbose_name_plural = _("hold consents")

    @admin_display(description=_("consent"))
    def consent(self, obj: HoldConsent) -> str:
        return admin_link(obj, f"{obj.auth_type} {obj.masked_identifier}")

    @admin_display(description=_("holds"))
    def holds_display(self, obj: HoldConsent) -> str:
        return ", ".join(f"{hold.money} {hold.get_status_display()}" for hold in obj.holds.all()) or "—"
