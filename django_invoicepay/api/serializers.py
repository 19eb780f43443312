"""Request validation and the payer's view of an invoice."""

from __future__ import annotations

import re

import phonenumbers
from django.core.validators import validate_email
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from rest_framework import serializers

from ..conf import invoicepay_settings
from ..masking import mask_mobile
from ..models import Invoice, Quote
from ..money import Money

OTP_PATTERN = re.compile(r"\d{4,8}")


def money(value: Money) -> dict:
    return {
        "amount": str(value.decimal),
        "minor": value.amount,
        "currency": value.currency,
        "divisibility": value.divisibility,
        "display": str(value),
    }


def next_actions(invoice: Invoice) -> list[str]:
    """What the payer can do now, for a UI to show the right controls."""
    if invoice.status == "expired":
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


class QuoteSerializer(serializers.Serializer):
    def to_representation(self, quote: Quote) -> dict:
        return {
            "processor": quote.processor,
            "name": quote.processor_name,
            "type": quote.processor_type,
            "status": quote.status,
            "reference": quote.reference,
            "deposit_details": quote.deposit_details,
            "amount": money(quote.money),
            "total_paid": money(quote.as_money(quote.total_paid)),
            "total_pending": money(quote.as_money(quote.total_pending)),
        }


class InvoiceSerializer(serializers.Serializer):
    """The payer's view: never the payer's full mobile number, never provider internals."""

    def to_representation(self, invoice: Invoice) -> dict:
        quote = invoice.primary_quote
        return {
            "token": invoice.public_token,
            "reference": invoice.reference,
            "status": invoice.status,
            "is_final": invoice.is_final,
            "description": invoice.description,
            "amount": money(invoice.amount),
            "primary_processor": invoice.primary_processor or None,
            "primary_quote": QuoteSerializer(quote).data if quote else None,
            "outstanding": money(invoice.outstanding_money),
            "overpaid_by": money(invoice.overpaid_money),
            "scan_to_pay_uri": invoice.scan_to_pay_uri(),
            "payer": {
                "email": invoice.payer_email or None,
                "mobile_number": mask_mobile(invoice.payer_mobile_number) if invoice.payer_mobile_number else None,
            },
            "expires_at": invoice.expires_at,
            "redirect_url": invoice.redirect_url or None,
            "pending_transactions": [
                {
                    "hash": tx.tx_hash or None,
                    "confirmations": tx.confirmations,
                    "amount": money(tx.money),
                    "message": _("Your payment has been detected and is waiting to be confirmed."),
                }
                for tx in invoice.pending_transactions
            ],
            "refunds": [
                {"amount": money(refund.money), "status": refund.status, "reason": refund.reason}
                for refund in invoice.refunds.all()
            ],
            "renewed_by": getattr(getattr(invoice, "renewed_by", None), "public_token", None),
            "next_actions": next_actions(invoice),
        }


class ProcessorSerializer(serializers.Serializer):
    processor = serializers.CharField()
    name = serializers.CharField()
    type = serializers.CharField()
    description = serializers.CharField()


class MessageSerializer(serializers.Serializer):
    detail = serializers.CharField()


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
