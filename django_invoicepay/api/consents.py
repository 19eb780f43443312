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

from ..conf import invoicepay_settings, onepipe_configured
from ..errors import HoldError
from ..models import HoldConsent
from ..orders import get_order_adapter
from ..services import holds
from .base import PayerView, documented
from .permissions import owned_by_requester
from .serializers import BlankAsNullField
from .throttling import OtpClientThrottle, OtpInvoiceThrottle, PayerThrottle


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


#: The schema's example of a consent request (digits YAML writers quote: an unquoted 058 reads as 58 elsewhere).
CONSENT_EXAMPLE = {
    "auth_type": "bank.account", "credentials": {"account_number": "0001234567", "bank_code": "044"},
    "customer": {"firstname": "Uju", "surname": "Usmanu", "email": "uju@example.com", "mobile_no": "2348022222208"},
}
NEXT_ACTIONS = {"waiting_for_otp": "submit_otp", "pending_validation": "submit_information"}


class ConsentSerializer(serializers.Serializer):
    """The consent as its customer sees it: never the provider token, the credentials or the OTP."""

    id = serializers.CharField(source="public_token")
    status = serializers.ChoiceField(choices=HoldConsent.Status.choices)
    prompt = BlankAsNullField(help_text="The provider's prompt, e.g. where the OTP was sent.")
    auth_type = serializers.CharField()
    account = serializers.CharField(source="masked_identifier", help_text="Masked, e.g. ••••••6789.")
    expires_at = serializers.DateTimeField(source="token_expires_at", format=None, allow_null=True)
    error = BlankAsNullField()
    next_action = serializers.SerializerMethodField(help_text="submit_otp, submit_information, or null.")

    def get_next_action(self, consent: HoldConsent) -> str | None:
        return NEXT_ACTIONS.get(consent.status)


class HoldsNotConfigured(APIException):
    """OnePipe has no credentials (sandbox off) or no usable BASE_URL: a 503 the shop must fix, not a 500."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE

    def __init__(self) -> None:
        super().__init__({"detail": _("Hold funds is not configured."), "code": "not_configured"})


class ConsentView(PayerView):
    """An endpoint of the consent API: 503 at once while hold funds is not configured."""

    provider_field = "otp"
    response_serializer = ConsentSerializer

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
    """The customer's credentials go to the provider, which answers with a prompt (e.g. for an OTP)."""

    throttle_classes = [PayerThrottle]
    serializer_class = ConsentRequestSerializer

    @documented(ConsentSerializer, codes=(status.HTTP_201_CREATED,), errors=(400, 403, 429, 503),
                request=ConsentRequestSerializer, example=CONSENT_EXAMPLE,
                summary="Consent to hold funds: the provider asks for an OTP")
    def post(self, request: Request) -> Response:
        user = request.user if request.user and request.user.is_authenticated else None
        if user is None and invoicepay_settings.HOLDS_ALLOW_ANONYMOUS is not True:
            raise NotAuthenticated(_("Log in to give your consent."))
        data = self.valid()
        consent = holds.request_consent(auth_type=data["auth_type"], credentials=data["credentials"],
                                        customer=data["customer"], amount=data["amount"], owner=user,
                                        order=self.order(user, data.get("order")))
        return self.respond(consent, code=status.HTTP_201_CREATED)

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
    """The consent's state, to its owner (or, without one, to whoever has its token)."""

    @documented(ConsentSerializer, errors=(404, 429, 503), summary="The consent's state")
    def get(self, request: Request, token: str) -> Response:
        return self.respond(self.consent())


class ConsentOtp(ConsentView):
    """The OTP or the information the provider's prompt asked for; a wrong code counts (OTP_MAX_ATTEMPTS)."""

    throttle_classes = [OtpClientThrottle, OtpInvoiceThrottle]
    serializer_class = ConsentOtpSerializer

    @documented(ConsentSerializer, errors=(400, 403, 404, 409, 429, 503), request=ConsentOtpSerializer,
                example={"otp": "123456"},
                summary="Answer the OTP (or the information a pending_validation prompt asked for)")
    def post(self, request: Request, token: str) -> Response:
        consent = self.consent()
        data = self.valid()
        return self.respond(holds.confirm_consent(consent, data["otp"]))
