"""Status transitions, recorded in the same transaction as the change they describe.

Each row is both the audit trail and an outbox: the public signals for it are sent after
commit, and `announced_at` says they were. A process that dies between the commit and the
announcement leaves the row unannounced, and the polling sweep announces it later, in order
per object (see docs/signals.md). `transition_id` is stable, so a receiver can be idempotent.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.utils.translation import gettext_lazy as _


class Transition(models.Model):
    transition_id = models.UUIDField(_("transition id"), default=uuid.uuid4, unique=True, editable=False)
    from_status = models.CharField(_("from"), max_length=32, blank=True)
    to_status = models.CharField(_("to"), max_length=32)
    source = models.CharField(_("delivered by"), max_length=32)
    created_at = models.DateTimeField(_("recorded at"), auto_now_add=True)
    announced_at = models.DateTimeField(_("signals sent at"), null=True, blank=True)
    #: While set and in the future, one process is sending this transition's signals (or, after a
    #: receiver failed, the time before which they are not sent again).
    announcing_until = models.DateTimeField(_("being announced until"), null=True, blank=True, editable=False)
    announce_attempts = models.PositiveSmallIntegerField(_("times announced"), default=0, editable=False)

    class Meta:
        abstract = True
        ordering = ("created_at", "pk")

    def __str__(self) -> str:
        return f"{self.from_status or '∅'} → {self.to_status} ({self.source})"
