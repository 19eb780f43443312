"""Hold funds through OnePipe: consent (with OTP), place, release, refresh. The only code that
changes consents and holds.

Credentials (card and account numbers, PINs, CVVs), OTPs and provider tokens are encrypted into
`secure` the moment they arrive and never stored or logged in clear; a consent keeps only a
masked identifier, and its provider token sealed with the shop's SECRET_KEY.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from .. import leases
from ..clients import OnePipeConfig, onepipe_client
from ..conf import invoicepay_settings
from ..errors import HoldError, ProviderUnavailable
from ..masking import mask
from ..models import ConsentStatusChange, Hold, HoldConsent, HoldStatusChange
from ..money import whole_minor_units
from ..onepipe import OnePipeResult, encrypt_secure
from ..onepipe import secure as plaintexts
from ..onepipe.client import parse_expiry
from ..reconnect import on_fresh_connection
from ..vault import seal, unseal
from . import announcements
from . import otp as otp_guard

logger = logging.getLogger("django_invoicepay.holds")
REQUEST_TYPE = "hold_funds"
#: auth.type -> (the fields it needs, how they become the plaintext, the identifier to mask)
CREDENTIALS: dict[str, tuple[tuple[str, ...], Callable[..., str], str]] = {
    "bank.account": (("account_number", "bank_code"), plaintexts.bank_account_plaintext, "account_number"),
    "wallet": (("wallet_number", "provider_code"), plaintexts.wallet_plaintext, "wallet_number"),
    "card": (("pan", "cvv", "expiry", "pin"), plaintexts.card_plaintext, "pan"),
}


def _secure(plaintext: str) -> str:
    config = OnePipeConfig.from_settings()
    return encrypt_secure(plaintext, config.client_secret, encoding=config.encoding)


def _redacted(result: OnePipeResult) -> dict:
    """The answer as stored: without the provider token (which is sealed separately)."""
    raw = dict(result.raw)
    data = dict(raw.get("data") or {})
    if isinstance(data.get("provider_response"), dict):
        data["provider_response"] = {k: v for k, v in data["provider_response"].items() if k != "provider_token"}
    raw["data"] = data
    return raw


def _hold_amount(amount: Any) -> int:
    """The amount as given; for anything but a positive int, a HoldError: what the API shows the payer."""
    try:
        return whole_minor_units(amount, minimum=1)
    except (TypeError, ValueError):
        raise HoldError(_("The amount must be a positive whole number of minor units (kobo)."), code="amount") from None


# -- consent ---------------------------------------------------------------------------------------


def request_consent(
    *,
    auth_type: str,
    credentials: Mapping[str, str],
    customer: Mapping[str, str],
    amount: int = 100,
    order: models.Model | None = None,
    description: str = "Consent to hold funds",
    owner: Any = None,
) -> HoldConsent:
    """Ask the customer's provider for consent with a small hold; usually answered with an OTP prompt.

    `owner` (a user) is who may see and confirm it through the API; None for a guest's consent.

    Returns the consent, waiting for an OTP (`waiting_for_otp`) or for the information in its
    `prompt` (`pending_validation`), or already `active`. Raises HoldError when refused.
    """
    allowed = invoicepay_settings.ONEPIPE["ALLOWED_AUTH_TYPES"]
    if auth_type not in CREDENTIALS or auth_type not in allowed:
        raise HoldError(_("%(auth_type)s is not accepted here; use one of: %(choices)s.")
                        % {"auth_type": repr(auth_type), "choices": ", ".join(allowed)}, code="auth_type")
    fields, build, identifier = CREDENTIALS[auth_type]
    missing = [name for name in fields if not str(credentials.get(name) or "").strip()]
    if missing:
        raise HoldError(_("Missing: %(fields)s.") % {"fields": ", ".join(missing)}, code="credentials")
    secure = _secure(build(*(str(credentials[name]).strip() for name in fields)))
    masked = mask(str(credentials[identifier]).strip(), keep_last=4)
    consent = _new_consent(auth_type=auth_type, masked_identifier=masked, amount=_hold_amount(amount),
                           customer=customer, order=order, owner=owner)
    details = {"otp_override": True} if invoicepay_settings.ONEPIPE["OTP_OVERRIDE"] else None
    try:
        result = onepipe_client().transact(
            request_type=REQUEST_TYPE, auth_type=auth_type, secure=secure, transaction_ref=consent.transaction_ref,
            amount=consent.amount, customer=_customer(consent), description=description, details=details,
        )
    except ProviderUnavailable as exc:
        HoldConsent.objects.filter(pk=consent.pk).update(error=exc.message[:255])
        raise
    return _apply_consent(consent, result)


def _new_consent(*, customer: Mapping[str, str], order: models.Model | None, **fields: Any) -> HoldConsent:
    """The consent row and the first row of its history, in one transaction."""
    with transaction.atomic():
        consent = HoldConsent.objects.create(
            transaction_ref=f"consent-{uuid.uuid4().hex[:24]}",
            customer_ref=str(customer.get("customer_ref") or ""),
            customer_firstname=str(customer.get("firstname") or ""),
            customer_surname=str(customer.get("surname") or ""), customer_email=str(customer.get("email") or ""),
            customer_mobile=str(customer.get("mobile_no") or ""),
            content_type=ContentType.objects.get_for_model(order) if order is not None else None,
            object_id=str(order.pk) if order is not None else "", **fields,
        )
        ConsentStatusChange.objects.create(  # the shop asked for it: nothing to announce
            consent=consent, from_status="", to_status=consent.status, source="create", announced_at=timezone.now())
    return consent


def _customer(consent: HoldConsent) -> dict:
    return {"customer_ref": consent.customer_ref or consent.public_token[:20], "firstname": consent.customer_firstname,
            "surname": consent.customer_surname, "email": consent.customer_email,
            "mobile_no": consent.customer_mobile}


def confirm_consent(consent: HoldConsent, otp: str) -> HoldConsent:
    """Give the OTP (or the information a PendingValidation asked for). On success the provider token is
    sealed and stored with its expiry. A wrong answer leaves the consent waiting; HoldError says why.

    One code at a time per consent (OtpBusy meanwhile), wrong codes counted and locked out like an
    invoice's (`django_invoicepay.services.otp`).
    """
    with otp_guard.checking(consent) as attempt:
        consent.refresh_from_db()
        if consent.status not in {HoldConsent.Status.WAITING_FOR_OTP, HoldConsent.Status.PENDING_VALIDATION}:
            attempt.not_counted()
            raise HoldError(_("This consent is %(status)s: there is nothing to confirm.")
                            % {"status": consent.get_status_display()}, code="state")
        try:
            result = onepipe_client().validate(request_type=REQUEST_TYPE, transaction_ref=consent.transaction_ref,
                                               secure=_secure(plaintexts.otp_plaintext(str(otp).strip())))
        except ProviderUnavailable:
            attempt.not_counted()
            raise
        if result.outcome == "Failed":
            attempt.wrong()
        else:
            attempt.accepted()
        return _apply_consent(consent, result, keep_waiting=True)


def _apply_consent(consent: HoldConsent, result: OnePipeResult, *, keep_waiting: bool = False,
                   source: str = "api") -> HoldConsent:
    """Apply the provider's answer under the consent's row lock: one `ConsentStatusChange` per real
    transition, whose `consent_status_changed` goes out after commit. Active and failed are final."""
    changes: dict[str, Any] = {}
    outcome = result.outcome
    if outcome == "WaitingForOTP":
        changes.update(status=HoldConsent.Status.WAITING_FOR_OTP, prompt=result.message[:255], error="")
    elif outcome == "PendingValidation":
        changes.update(status=HoldConsent.Status.PENDING_VALIDATION, prompt=result.message[:255], error="")
    elif outcome == "Successful":
        token = str(result.provider_response.get("provider_token") or "")
        changes.update(status=HoldConsent.Status.ACTIVE, prompt="", error="", token_sealed=seal(token),
                       token_expires_at=parse_expiry(result.provider_response.get("token_expiry")))
    else:
        changes.update(error=result.reason[:255])
        if not keep_waiting:
            changes["status"] = HoldConsent.Status.FAILED
    with transaction.atomic():
        locked = HoldConsent.objects.select_for_update().get(pk=consent.pk)
        old = locked.status
        if locked.is_final and changes.get("status", old) != old:
            logger.info("Consent %s stays %s (an answer said %s)", locked.pk, old, outcome)
            changes = {}
        changes["raw"] = [*locked.raw, _redacted(result)][-10:]
        for name, value in changes.items():
            setattr(locked, name, value)
        locked.save(update_fields=[*changes, "updated_at"])
        if locked.status != old:
            ConsentStatusChange.objects.create(consent=locked, from_status=old, to_status=locked.status, source=source)
            announcements.announce_on_commit(announcements.CONSENTS, locked)
    consent.refresh_from_db()
    logger.info("Consent %s (%s %s): %s", consent.pk, consent.auth_type, consent.masked_identifier, outcome)
    if outcome == "Failed":
        raise HoldError(result.reason, code=result.code)
    return consent


# -- holds -----------------------------------------------------------------------------------------


def _transition(hold: Hold, status: str, *, answer: OnePipeResult | None = None, source: str = "",
                **fields: Any) -> Hold:
    """Change a hold under its row lock, only forward (`Hold.can_become`): a late or stale answer never
    moves a released, expired or failed hold back. One `HoldStatusChange` per real transition, whose
    `hold_status_changed` goes out after commit (`announcements`)."""
    with transaction.atomic():
        locked = Hold.objects.select_for_update().get(pk=hold.pk)
        old = locked.status
        if not locked.can_become(status):
            logger.info("Hold %s stays %s (an answer said %s)", locked.pk, old, status)
            return locked
        for name, value in {"status": status, **fields}.items():
            setattr(locked, name, value)
        if answer is not None:
            locked.raw = [*locked.raw, _redacted(answer)][-10:]
        locked.save()
        if old != status:
            HoldStatusChange.objects.create(hold=locked, from_status=old, to_status=status, source=source or "api")
            logger.info("Hold %s: %s -> %s", locked.pk, old, status)
            announcements.announce_on_commit(announcements.HOLDS, locked)
    return locked


def place_hold(consent: HoldConsent, amount: int, *, description: str = "") -> Hold:
    """Hold `amount` (minor units) of the customer's money with their consent. HoldError when refused:
    an expired or unusable consent, insufficient funds (code 51), a duplicate (code 94)..."""
    amount = _hold_amount(amount)
    consent.refresh_from_db()
    if not consent.is_usable:
        if consent.status == HoldConsent.Status.ACTIVE:
            raise HoldError(_("The customer's consent has expired: ask for it again."), code="expired")
        raise HoldError(_("There is no active consent to hold funds with."), code="state")
    hold = Hold.objects.create(consent=consent, amount=amount, currency_code=consent.currency_code,
                               currency_divisibility=consent.currency_divisibility, description=description[:255],
                               transaction_ref=f"hold-{uuid.uuid4().hex[:24]}")
    secure = _secure(plaintexts.provider_token_plaintext(unseal(consent.token_sealed)))
    try:
        result = onepipe_client().transact(
            request_type=REQUEST_TYPE, auth_type="provider_token", secure=secure, transaction_ref=hold.transaction_ref,
            amount=amount, customer=_customer(consent), description=description,
        )
    except ProviderUnavailable as exc:
        Hold.objects.filter(pk=hold.pk).update(error=exc.message[:255])  # pending: refresh_hold finds out
        raise
    if result.undecided:  # in progress or timed out at OnePipe: stays pending, a refresh settles it
        Hold.objects.filter(pk=hold.pk).update(error=result.reason[:255])
        raise HoldError(result.reason, code=result.code)
    if not result.successful:
        _transition(hold, Hold.Status.FAILED, answer=result, source="place", error=result.reason[:255])
        raise HoldError(result.reason, code=result.code)
    return _transition(hold, Hold.Status.PLACED, answer=result, source="place", error="",
                       hold_expires_at=parse_expiry(result.provider_response.get("hold_expiry")),
                       provider_reference=str(result.provider_response.get("reference") or "")[:100])


def release_hold(hold: Hold) -> Hold:
    """Give the money back (reverse). Idempotent, and safe however many callers release at once:
    one takes the hold's release lease and calls the provider; the others wait for its outcome."""
    rows = Hold.objects.filter(pk=hold.pk, status__in=[Hold.Status.PLACED, Hold.Status.PENDING])
    if not leases.take(rows, "releasing_until", leases.provider_call_budget(1)):
        return _await_release(hold)
    try:
        result = onepipe_client().reverse(request_type=REQUEST_TYPE, transaction_ref=hold.transaction_ref)
        if not result.successful:
            Hold.objects.filter(pk=hold.pk).update(error=result.reason[:255])
            raise HoldError(result.reason, code=result.code)
        return _transition(hold, Hold.Status.RELEASED, answer=result, source="release", error="")
    finally:
        on_fresh_connection(lambda: Hold.objects.filter(pk=hold.pk).update(releasing_until=None))


