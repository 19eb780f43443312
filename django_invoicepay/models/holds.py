"""OnePipe hold funds: a customer's consent (with its provider token, encrypted at rest) and the
holds placed with it. No card or account number, PIN, CVV or OTP is ever stored: only a masked
identifier such as the last four digits."""

from __future__ import annotations

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .amounts import MinorUnits
from .invoices import new_public_token
from .order_link import OrderQuerySet
from .otp import OtpGuarded
from .transitions import Transition


class _OnePipeMoney(MinorUnits):
    """OnePipe's amounts: naira unless the row says otherwise."""

    currency_code = models.CharField(_("currency"), max_length=16, default="NGN")

    class Meta:
        abstract = True


class HoldConsentQuerySet(OrderQuerySet["HoldConsent"]):
    """`HoldConsent.objects.for_order(order)`, as for invoices."""


class HoldConsent(_OnePipeMoney, OtpGuarded):
    class Status(models.TextChoices):
        REQUESTED = "requested", _("requested")
        WAITING_FOR_OTP = "waiting_for_otp", _("waiting for the OTP")
        PENDING_VALIDATION = "pending_validation", _("waiting for more information")
        ACTIVE = "active", _("active")
        FAILED = "failed", _("failed")

    public_token = models.CharField(max_length=64, unique=True, default=new_public_token, editable=False)
    customer_ref = models.CharField(_("customer reference"), max_length=100, blank=True)
    customer_firstname = models.CharField(_("first name"), max_length=100, blank=True)
    customer_surname = models.CharField(_("surname"), max_length=100, blank=True)
    customer_email = models.CharField(_("email"), max_length=254, blank=True)
    customer_mobile = models.CharField(_("mobile number"), max_length=32, blank=True)
    content_type = models.ForeignKey(ContentType, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    object_id = models.CharField(_("order id"), max_length=64, blank=True)
    order = GenericForeignKey("content_type", "object_id")
    #: The user who asked for it through the API: only they can see and confirm it (None: a guest's).
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                              related_name="+", verbose_name=_("owner"))
    auth_type = models.CharField(_("authorised with"), max_length=32)
    masked_identifier = models.CharField(_("account"), max_length=32, blank=True)
    status = models.CharField(_("status"), max_length=32, choices=Status.choices, default=Status.REQUESTED)
    prompt = models.CharField(_("provider's prompt"), max_length=255, blank=True)
    transaction_ref = models.CharField(_("transaction ref"), max_length=64, unique=True)
    amount = models.BigIntegerField(_("consent amount (minor units)"))
    token_sealed = models.TextField(_("provider token (encrypted)"), blank=True, editable=False)
    token_expires_at = models.DateTimeField(_("consent expires at"), null=True, blank=True)
    error = models.CharField(_("last error"), max_length=255, blank=True)
    raw = models.JSONField(_("provider answers (secrets removed)"), default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = HoldConsentQuerySet.as_manager()

    class Meta:
        ordering = ("-created_at", "-pk")
        verbose_name = _("hold consent")
        verbose_name_plural = _("hold consents")

    def __str__(self) -> str:
        return f"{self.auth_type} {self.masked_identifier} ({self.status})"

    @property
    def is_final(self) -> bool:
        """Active and failed consents do not change any more (a new consent is asked for instead)."""
        return self.status in {self.Status.ACTIVE, self.Status.FAILED}

    @property
    def is_usable(self) -> bool:
        return (self.status == self.Status.ACTIVE and bool(self.token_sealed)
                and (self.token_expires_at is None or self.token_expires_at > timezone.now()))


class Hold(_OnePipeMoney):
    class Status(models.TextChoices):
        PENDING = "pending", _("pending")  # asked for; the provider's answer is not known yet
        PLACED = "placed", _("placed")
        RELEASED = "released", _("released")
        EXPIRED = "expired", _("expired")
        FAILED = "failed", _("failed")

    consent = models.ForeignKey(HoldConsent, on_delete=models.PROTECT, related_name="holds")
    amount = models.BigIntegerField(_("amount (minor units)"))
    transaction_ref = models.CharField(_("transaction ref"), max_length=64, unique=True)
    description = models.CharField(_("description"), max_length=255, blank=True)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.PENDING)
    hold_expires_at = models.DateTimeField(_("hold expires at"), null=True, blank=True)
    provider_reference = models.CharField(_("provider reference"), max_length=100, blank=True)
    error = models.CharField(_("last error"), max_length=255, blank=True)
    raw = models.JSONField(_("provider answers"), default=list, blank=True)
    #: While set and in the future, one process is releasing the hold at the provider.
    releasing_until = models.DateTimeField(_("being released until"), null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at", "-pk")
        verbose_name = _("hold")
        verbose_name_plural = _("holds")
        # Admin actions that act at the provider (docs/security.md, "Admin permissions").
        permissions = [("release_hold", "Can release holds at OnePipe (gives the customer the funds back)")]

    def __str__(self) -> str:
        return f"{self.money} hold ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in HOLD_FINAL_STATUSES

    def can_become(self, status: str) -> bool:
        """Holds only move forward: released, expired and failed are final; placed goes only to released or
        expired (never back to pending, never to failed: the money is held until one of those)."""
        return status == self.status or status in HOLD_FORWARD.get(self.status, frozenset())


HOLD_FINAL_STATUSES = frozenset({Hold.Status.RELEASED, Hold.Status.EXPIRED, Hold.Status.FAILED})
HOLD_FORWARD: dict[str, frozenset[str]] = {
    Hold.Status.PENDING: frozenset({Hold.Status.PLACED, Hold.Status.RELEASED, Hold.Status.EXPIRED, Hold.Status.FAILED}),
    Hold.Status.PLACED: frozenset({Hold.Status.RELEASED, Hold.Status.EXPIRED}),  # money held: never just "failed"
}


class ConsentStatusChange(Transition):
    """One row per real transition of a consent's status: the audit trail and the signals' outbox."""

    consent = models.ForeignKey(HoldConsent, on_delete=models.CASCADE, related_name="status_changes")

    class Meta(Transition.Meta):
        indexes = [models.Index(fields=("announced_at",), name="invoicepay_consentchg_ann")]
        verbose_name = _("consent status change")
        verbose_name_plural = _("consent status changes")


class HoldStatusChange(Transition):
    """One row per real transition of a hold's status: the audit trail and the signals' outbox."""

    hold = models.ForeignKey(Hold, on_delete=models.CASCADE, related_name="status_changes")

    class Meta(Transition.Meta):
        indexes = [models.Index(fields=("announced_at",), name="invoicepay_holdchg_announced")]
        verbose_name = _("hold status change")
        verbose_name_plural = _("hold status changes")
