"""Admin for the mirror: read-only (the provider is the source of truth), with sync and cancel actions."""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _

from . import holds
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
from .webhooks import intake

MIRROR_HIDDEN = ("raw",)


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class QuoteInline(ReadOnlyInline):
    model = Quote
    fields = ("remote_id", "processor", "status", "reference", "amount", "total_paid", "total_pending",
              "currency_code")


class TransactionInline(ReadOnlyInline):
    model = InvoiceTransaction
    fields = ("code", "status", "amount", "currency_code", "confirmations", "tx_hash", "settled")


class StatusChangeInline(ReadOnlyInline):
    model = InvoiceStatusChange
    fields = ("created_at", "from_status", "to_status", "source", "transition_id", "announced_at")
    readonly_fields = fields


class HoldStatusChangeInline(StatusChangeInline):
    model = HoldStatusChange


def _run(modeladmin, request, queryset, action, done: str) -> None:
    ok = 0
    for invoice in queryset:
        try:
            action(invoice)
            ok += 1
        except InvoicePayError as exc:
            modeladmin.message_user(request, f"{invoice}: {getattr(exc, 'message', exc)}", messages.ERROR)
    if ok:
        modeladmin.message_user(request, f"{done}: {ok}", messages.SUCCESS)


@admin.action(description=_("Sync from the provider"))
def sync_invoices(modeladmin, request, queryset) -> None:
    _run(modeladmin, request, queryset, lambda i: i.sync(source="admin"), "Synced")


@admin.action(description=_("Cancel at the provider"))
def cancel_invoices(modeladmin, request, queryset) -> None:
    _run(modeladmin, request, queryset, lambda i: i.cancel(), "Cancelled")


@admin.action(description=_("Refund the overpayment"))
def refund_overpayments(modeladmin, request, queryset) -> None:
    _run(modeladmin, request, queryset, lambda i: i.refund_overpayment(), "Refunded")


@admin.action(description=_("Renew (expired invoices)"))
def renew_invoices(modeladmin, request, queryset) -> None:
    _run(modeladmin, request, queryset, lambda i: i.renew(), "Renewed")


class RefundInline(ReadOnlyInline):
    model = Refund
    fields = ("created_at", "reason", "amount", "currency_code", "status", "error")
    readonly_fields = fields


@admin.register(Invoice)
class InvoiceAdmin(admin.ModelAdmin):
    list_display = ("reference", "status", "request_reference", "amount_display", "primary_processor",
                    "created_at")
    list_filter = ("status", "primary_processor")
    search_fields = ("remote_id", "reference", "request_reference", "payer_email")
    exclude = ("raw", "payer_mobile_number")
    inlines = (QuoteInline, TransactionInline, RefundInline, StatusChangeInline)
    actions = (sync_invoices, cancel_invoices, refund_overpayments, renew_invoices)

    @admin.display(description=_("amount"))
    def amount_display(self, obj: Invoice) -> str:
        return str(obj.amount)

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields if f.name not in self.exclude]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.action(description=_("Process again"))
def reprocess_deliveries(modeladmin, request, queryset) -> None:
    # Any delivery but a malformed one, finished ones included (to apply a fixed handler again).
    statuses = frozenset(WebhookDelivery.Status.values) - {WebhookDelivery.Status.MALFORMED}
    counts = intake.process_all(queryset.order_by("received_at", "pk"), statuses=statuses)
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "nothing"
    level = messages.WARNING if counts.get("failed") else messages.SUCCESS
    modeladmin.message_user(request, f"Processed again: {summary}.", level)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """The webhook log: read-only, as received (headers without secrets), with a way to replay."""

    list_display = ("received_at", "provider", "event", "event_id", "object_id", "status", "deliveries", "attempts")
    list_filter = ("provider", "status", "event")
    search_fields = ("event_id", "object_id")
    actions = (reprocess_deliveries,)
    date_hierarchy = "received_at"

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyAdmin(admin.ModelAdmin):
    """Provider state is changed by the services only; the admin shows it and offers actions."""

    hidden: tuple[str, ...] = ()

    def get_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields if f.name not in self.hidden]

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj)

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class HoldInline(ReadOnlyInline):
    model = Hold
    fields = ("created_at", "amount", "currency_code", "status", "hold_expires_at", "error")
    readonly_fields = fields


@admin.register(HoldConsent)
class HoldConsentAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "customer_email", "auth_type", "masked_identifier", "status", "token_expires_at")
    list_filter = ("status", "auth_type")
    search_fields = ("customer_email", "customer_ref", "transaction_ref")
    hidden = ("token_sealed", "raw", "public_token")
    inlines = (HoldInline,)


@admin.action(description=_("Release the hold"))
def release_holds(modeladmin, request, queryset) -> None:
    _run(modeladmin, request, queryset, holds.release_hold, "Released")


@admin.action(description=_("Refresh from OnePipe"))
def refresh_holds(modeladmin, request, queryset) -> None:
    _run(modeladmin, request, queryset, holds.refresh_hold, "Refreshed")


@admin.register(Hold)
class HoldAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "consent", "amount_display", "status", "hold_expires_at")
    list_filter = ("status",)
    search_fields = ("transaction_ref", "provider_reference", "consent__customer_email")
    hidden = ("raw",)
    actions = (release_holds, refresh_holds)
    inlines = (HoldStatusChangeInline,)

    @admin.display(description=_("amount"))
    def amount_display(self, obj: Hold) -> str:
        return str(obj.money)
