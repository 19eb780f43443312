"""Request validation and the payer's view of an invoice."""

from __future__ import annotations

import re
from typing import Any

from django.core.validators import validate_email
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from rest_framework import serializers

from ..conf import invoicepay_settings
from ..masking import mask_mobile
from ..models import Invoice, InvoiceStatus, InvoiceTransaction

OTP_PATTERN = re.compile(r"\d{4,8}")
INVOICE_STATUSES = ("The provider's status, passed through as it is (a new one may appear). Known: "
                    + ", ".join(InvoiceStatus.values) + ".")
NEXT_ACTIONS = ("What the payer can do now: choose_processor, scan_to_pay, submit_payer, submit_otp, resend_otp, "
                "pay_deposit, renew; empty when nothing is left to do.")


def next_actions(invoice: Invoice) -> list[str]:
    """What the payer can do now, for a UI to show the right controls."""
    if invoice.status == InvoiceStatus.EXPIRED:
        return [] if getattr(invoice, "renewed_by", None) else ["renew"]
    if invoice.is_final:
        return []
    if not invoice.primary_processor:
        return ["choose_processor"]
    actions = ["choose_processor"]
    if invoice.native_quote is not None:
        actions += ["scan_to_pay", "submit_payer"]
        if invoice.payer_email and invoice.payer_mobile_number:
            actions += ["submit_otp", "resend_otp"]
    elif invoice.primary_quote is not None:
        actions.append("pay_deposit")
    return actions


# -- answers: every field declared, so the OpenAPI schema (docs/reference/openapi.yaml) describes them --------


class BlankAsNullField(serializers.CharField):
    """A text the model keeps blank when there is none: `null` in the answer, so "none" reads the same everywhere."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_null=True, **kwargs)

    def to_representation(self, value: Any) -> str | None:  # type: ignore[override]  # null is the point
        return str(value) if value else None


class MaskedMobileField(BlankAsNullField):
    """The payer's mobile number, never in full (docs/security.md)."""

    def to_representation(self, value: Any) -> str | None:  # type: ignore[override]
        return mask_mobile(value) if value else None


class MoneySerializer(serializers.Serializer):
    """An amount: the exact decimal string, the integer minor units, the currency and its divisibility."""

    amount = serializers.CharField(source="decimal", help_text="The exact decimal amount, e.g. \"12.50\".")
    minor = serializers.IntegerField(source="amount", help_text="The amount in minor units, e.g. 1250.")
    currency = serializers.CharField()
    divisibility = serializers.IntegerField()
    display = serializers.CharField(source="*", help_text="For people, e.g. \"12.50 USD\".")

    def get_attribute(self, instance: Any) -> Any:
        """A `Money`, or minor units of the instance's own currency (a quote's totals)."""
        value = super().get_attribute(instance)
        return instance.as_money(value) if isinstance(value, int) else value


class QuoteSerializer(serializers.Serializer):
    processor = serializers.CharField()
    name = serializers.CharField(source="processor_name")
    type = serializers.CharField(source="processor_type")
    status = serializers.CharField()
    reference = serializers.CharField()
    deposit_details = serializers.JSONField(help_text="Where to send a deposit (bank account, crypto address...).")
    amount = MoneySerializer(source="money")
    total_paid = MoneySerializer()
    total_pending = MoneySerializer()


class PayerContactSerializer(serializers.Serializer):
    email = BlankAsNullField(source="payer_email")
    mobile_number = MaskedMobileField(source="payer_mobile_number")


class PendingTransactionSerializer(serializers.Serializer):
    hash = BlankAsNullField(source="tx_hash")
    confirmations = serializers.IntegerField(allow_null=True)
    amount = MoneySerializer(source="money")
    message = serializers.SerializerMethodField()

    def get_message(self, transaction: InvoiceTransaction) -> str:
        return _("Your payment has been detected and is waiting to be confirmed.")


class RefundSerializer(serializers.Serializer):
    amount = MoneySerializer(source="money")
    status = serializers.CharField()
    reason = serializers.CharField()