def _await_release(hold: Hold) -> Hold:
    """Another caller is releasing this hold (or it is not releasable): wait for that outcome."""
    deadline = time.monotonic() + leases.provider_call_budget(1)
    while True:
        hold.refresh_from_db()
        if hold.status == Hold.Status.RELEASED:
            return hold
        if hold.status not in {Hold.Status.PLACED, Hold.Status.PENDING}:
            raise HoldError(_("A %(status)s hold cannot be released.") % {"status": hold.get_status_display()},
                            code="state")
        if not leases.seconds_left(hold.releasing_until):  # the other release failed: say why
            raise HoldError(hold.error or _("The hold could not be released; try again."), code="release_failed")
        if time.monotonic() > deadline:
            raise HoldError(_("The hold is being released; check again in a moment."), code="busy")
        time.sleep(0.05)


def refresh_hold(hold: Hold, *, source: str = "refresh") -> Hold:
    """Ask the provider (transact/query) and apply; a placed hold past its expiry becomes expired.

    Concurrent refreshes, notifications and releases converge: each applies the answer it read under
    the row lock, and a hold only moves forward.
    """
    hold.refresh_from_db()
    if hold.is_final:
        return hold
    result = onepipe_client().query(request_type=REQUEST_TYPE, transaction_ref=hold.transaction_ref)
    status = _status_from_query(hold, result)
    expiry = parse_expiry(result.provider_response.get("hold_expiry")) or hold.hold_expires_at
    if status == Hold.Status.PLACED and expiry and expiry <= timezone.now():
        status = Hold.Status.EXPIRED
    return _transition(hold, status, answer=result, source=source, hold_expires_at=expiry)


