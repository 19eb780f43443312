"""The OTP guard's state, kept on the row it protects (an invoice, a hold consent).

On the row rather than in a cache, so the limit holds across processes and cache backends:
see `django_invoicepay.services.otp` for how it is used.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class OtpGuarded(models.Model):
    otp_failures = models.PositiveSmallIntegerField(_("wrong OTP attempts"), default=0, editable=False)
    otp_locked_until = models.DateTimeField(_("OTP refused until"), null=True, blank=True, editable=False)
    #: While set and in the future, one submitted code is being checked with the provider.
    otp_checking_until = models.DateTimeField(_("OTP being checked until"), null=True, blank=True, editable=False)

    class Meta:
        abstract = True
