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

from django.contrib import admin, messages
from django.contrib.auth import get_permission_codename
from django.utils.translation import gettext_lazy as _

from . import holds
from .admin_inlines import ReadOnlyInlineMixin, order_link
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
from .webhooks import bodies, intake

MIRROR_HIDDEN = ("raw",)


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
    model = InvoiceStatusChange
    fields = ("created_at", "from_status", "to_status", "source", "transition_id", "announced_at")
    readonly_fields = fields


class HoldStatusChangeInline(StatusChangeInline):
    model = HoldStatusChange


def _has_perm(modeladmin: admin.ModelAdmin, request, action: str) -> bool:
    """Whether the user holds `<app_label>.<action>_<model>`, e.g. `invoicepay.cancel_invoice`."""
    opts = modeladmin.opts
    return request.user.has_perm(f"{opts.app_label}.{get_permission_codename(action, opts)}")


class MirrorAdmin(admin.ModelAdmin):
    """Shows provider state; never adds, edits or deletes it (the services change it, under a lock).

    The model's `change` permission grants "refresh from the provider" (`has_sync_permission`), not
    editing: a change form saved here would write the whole row back from a stale read.
    """

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_sync_permission(self, request) -> bool:
        return _has_perm(self, request, "change")


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


@admin.action(description=_("Sync from the provider"), permissions=["sync"])
def sync_invoices(modeladmin, request, queryset) -> None:
    _run(modeladmin, request, queryset, lambda i: i.sync(source="admin"), "Synced")


@admin.action(description=_("Cancel at the provider"), permissions=["cancel"])
def cancel_invoices(modeladmin, request, queryset) -> None:
    _run(modeladmin, request, queryset, lambda i: i.cancel(), "Cancelled")


@admin.action(description=_("Refund the overpayment"), permissions=["refund"])
def refund_overpayments(modeladmin, request, queryset) -> None:
    _run(modeladmin, request, queryset, lambda i: i.refund_overpayment(), "Refunded")


@admin.action(description=_("Renew (expired invoices)"), permissions=["renew"])
def renew_invoices(modeladmin, request, queryset) -> None:
    _run(modeladmin, request, queryset, lambda i: i.renew(), "Renewed")


class RefundInline(ReadOnlyInline):
    model = Refund
    fields = ("created_at", "reason", "amount", "currency_code", "status", "error")
    readonly_fields = fields


@admin.register(Invoice)
class InvoiceAdmin(MirrorAdmin):
    list_display = ("reference", "status", "request_reference", "amount_display", "primary_processor",
                    "created_at")
    list_filter = ("status", "primary_processor")
    search_fields = ("remote_id", "reference", "request_reference", "payer_email")
    exclude = ("raw", "payer_mobile_number", "content_type", "object_id")
    inlines = (QuoteInline, TransactionInline, RefundInline, StatusChangeInline)
    actions = (sync_invoices, cancel_invoices, refund_overpayments, renew_invoices)

    @admin.display(description=_("amount"))
    def amount_display(self, obj: Invoice) -> str:
        return str(obj.amount)

    @admin.display(description=_("order"))
    def order(self, obj: Invoice) -> str:
        return order_link(obj)

    def get_readonly_fields(self, request, obj=None):
        return ["order", *(f.name for f in self.model._meta.fields if f.name not in self.exclude)]

    def has_cancel_permission(self, request) -> bool:
        return _has_perm(self, request, "cancel")

    def has_refund_permission(self, request) -> bool:
        return _has_perm(self, request, "refund")

    def has_renew_permission(self, request) -> bool:
        return _has_perm(self, request, "renew")


@admin.action(description=_("Process again"), permissions=["reprocess"])
def reprocess_deliveries(modeladmin, request, queryset) -> None:
    # Any delivery but a malformed one, finished ones included (to apply a fixed handler again).
    statuses = frozenset(WebhookDelivery.Status.values) - {WebhookDelivery.Status.MALFORMED}
    counts = intake.process_all(queryset.order_by("received_at", "pk"), statuses=statuses)
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "nothing"
    level = messages.WARNING if counts.get("failed") else messages.SUCCESS
    modeladmin.message_user(request, f"Processed again: {summary}.", level)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(MirrorAdmin):
    """The webhook log: read-only, as received (headers without secrets), with a way to replay."""

    list_display = ("received_at", "provider", "event", "event_id", "object_id", "status", "deliveries", "attempts")
    # Not date_hierarchy (see the module's docstring): this filter compares plain datetime ranges.
    list_filter = ("provider", "status", "event", ("received_at", admin.DateFieldListFilter))
    search_fields = ("event_id", "object_id")
    actions = (reprocess_deliveries,)

    def get_fields(self, request, obj=None):
        return [f.name if f.name != "body" else "masked_body" for f in self.model._meta.fields]

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj)

    @admin.display(description=_("body (personal fields masked)"))
    def masked_body(self, obj: WebhookDelivery) -> str:
        """Never the raw body: it may carry payers' e-mails, mobile numbers or codes."""
        return bodies.masked_text(obj.body, indent=2) or _("(not JSON: not shown)")

    def has_reprocess_permission(self, request) -> bool:
        return _has_perm(self, request, "reprocess")


class ReadOnlyAdmin(MirrorAdmin):
    """Provider state is changed by the services only; the admin shows it and offers actions."""

    hidden: tuple[str, ...] = ()

    def get_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields if f.name not in self.hidden]

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj)


class HoldInline(ReadOnlyInline):
    model = Hold
    fields = ("created_at", "amount", "currency_code", "status", "hold_expires_at", "error")
    readonly_fields = fields


@admin.register(HoldConsent)
class HoldConsentAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "customer_email", "auth_type", "masked_identifier", "status", "token_expires_at")
    list_filter = ("status", "auth_type")
    search_fields = ("customer_email", "customer_ref", "transaction_ref")
    hidden = ("token_sealed", "raw", "public_token", "content_type", "object_id")
    inlines = (HoldInline,)

    @admin.display(description=_("order"))
    def order(self, obj: HoldConsent) -> str:
        return order_link(obj)

    def get_fields(self, request, obj=None):
        return ["order", *super().get_fields(request, obj)]


@admin.action(description=_("Release the hold"), permissions=["release"])
def release_holds(modeladmin, request, queryset) -> None:
    _run(modeladmin, request, queryset, holds.release_hold, "Released")


@admin.action(description=_("Refresh from OnePipe"), permissions=["sync"])
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

    def has_release_permission(self, request) -> bool:
        return _has_perm(self, request, "release")

    @admin.display(description=_("amount"))
    def amount_display(self, obj: Hold) -> str:
        return str(obj.money)
