"""Admin for the mirror: read-only (the provider is the source of truth), with actions.

Every action names the permission it needs (`@admin.action(permissions=...)`), so Django neither
offers it to nor runs it for a staff user without that permission (a POSTed action name is refused
like an unknown one). Actions that move money or state at a provider need a dedicated permission
(`invoicepay.cancel_invoice`, `refund_invoice`, `renew_invoice`, `release_hold`,
`reprocess_webhookdelivery`); refreshing the mirror from the provider needs the model's `change`
permission. No page edits a row: provider state changes through the services only. See
docs/security.md, "Admin permissions".

No `date_hierarchy`: on MySQL/MariaDB it needs the server's time zone tables (without them
CONVERT_TZ gives NULL and the list is a 500); the date filters used here compare plain ranges.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from django.contrib import admin, messages
from django.contrib.auth import get_permission_codename
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from .admin_inlines import ReadOnlyInlineMixin, ReadOnlyMixin, order_link
from .errors import InvoicePayError
from .models import (
    Hold,
    HoldConsent,
    HoldStatusChange,
    Invoice,
    InvoiceStatusChange,
    InvoiceTransaction,
    Quote,
    Refund,
    WebhookDelivery,
)
from .models.transitions import Transition
from .services import holds
from .webhooks import bodies, intake

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise


class ReadOnlyInline(ReadOnlyInlineMixin, admin.TabularInline):
    show_change_link = False


class QuoteInline(ReadOnlyInline):
    model = Quote
    fields = ("remote_id", "processor", "status", "reference", "amount", "total_paid", "total_pending",
              "currency_code")


class TransactionInline(ReadOnlyInline):
    model = InvoiceTransaction
    fields = ("code", "status", "amount", "currency_code", "confirmations", "tx_hash", "settled")


class StatusChangeInline(ReadOnlyInline):
    model: type[Transition] = InvoiceStatusChange
    fields = ("created_at", "from_status", "to_status", "source", "transition_id", "announced_at")


class HoldStatusChangeInline(StatusChangeInline):
    model = HoldStatusChange


def _has_perm(modeladmin: admin.ModelAdmin, request: HttpRequest, action: str) -> bool:
    """Whether the user holds `<app_label>.<action>_<model>`, e.g. `invoicepay.cancel_invoice`."""
    opts = modeladmin.opts
    return request.user.has_perm(f"{opts.app_label}.{get_permission_codename(action, opts)}")


def _currency_beside_amount(model: type[models.Model], names: list[str]) -> list[str]:
    """The currency fields (inherited from MinorUnits, so first in the model) right after the amount."""
    amount = getattr(model, "amount_field", None)
    currency = [name for name in ("currency_code", "currency_divisibility") if name in names]
    if amount not in names or not currency:
        return names
    rest = [name for name in names if name not in currency]
    at = rest.index(amount) + 1
    return rest[:at] + currency + rest[at:]


class MirrorAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """Shows provider state, every field but the `hidden` ones; never adds, edits or deletes it.

    The model's `change` permission grants "refresh from the provider" (`has_sync_permission`), not
    editing: a change form saved here would write the whole row back from a stale read.
    """

    hidden: tuple[str, ...] = ()

    def get_fields(self, request: HttpRequest, obj: models.Model | None = None) -> tuple[str, ...]:
        names = [f.name for f in self.model._meta.fields if f.name not in self.hidden]
        return tuple(_currency_beside_amount(self.model, names))

    def has_sync_permission(self, request: HttpRequest) -> bool:
        return _has_perm(self, request, "change")


class OrderMirrorAdmin(MirrorAdmin):
    """Rows that belong to one of the shop's orders: a link to it first."""

    @admin.display(description=_("order"))
    def order(self, obj: Invoice | HoldConsent) -> str:
        return order_link(obj)

    def get_fields(self, request: HttpRequest, obj: models.Model | None = None) -> tuple[str, ...]:
        return ("order", *super().get_fields(request, obj))


_M = TypeVar("_M", bound=models.Model)


def _run(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[_M], action: Callable[[_M], object],
         done: StrOrPromise) -> None:
    """Apply `action` to each row; `done` is the success message, with `%(count)d` for how many."""
    ok = 0
    for invoice in queryset:
        try:
            action(invoice)
            ok += 1
        except InvoicePayError as exc:
            modeladmin.message_user(request, _("%(object)s: %(message)s")
                                    % {"object": invoice, "message": getattr(exc, "message", exc)}, messages.ERROR)
    if ok:
        modeladmin.message_user(request, done % {"count": ok}, messages.SUCCESS)


@admin.action(description=_("Sync from the provider"), permissions=["sync"])
def sync_with_provider(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Invoice]) -> None:
    _run(modeladmin, request, queryset, lambda i: i.sync(source="admin", transactions=True),
         _("Synced: %(count)d"))


@admin.action(description=_("Cancel at the provider"), permissions=["cancel"])
def cancel_invoices(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Invoice]) -> None:
    _run(modeladmin, request, queryset, lambda i: i.cancel(), _("Cancelled: %(count)d"))


@admin.action(description=_("Refund the overpayment"), permissions=["refund"])
def refund_overpayments(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Invoice]) -> None:
    _run(modeladmin, request, queryset, lambda i: i.refund_overpayment(), _("Refunded: %(count)d"))


