"""Consent to hold funds, for the customer: give credentials, answer the OTP, see the state.

The answer never contains the provider token, the credentials or the OTP: only the consent's
state, the provider's prompt and a masked identifier. Placing and releasing holds are the
shop's actions (Python API, admin), not the customer's.
"""

from __future__ import annotations

import logging
from typing import Any

from django.apps import apps
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, NotAuthenticated, NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from .. import holds
from ..conf import invoicepay_settings, onepipe_configured
from ..errors import HoldError
from ..models import HoldConsent
from ..orders import get_order_adapter
from .permissions import owned_by_requester
from .throttling import OtpClientThrottle, OtpInvoiceThrottle, PayerThrottle
from .views import InvoiceView


class CustomerSerializer(serializers.Serializer):
    firstname = serializers.CharField(max_length=100)
    surname = serializers.CharField(max_length=100)
    email = serializers.EmailField()
    mobile_no = serializers.RegexField(r"^\+?\d{7,15}$", error_messages={
        "invalid": gettext_lazy("Enter the mobile number in international format, digits only, e.g. 2348022222208.")})
    customer_ref = serializers.CharField(max_length=100, required=False, allow_blank=True)


class ConsentRequestSerializer(serializers.Serializer):
    auth_type = serializers.CharField()
    credentials = serializers.DictField(child=serializers.CharField(max_length=64, trim_whitespace=True))
    customer = CustomerSerializer()
    amount = serializers.IntegerField(min_value=1, max_value=10_000_000, required=False, default=100)
    order = serializers.CharField(
        max_length=64, required=False,
        help_text=gettext_lazy("Your order's id, when the shop sets INVOICEPAY['ORDER_MODEL']."))

    def validate_auth_type(self, value: str) -> str:
        allowed = invoicepay_settings.ONEPIPE["ALLOWED_AUTH_TYPES"]
        if value not in allowed or value not in holds.CREDENTIALS:
            raise serializers.ValidationError(_("Choose one of: %(choices)s.") % {"choices": ", ".join(allowed)})
        return value

    def validate(self, attrs: dict) -> dict:
        needed = holds.CREDENTIALS[attrs["auth_type"]][0]
        given = attrs["credentials"]
        errors = {name: [_("This field is required.")] for name in needed if not given.get(name)}
        unknown = set(given) - set(needed)  # e.g. a card PIN sent with a bank account: refused, not ignored
        if unknown:
            errors.update({name: [_("Not a credential of this kind.")] for name in sorted(unknown)})
        if errors:
            raise serializers.ValidationError({"credentials": errors})
        return attrs


class ConsentOtpSerializer(serializers.Serializer):
    otp = serializers.CharField(
        max_length=64, trim_whitespace=True,
        help_text=gettext_lazy("The OTP, or the information a pending_validation prompt asked for."))


NEXT_ACTIONS = {"waiting_for_otp": "submit_otp", "pending_validation": "submit_information"}


def consent_data(consent: HoldConsent) -> dict:
    return {
        "id": consent.public_token,
        "status": consent.status,
        "prompt": consent.prompt or None,
        "auth_type": consent.auth_type,
        "account": consent.masked_identifier,
        "expires_at": consent.token_expires_at,
        "error": consent.error or None,
        "next_action": NEXT_ACTIONS.get(consent.status),
    }


class HoldsNotConfigured(APIException):
    """OnePipe has no credentials (sandbox off) or no usable BASE_URL: a 503 the shop must fix, not a 500."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE

    def __init__(self) -> None:
        super().__init__({"detail": _("Hold funds is not configured."), "code": "not_configured"})


class ConsentView(InvoiceView):
    provider_field = "otp"

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # throttles first: a flood is a 429, not a log line each
        if not onepipe_configured():
            logging.getLogger("django_invoicepay.api").error(
                "A hold funds consent was asked for, but INVOICEPAY['ONEPIPE'] is not configured (check W008).")
            raise HoldsNotConfigured

    def consent(self) -> HoldConsent:
        """The consent of the URL's token, if the requester may see it: its owner's alone when a user asked
        for it (anyone else, logged in or not, gets 404); else the rules of its order, if any."""
        consent = HoldConsent.objects.filter(public_token=self.kwargs["token"]).first()
        if consent is None or not owned_by_requester(self.request, consent):
            raise NotFound(_("No such consent."))
        return consent

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, HoldError):
            return Response({"detail": exc.message, "code": exc.code or "refused"}, status=status.HTTP_400_BAD_REQUEST)
        return super().handle_exception(exc)


class ConsentCreate(ConsentView):
    throttle_classes = [PayerThrottle]
    serializer_class = ConsentRequestSerializer

    def post(self, request: Request) -> Response:
        user = request.user if request.user and request.user.is_authenticated else None
        if user is None and invoicepay_settings.HOLDS_ALLOW_ANONYMOUS is not True:
            raise NotAuthenticated(_("Log in to give your consent."))
        data = self.valid(ConsentRequestSerializer)
        consent = holds.request_consent(auth_type=data["auth_type"], credentials=data["credentials"],
                                        customer=data["customer"], amount=data["amount"], owner=user,
                                        order=self.order(user, data.get("order")))
        return Response(consent_data(consent), status=status.HTTP_201_CREATED)

    def order(self, user: models.Model | None, order_id: str | None) -> models.Model | None:
        """The requester's own order named in the request (ORDER_MODEL); a stranger's is "no such order"."""
        if order_id is None:
            return None
        if not invoicepay_settings.ORDER_MODEL:
            raise ValidationError({"order": [_("This shop does not take an order here.")]})
        model = apps.get_model(invoicepay_settings.ORDER_MODEL)
        try:
            order = model._default_manager.filter(pk=order_id).first()
        except (ValueError, TypeError, DjangoValidationError):
            order = None
        owner = get_order_adapter().owner(order) if order is not None else None
        if order is None or getattr(owner, "pk", owner) != getattr(user, "pk", None):
            raise ValidationError({"order": [_("No such order.")]})
        return order


class ConsentDetail(ConsentView):
    def get(self, request: Request, token: str) -> Response:
        return Response(consent_data(self.consent()))


class ConsentOtp(ConsentView):
    throttle_classes = [OtpClientThrottle, OtpInvoiceThrottle]
    serializer_class = ConsentOtpSerializer

    def post(self, request: Request, token: str) -> Response:
        consent = self.consent()
        data = self.valid(ConsentOtpSerializer)
        return Response(consent_data(holds.confirm_consent(consent, data["otp"])))
