"""Refunds the shop asked the provider for.

An overpayment refund's idempotency key is derived from the invoice, and keys are unique:
so there is at most one overpayment refund per invoice, on every database, and the provider
sees the same key however often the refund is retried.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from .amounts import MinorUnits
from .invoices import Invoice


class Refund(MinorUnits):
    class Reason(models.TextChoices):
        OVERPAYMENT = "overpayment", _("overpayment")
        OTHER = "other", _("other")

    class Status(models.TextChoices):
        REQUESTED = "requested", _("requested")  # recorded here; the provider may not have it yet
        COMPLETE = "complete", _("complete")
        FAILED = "failed", _("failed")

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="refunds")
    reason = models.CharField(_("reason"), max_length=16, choices=Reason.choices)
    amount = models.BigIntegerField(_("amount (minor units)"))
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.REQUESTED)
    idempotency_key = models.CharField(max_length=64, unique=True, editable=False)
    remote_id = models.CharField(_("remote id"), max_length=64, blank=True)
    error = models.TextField(_("last error"), blank=True)
    raw = models.JSONField(_("raw payload"), default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("created_at", "pk")
        verbose_name = _("refund")
        verbose_name_plural = _("refunds")

    def __str__(self) -> str:
        return f"{self.money} {self.reason} refund ({self.status})"