@admin.action(description=_("Renew (expired invoices)"), permissions=["renew"])
def renew_invoices(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Invoice]) -> None:
    _run(modeladmin, request, queryset, lambda i: i.renew(), _("Renewed: %(count)d"))


class RefundInline(ReadOnlyInline):
    model = Refund
    fields = ("created_at", "reason", "amount", "currency_code", "status", "error")


@admin.register(Invoice)
class InvoiceAdmin(OrderMirrorAdmin):
    list_display = ("reference", "status", "request_reference", "amount_display", "primary_processor",
                    "created_at")
    # every stored status, an unknown one a provider sent included (the choices list only the known ones)
    list_filter = (("status", admin.AllValuesFieldListFilter), "primary_processor")
    search_fields = ("remote_id", "reference", "request_reference", "payer_email")
    hidden = ("raw", "payer_mobile_number", "content_type", "object_id")
    inlines = (QuoteInline, TransactionInline, RefundInline, StatusChangeInline)
    actions = (sync_with_provider, cancel_invoices, refund_overpayments, renew_invoices)

    @admin.display(description=_("amount"))
    def amount_display(self, obj: Invoice) -> str:
        return str(obj.amount)

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return _has_perm(self, request, "cancel")

    def has_refund_permission(self, request: HttpRequest) -> bool:
        return _has_perm(self, request, "refund")

    def has_renew_permission(self, request: HttpRequest) -> bool:
        return _has_perm(self, request, "renew")


@admin.action(description=_("Process again"), permissions=["reprocess"])
def reprocess_deliveries(modeladmin: admin.ModelAdmin, request: HttpRequest,
                         queryset: QuerySet[WebhookDelivery]) -> None:
    # Any delivery but a malformed one, finished ones included (to apply a fixed handler again).
    statuses = frozenset(WebhookDelivery.Status.values) - {WebhookDelivery.Status.MALFORMED}
    counts = intake.process_all(queryset.order_by("received_at", "pk"), statuses=statuses)
    summary = ", ".join(_("%(count)d %(outcome)s") % {"count": n, "outcome": _outcome(status)}
                        for status, n in sorted(counts.items())) or _("nothing")
    level = messages.WARNING if counts.get("failed") else messages.SUCCESS
    modeladmin.message_user(request, _("Processed again: %(summary)s.") % {"summary": summary}, level)


def _outcome(status: str) -> StrOrPromise:
    """A delivery's outcome in words: its status's label, or "busy" (another process had it)."""
    if status in WebhookDelivery.Status.values:
        return WebhookDelivery.Status(status).label
    return _("busy")


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(MirrorAdmin):
    """The webhook log: read-only, as received (headers without secrets), with a way to replay."""

    list_display = ("received_at", "provider", "event", "event_id", "object_id", "status", "deliveries", "attempts")
    # Not date_hierarchy (see the module's docstring): this filter compares plain datetime ranges.
    list_filter = ("provider", "status", "event", ("received_at", admin.DateFieldListFilter))
    search_fields = ("event_id", "object_id")
    actions = (reprocess_deliveries,)

    def get_fields(self, request: HttpRequest, obj: models.Model | None = None) -> tuple[str, ...]:
        return tuple(f.name if f.name != "body" else "masked_body" for f in self.model._meta.fields)

    @admin.display(description=_("body (personal fields masked)"))
    def masked_body(self, obj: WebhookDelivery) -> StrOrPromise:
        """Never the raw body: it may carry payers' e-mails, mobile numbers or codes."""
        return bodies.masked_text(obj.body, indent=2) or _("(not JSON: not shown)")

    def has_reprocess_permission(self, request: HttpRequest) -> bool:
        return _has_perm(self, request, "reprocess")


class HoldInline(ReadOnlyInline):
    model = Hold
    fields = ("created_at", "amount", "currency_code", "status", "hold_expires_at", "error")


@admin.register(HoldConsent)
class HoldConsentAdmin(OrderMirrorAdmin):
    list_display = ("created_at", "customer_email", "auth_type", "masked_identifier", "status", "token_expires_at")
    list_filter = ("status", "auth_type")
    search_fields = ("customer_email", "customer_ref", "transaction_ref")
    hidden = ("token_sealed", "raw", "public_token", "content_type", "object_id")
    inlines = (HoldInline,)


@admin.action(description=_("Release the hold"), permissions=["release"])
def release_holds(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Hold]) -> None:
    _run(modeladmin, request, queryset, holds.release_hold, _("Released: %(count)d"))


@admin.action(description=_("Refresh from OnePipe"), permissions=["sync"])
def refresh_holds(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Hold]) -> None:
    _run(modeladmin, request, queryset, holds.refresh_hold, _("Refreshed: %(count)d"))


@admin.register(Hold)
class HoldAdmin(MirrorAdmin):
    list_display = ("created_at", "consent", "amount_display", "status", "hold_expires_at")
    list_filter = ("status",)
    search_fields = ("transaction_ref", "provider_reference", "consent__customer_email")
    hidden = ("raw",)
    actions = (release_holds, refresh_holds)
    inlines = (HoldStatusChangeInline,)

    def has_release_permission(self, request: HttpRequest) -> bool:
        return _has_perm(self, request, "release")

    @admin.display(description=_("amount"))
    def amount_display(self, obj: Hold) -> str:
        return str(obj.money)
