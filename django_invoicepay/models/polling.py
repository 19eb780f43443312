"""When each open invoice is next polled: kept apart from the invoice so polling an unchanged
invoice never rewrites it, and so pollers can claim rows with SELECT ... FOR UPDATE SKIP LOCKED."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from .invoices import Invoice


class PollSchedule(models.Model):
    invoice = models.OneToOneField(Invoice, on_delete=models.CASCADE, primary_key=True, related_name="poll")
    next_at = models.DateTimeField(_("next poll"), db_index=True)
    leased_until = models.DateTimeField(_("claimed by a poller until"), null=True, blank=True)
    interval = models.PositiveIntegerField(_("current interval (s)"), default=60)
    last_polled_at = models.DateTimeField(_("last polled"), null=True, blank=True)
    failures = models.PositiveIntegerField(_("consecutive failures"), default=0)
    not_found = models.PositiveIntegerField(_("consecutive 404s from the provider"), default=0)

    class Meta:
        verbose_name = _("poll schedule")
        verbose_name_plural = _("poll schedules")

    def __str__(self) -> str:
        return f"poll {self.invoice_id} at {self.next_at:%Y-%m-%d %H:%M:%S}"
