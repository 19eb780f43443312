"""Every accepted webhook delivery, stored before it is processed (the webhook log).

Stored outside the processing transaction, so a delivery is never lost even when processing
fails; unique per provider and event id, so a repeat of a finished event is recognised and not
processed again (an unfinished one is: see `webhooks.intake`).
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class WebhookDelivery(models.Model):
    class Status(models.TextChoices):
        RECEIVED = "received", _("received")  # stored, not processed yet (or being processed: see leased_until)
        PROCESSED = "processed", _("processed")
        IGNORED = "ignored", _("ignored")  # authentic but nothing to do (unknown invoice, other event)
        FAILED = "failed", _("failed")  # processing raised: see `error`; the provider retries
        MALFORMED = "malformed", _("malformed")  # authentic sender, unreadable body

    provider = models.CharField(_("provider"), max_length=16)
    # NULL (not "") when a delivery has no id, so such deliveries never collide on the unique constraint.
    event_id = models.CharField(_("event id"), max_length=128, null=True, blank=True)  # noqa: DJ001
    event = models.CharField(_("event"), max_length=128, blank=True)
    object_id = models.CharField(_("object id"), max_length=128, blank=True, db_index=True)
    body = models.TextField(_("body"), blank=True)
    headers = models.JSONField(_("headers (secrets removed)"), default=dict, blank=True)
    source_ip = models.GenericIPAddressField(_("source IP"), null=True, blank=True)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.RECEIVED)
    attempts = models.PositiveIntegerField(_("processing attempts"), default=0)
    deliveries = models.PositiveIntegerField(_("times delivered"), default=1)
    error = models.TextField(_("last error"), blank=True)
    received_at = models.DateTimeField(_("first received"), auto_now_add=True, db_index=True)
    processed_at = models.DateTimeField(_("processed at"), null=True, blank=True)
    #: While set and in the future, one process is processing the delivery (its lease).
    leased_until = models.DateTimeField(_("being processed until"), null=True, blank=True)
    last_attempt_at = models.DateTimeField(_("last attempt"), null=True, blank=True)

    class Meta:
        ordering = ("-received_at", "-pk")
        constraints = [
            models.UniqueConstraint(fields=("provider", "event_id"), name="invoicepay_webhook_unique_event")
        ]
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        # Admin actions that act on provider state (docs/security.md, "Admin permissions").
        permissions = [("reprocess_webhookdelivery", "Can process webhook deliveries again")]

    def __str__(self) -> str:
        return f"{self.provider} {self.event or '?'} {self.event_id or ''} ({self.status})"

    @property
    def is_finished(self) -> bool:
        """Processed or ignored: a repeat of it can be answered `duplicate`."""
        return self.status in FINISHED


FINISHED = frozenset({WebhookDelivery.Status.PROCESSED, WebhookDelivery.Status.IGNORED})
UNFINISHED = frozenset({WebhookDelivery.Status.RECEIVED, WebhookDelivery.Status.FAILED})
