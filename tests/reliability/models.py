"""The shop side of the idempotent receiver (see apps.py): what a shop keeps to apply each transition once."""

from django.db import models


class AppliedTransition(models.Model):
    """One row per transition the receiver applied, inserted in the transaction that applies its effect:
    the unique transition id is what makes a redelivered signal a no-op."""

    transition_id = models.CharField(max_length=64, unique=True)
    remote_id = models.CharField(max_length=64)
    from_status = models.CharField(max_length=32, blank=True)
    to_status = models.CharField(max_length=32)
    pid = models.IntegerField()
    applied_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("pk",)

    def __str__(self) -> str:
        return f"{self.remote_id}: {self.from_status} -> {self.to_status} ({self.transition_id})"


class Fulfilment(models.Model):
    """The receiver's effect, as a shop's would be (an email sent, a parcel released...): one step per
    transition it applied, counted, so that a transition applied twice shows as a step too many.
    One row per invoice, made with the invoice (`tool create`)."""

    remote_id = models.CharField(max_length=64, unique=True)
    steps = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.remote_id}: {self.steps} step(s)"
