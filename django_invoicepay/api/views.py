"""Payer-facing invoice endpoints. Each view parses, calls one service, and answers; what they share
(errors that never become a 500, throttling, validation, the answer, the schema) is `base.PayerView`."""

from __future__ import annotations

from django.utils.translation import gettext as _
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from ..models import Invoice
from ..services import payments, renewals
from ..services.invoices import sync
from .base import POST_ERRORS, PROVIDER_ERRORS, PayerView, documented
from .permissions import invoice_for
from .serializers import (
    InvoiceMessageSerializer,
    InvoiceSerializer,
    MessageSerializer,
    OtpSerializer,
    PayerSerializer,
    ProcessorChoiceSerializer,
    ProcessorListSerializer,
)
from .throttling import OtpClientThrottle, OtpInvoiceThrottle, PayerThrottle


class InvoiceView(PayerView):
    """An endpoint of one invoice, named by the URL's public token."""

    response_serializer: type[BaseSerializer] | None = InvoiceSerializer

    def invoice(self) -> Invoice:
        return invoice_for(self.request, self.kwargs["token"])


class InvoiceDetail(InvoiceView):
    """The invoice as the payer sees it. `?refresh=1` syncs with the provider first."""

    @documented(InvoiceSerializer, errors=(404, 429), summary="The invoice as the payer sees it",
                query=[("refresh", "1 or true: sync with the provider first (what is known, if that fails).")])
    def get(self, request: Request, token: str) -> Response:
        invoice = self.invoice()
        if request.query_params.get("refresh") in {"1", "true"}:  # show what we know if that fails
            invoice = payments.mirror(invoice, lambda: sync(invoice, source="api"))
        return self.respond(invoice)


class ProcessorList(InvoiceView):
    """The payment processors the provider offers for this invoice."""

    response_serializer = ProcessorListSerializer

    @documented(ProcessorListSerializer, errors=PROVIDER_ERRORS, summary="The ways the payer may pay")
    def get(self, request: Request, token: str) -> Response:
        return self.respond({"results": payments.payment_processors(self.invoice())})


class ProcessorChoice(InvoiceView):
    """Sets the primary payment processor at the provider; answers with the invoice and its new quote."""

    throttle_classes = [PayerThrottle]
    provider_field = "processor"
    serializer_class = ProcessorChoiceSerializer

    @documented(InvoiceSerializer, errors=POST_ERRORS, request=ProcessorChoiceSerializer,
                example={"processor": "native"}, summary="Choose how to pay")
    def post(self, request: Request, token: str) -> Response:
        invoice = self.invoice()
        data = self.valid()
        return self.respond(payments.set_processor(invoice, data["processor"]))


class Payer(InvoiceView):
    """OTP payment, step 1: the payer's wallet email and mobile number (E.164); the provider sends an SMS."""

    throttle_classes = [PayerThrottle]
    serializer_class = PayerSerializer
    response_serializer = InvoiceMessageSerializer

    @documented(InvoiceMessageSerializer, errors=POST_ERRORS, request=PayerSerializer,
                example={"payer_email": "ann@example.com", "payer_mobile_number": "+27 82 123 4567"},
                summary="The payer's wallet email and mobile number: the provider sends an SMS code")
    def post(self, request: Request, token: str) -> Response:
        invoice = self.invoice()
        data = self.valid()
        invoice = payments.set_payer(invoice, email=data["payer_email"], mobile_number=data["payer_mobile_number"])
        return self.respond(invoice, detail=_("We sent a code by SMS to the mobile number on your wallet."))


class Otp(InvoiceView):
    """OTP payment, step 2: the code (4 to 8 digits, checked before any provider call)."""

    throttle_classes = [OtpClientThrottle, OtpInvoiceThrottle]
    provider_field = "otp"
    serializer_class = OtpSerializer
    response_serializer = InvoiceMessageSerializer

    @documented(InvoiceMessageSerializer, errors=POST_ERRORS, request=OtpSerializer,
                example={"otp": "401703"}, summary="Pay with the SMS code")
    def post(self, request: Request, token: str) -> Response:
        invoice = self.invoice()
        data = self.valid()  # the code's format is checked before any provider call
        return self.respond(payments.submit_otp(invoice, data["otp"]), detail=_("Payment accepted."))


class OtpResend(InvoiceView):
    """OTP payment: a new SMS code."""

    throttle_classes = [PayerThrottle]
    response_serializer = MessageSerializer

    @documented(MessageSerializer, errors=POST_ERRORS, summary="Send a new SMS code")
    def post(self, request: Request, token: str) -> Response:
        payments.resend_otp(self.invoice())
        return self.respond({"detail": _("A new code is on its way.")})


class Renew(InvoiceView):
    """An expired invoice's renewal (created once): answers 201 with the new invoice and its token."""

    throttle_classes = [PayerThrottle]
    response_serializer = InvoiceMessageSerializer

    @documented(InvoiceMessageSerializer, codes=(status.HTTP_201_CREATED, status.HTTP_200_OK), errors=POST_ERRORS,
                summary="Replace an expired invoice (201; 200 with the same invoice afterwards)")
    def post(self, request: Request, token: str) -> Response:
        old = self.invoice()
        already = getattr(old, "renewed_by", None)
        new = renewals.renew(old)
        code = status.HTTP_200_OK if already else status.HTTP_201_CREATED
        return self.respond(invoice_for(request, new.public_token), code=code, detail=_("A new invoice was created."))
