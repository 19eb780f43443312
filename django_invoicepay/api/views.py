"""Payer-facing endpoints. Each view parses, calls one service, and answers; errors go
through `errors.error_response` so nothing becomes a 500."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.utils.translation import gettext as _
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.views import APIView

from .. import payments, renewals
from ..errors import InvoicePayError
from ..invoices import sync
from ..models import Invoice
from .errors import error_response
from .permissions import invoice_for
from .serializers import (
    InvoiceSerializer,
    MessageSerializer,
    OtpSerializer,
    PayerSerializer,
    ProcessorChoiceSerializer,
    ProcessorSerializer,
)
from .throttling import OtpClientThrottle, OtpInvoiceThrottle, PayerThrottle, ReadThrottle

if TYPE_CHECKING:
    from drf_spectacular.openapi import AutoSchema as _AutoSchema

AutoSchema: type[_AutoSchema] | None
try:  # drf-spectacular is an optional extra: describe the views when it is there
    from drf_spectacular.openapi import AutoSchema
except ImportError:  # pragma: no cover - exercised when the extra is absent
    AutoSchema = None


class InvoiceView(APIView):
    permission_classes = [AllowAny]
    throttle_classes = [ReadThrottle]
    #: Where a provider's message without a field goes (e.g. "Invalid OTP." -> "otp").
    provider_field: str | None = None
    if AutoSchema is not None:
        schema = AutoSchema()

    def invoice(self) -> Invoice:
        return invoice_for(self.request, self.kwargs["token"])

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, InvoicePayError):
            return error_response(exc, field=self.provider_field)
        return super().handle_exception(exc)

    def answer(self, invoice: Invoice, *, code: int = status.HTTP_200_OK, **extra: Any) -> Response:
        return Response({**InvoiceSerializer(invoice).data, **extra}, status=code)

    def valid(self, serializer_class: type[BaseSerializer]) -> Any:
        """The request's data, validated by `serializer_class` (a 400 when it is not valid)."""
        serializer = serializer_class(data=self.request.data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data


class InvoiceDetail(InvoiceView):
    """The invoice as the payer sees it. `?refresh=1` syncs with the provider first."""

    serializer_class = InvoiceSerializer

    def get(self, request: Request, token: str) -> Response:
        invoice = self.invoice()
        if request.query_params.get("refresh") in {"1", "true"}:  # show what we know if that fails
            invoice = payments.mirror(invoice, lambda: sync(invoice, source="api"))
        return self.answer(invoice)


class ProcessorList(InvoiceView):
    serializer_class = ProcessorSerializer
    def get(self, request: Request, token: str) -> Response:
        return Response({"results": payments.payment_processors(self.invoice())})


class ProcessorChoice(InvoiceView):
    throttle_classes = [PayerThrottle]
    provider_field = "processor"
    serializer_class = ProcessorChoiceSerializer

    def post(self, request: Request, token: str) -> Response:
        invoice = self.invoice()
        data = self.valid(ProcessorChoiceSerializer)
        return self.answer(payments.choose_processor(invoice, data["processor"]))


class Payer(InvoiceView):
    throttle_classes = [PayerThrottle]
    serializer_class = PayerSerializer

    def post(self, request: Request, token: str) -> Response:
        invoice = self.invoice()
        data = self.valid(PayerSerializer)
        invoice = payments.set_payer(invoice, email=data["payer_email"], mobile_number=data["payer_mobile_number"])
        return self.answer(invoice, detail=_("We sent a code by SMS to the mobile number on your wallet."))


class Otp(InvoiceView):
    throttle_classes = [OtpClientThrottle, OtpInvoiceThrottle]
    provider_field = "otp"
    serializer_class = OtpSerializer

    def post(self, request: Request, token: str) -> Response:
        invoice = self.invoice()
        data = self.valid(OtpSerializer)  # the code's format is checked before any provider call
        return self.answer(payments.submit_otp(invoice, data["otp"]), detail=_("Payment accepted."))


class OtpResend(InvoiceView):
    throttle_classes = [PayerThrottle]
    serializer_class = MessageSerializer

    def post(self, request: Request, token: str) -> Response:
        payments.resend_otp(self.invoice())
        return Response({"detail": _("A new code is on its way.")})


class Renew(InvoiceView):
    """An expired invoice's renewal (created once): answers 201 with the new invoice and its token."""

    throttle_classes = [PayerThrottle]
    serializer_class = InvoiceSerializer

    def post(self, request: Request, token: str) -> Response:
        old = self.invoice()
        already = getattr(old, "renewed_by", None)
        new = renewals.renew(old)
        code = status.HTTP_200_OK if already else status.HTTP_201_CREATED
        return self.answer(invoice_for(request, new.public_token), code=code, detail=_("A new invoice was created."))