class InvoiceSerializer(serializers.Serializer):
    """The payer's view: never the payer's full mobile number, never provider internals."""

    token = serializers.CharField(source="public_token")
    reference = serializers.CharField()
    status = serializers.CharField(help_text=INVOICE_STATUSES)
    is_final = serializers.BooleanField()
    description = serializers.CharField()
    amount = MoneySerializer()
    primary_processor = BlankAsNullField()
    primary_quote = QuoteSerializer(allow_null=True)
    outstanding = MoneySerializer(source="outstanding_money")
    overpaid_by = MoneySerializer(source="overpaid_money")
    scan_to_pay_uri = serializers.CharField(allow_null=True, help_text="Null without a native quote in processing.")
    payer = PayerContactSerializer(source="*")
    expires_at = serializers.DateTimeField(format=None, allow_null=True)  # as stored, rendered by the JSON encoder
    redirect_url = BlankAsNullField()
    pending_transactions = PendingTransactionSerializer(many=True)
    refunds = RefundSerializer(many=True)
    renewed_by = serializers.CharField(source="renewed_by.public_token", allow_null=True,
                                       help_text="The token of the invoice that replaced this expired one.")
    next_actions = serializers.SerializerMethodField(help_text=NEXT_ACTIONS)

    def get_next_actions(self, invoice: Invoice) -> list[str]:
        return next_actions(invoice)


class InvoiceMessageSerializer(InvoiceSerializer):
    """The invoice after an action, with a message for the payer (the view gives it in the context)."""

    detail = serializers.SerializerMethodField()

    def get_detail(self, invoice: Invoice) -> str:
        return str(self.context["detail"])


class ProcessorSerializer(serializers.Serializer):
    processor = serializers.CharField()
    name = serializers.CharField()
    type = serializers.CharField()
    description = serializers.CharField()


class ProcessorListSerializer(serializers.Serializer):
    results = ProcessorSerializer(many=True)


class MessageSerializer(serializers.Serializer):
    detail = serializers.CharField()


class ErrorSerializer(MessageSerializer):
    """The error envelope (docs/api.md, "Errors"): `code` never changes with the language."""

    code = serializers.CharField(required=False, help_text="e.g. invoice_closed, otp_in_progress, otp_locked, "
                                 "provider_unavailable, provider_rejected, not_configured.")
    retry_after = serializers.IntegerField(required=False, help_text="Seconds, with provider_unavailable.")


#: A 400's body: field errors, nested like the request, or the error envelope (a raw schema: its keys are the
#: request's field names).
BAD_REQUEST_SCHEMA = {
    "type": "object",
    "properties": {
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "non_field_errors": {"type": "array", "items": {"type": "string"}},
    },
    "additionalProperties": {
        "oneOf": [{"type": "array", "items": {"type": "string"}}, {"type": "object"}],
    },
}


class ProcessorChoiceSerializer(serializers.Serializer):
    processor = serializers.RegexField(
        r"^[A-Za-z0-9_.-]{1,100}$",
        error_messages={"invalid": gettext_lazy("Choose one of the listed payment methods.")},
    )


class PayerSerializer(serializers.Serializer):
    payer_email = serializers.CharField(max_length=254, trim_whitespace=True)
    payer_mobile_number = serializers.CharField(max_length=32, trim_whitespace=True)

    def validate_payer_email(self, value: str) -> str:
        try:
            validate_email(value)
        except Exception:  # noqa: BLE001 - Django's ValidationError; give the API's message
            raise serializers.ValidationError(_("Enter a valid email address.")) from None
        return value

    def validate_payer_mobile_number(self, value: str) -> str:
        import phonenumbers  # on first use: loading its metadata costs start-up time and memory

        message = _("Enter the mobile number registered on your wallet, in international format, e.g. +27821234567.")
        try:
            number = phonenumbers.parse(value, invoicepay_settings.PHONE_REGION)
        except phonenumbers.NumberParseException:
            raise serializers.ValidationError(message) from None
        if not phonenumbers.is_valid_number(number):
            raise serializers.ValidationError(message)
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


class OtpSerializer(serializers.Serializer):
    otp = serializers.CharField(max_length=16, trim_whitespace=True)

    def validate_otp(self, value: str) -> str:
        code = value.replace(" ", "")
        if not OTP_PATTERN.fullmatch(code):
            raise serializers.ValidationError(_("Enter the code from the SMS: 4 to 8 digits."))
        return code