def _status_from_query(hold: Hold, result: OnePipeResult) -> str:
    """What a transact/query answer says of the hold. Only the transaction's own status decides; an
    answer that is itself a failure (in progress, a timeout, an error) leaves the hold as it is. A
    transaction OnePipe never saw ("Failed" for a pending hold) did not happen."""
    state = str(result.provider_response.get("transaction_status") or "")
    if not state and result.successful:
        state = "Successful"
    if result.undecided or not state:
        if hold.status == Hold.Status.PENDING and result.outcome == "Failed" and not result.undecided:
            return Hold.Status.FAILED
        return hold.status
    if state == "Failed" and hold.status != Hold.Status.PENDING:
        return hold.status  # a placed hold is only ever released or expired; never lost to a failed answer
    return {"Successful": Hold.Status.PLACED, "Reversed": Hold.Status.RELEASED,
            "Failed": Hold.Status.FAILED}.get(state, hold.status)


def refresh_open_holds() -> dict[str, int]:
    """For polling: refresh pending and placed holds, marking expired ones. Returns counts by outcome."""
    counts: dict[str, int] = {}
    for hold in Hold.objects.filter(status__in=[Hold.Status.PENDING, Hold.Status.PLACED]).order_by("pk"):
        try:
            status = refresh_hold(hold, source="poll").status
        except Exception:  # noqa: BLE001 - one hold's failure never stops the others
            logger.exception("Refreshing hold %s failed", hold.pk)
            status = "failed to refresh"
        counts[status] = counts.get(status, 0) + 1
    return counts


def options() -> dict:
    """What the provider offers for hold funds (`transact/options`)."""
    return onepipe_client().options(request_type=REQUEST_TYPE).provider_response
