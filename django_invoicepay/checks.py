"""System checks for `INVOICEPAY`: say clearly what is missing or wrong, at start-up."""

from __future__ import annotations

import re
from numbers import Real
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.utils.module_loading import import_string

from .conf import DEFAULTS, INVOICE_STATUSES, NESTED, invoicepay_settings

ID = "invoicepay"


def _error(n: int, msg: str, hint: str = "") -> Error:
    return Error(msg, hint=hint or None, id=f"{ID}.E{n:03d}")


def _warning(n: int, msg: str, hint: str = "") -> Warning:
    return Warning(msg, hint=hint or None, id=f"{ID}.W{n:03d}")


def _check_url(name: str, url: object, sandbox: bool) -> list:
    if not isinstance(url, str) or not url:
        return [_error(4, f"INVOICEPAY {name} must be a URL.", "e.g. https://api.business.plue.io/api/")]
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        return [_error(4, f"INVOICEPAY {name} {url!r} has no http(s) scheme or host.",
                       "Write the full base URL, e.g. https://business.services.rehive.com/api/")]
    if parts.scheme == "http" and not sandbox and parts.hostname not in {"127.0.0.1", "localhost", "::1"}:
        return [_warning(2, f"INVOICEPAY {name} uses plain http: API keys would travel in clear.")]
    return []


@register(Tags.compatibility)
def check_settings(app_configs=None, **kwargs) -> list:
    raw = getattr(settings, "INVOICEPAY", {})
    if not isinstance(raw, dict):
        return [_error(1, "INVOICEPAY must be a dict.", "See the settings reference in the docs.")]
    messages: list = []
    for key in sorted(raw.keys() - DEFAULTS.keys()):
        messages.append(_warning(1, f"INVOICEPAY has an unknown key {key!r}.",
                                 f"Known keys: {', '.join(sorted(DEFAULTS))}."))
    s = invoicepay_settings
    sandbox = bool(s.SANDBOX)
    for name in NESTED:
        value = raw.get(name, {})
        if not isinstance(value, dict):
            messages.append(_error(1, f"INVOICEPAY[{name!r}] must be a dict."))
            return messages
        for key in sorted(value.keys() - DEFAULTS[name].keys()):
            messages.append(_warning(1, f"INVOICEPAY[{name!r}] has an unknown key {key!r}.",
                                     f"Known keys: {', '.join(sorted(DEFAULTS[name]))}."))
    rehive = s.REHIVE
    if not sandbox and not rehive.get("API_KEY"):
        messages.append(_error(2, "INVOICEPAY['REHIVE']['API_KEY'] is not set.",
                               "Set the business manager's API token, or SANDBOX: True for offline work."))
    if not sandbox and not rehive.get("BUSINESS_ID"):
        messages.append(_error(3, "INVOICEPAY['REHIVE']['BUSINESS_ID'] is not set.",
                               "Set your Rehive business id, or SANDBOX: True for offline work."))
    for key in ("BUSINESS_URL", "PAYMENT_REQUESTS_URL"):
        messages += _check_url(f"['REHIVE'][{key!r}]", rehive.get(key), sandbox)
    if not re.fullmatch(r"[a-z][a-z0-9+.-]*", str(rehive.get("QR_SCHEME") or "")):
        messages.append(_error(10, "INVOICEPAY['REHIVE']['QR_SCHEME'] is not a URI scheme.",
                               "Use lower case letters, e.g. 'rehive'."))
    messages += _check_order_states(s.ORDER_STATES)
    adapter = s.ORDER_ADAPTER
    if isinstance(adapter, str):
        try:
            import_string(adapter)
        except ImportError as exc:
            messages.append(_error(8, f"INVOICEPAY['ORDER_ADAPTER'] {adapter!r} cannot be imported: {exc}"))
    if not isinstance(s.ORDER_STATUS_FIELD, str) or not s.ORDER_STATUS_FIELD:
        messages.append(_error(9, "INVOICEPAY['ORDER_STATUS_FIELD'] must name a field of your order model."))
    timeout = s.HTTP_TIMEOUT
    if isinstance(timeout, bool) or not isinstance(timeout, Real) or timeout <= 0:
        messages.append(_error(11, "INVOICEPAY['HTTP_TIMEOUT'] must be a positive number of seconds."))
    retries = s.HTTP_MAX_RETRIES
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 10:
        messages.append(_error(12, "INVOICEPAY['HTTP_MAX_RETRIES'] must be an integer from 0 to 10."))
    for name in ("OTP_MAX_ATTEMPTS", "OTP_COOLDOWN"):
        value = getattr(s, name)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            messages.append(_error(15, f"INVOICEPAY[{name!r}] must be a positive integer."))
    rates = s.THROTTLE_RATES
    if not isinstance(rates, dict) or not all(
        rate is None or (isinstance(rate, str) and re.fullmatch(r"\d+/(s|sec|m|min|h|hour|d|day)\w*", rate))
        for rate in rates.values()
    ):
        messages.append(
            _error(16, "INVOICEPAY['THROTTLE_RATES'] must map 'otp', 'payer', 'read' to rates like '10/min'.")
        )
    onepipe = s.ONEPIPE
    if onepipe.get("MOCK_MODE") not in {"inspect", "live"}:
        messages.append(_error(13, "INVOICEPAY['ONEPIPE']['MOCK_MODE'] must be 'inspect' or 'live'."))
    if str(onepipe.get("SECURE_ENCODING", "")).lower() not in {"utf-16-le", "utf-8"}:
        messages.append(_error(14, "INVOICEPAY['ONEPIPE']['SECURE_ENCODING'] must be 'utf-16-le' or 'utf-8'."))
    if not sandbox and not rehive.get("WEBHOOK_SECRET"):
        messages.append(_warning(4, "INVOICEPAY['REHIVE']['WEBHOOK_SECRET'] is not set: every webhook will be refused.",
                                 "Set the secret you registered with the provider's webhooks."))
    if not sandbox and bool(onepipe.get("API_KEY")) != bool(onepipe.get("CLIENT_SECRET")):
        messages.append(_error(17, "INVOICEPAY['ONEPIPE'] needs both API_KEY and CLIENT_SECRET (or neither).",
                               "The client secret signs every request and encrypts card, account and OTP data."))
    allowed = onepipe.get("ALLOWED_AUTH_TYPES")
    if not isinstance(allowed, list | tuple) or not set(allowed) <= {"bank.account", "wallet", "card"}:
        messages.append(
            _error(18, "INVOICEPAY['ONEPIPE']['ALLOWED_AUTH_TYPES'] takes 'bank.account', 'wallet', 'card'.")
        )
    elif "card" in allowed:
        messages.append(_warning(5, "INVOICEPAY['ONEPIPE']['ALLOWED_AUTH_TYPES'] allows cards.",
                                 "Card numbers, CVVs and PINs pass through your server: PCI DSS scope."))
    if sandbox and not settings.DEBUG:
        messages.append(_warning(3, "INVOICEPAY['SANDBOX'] is on while DEBUG is off.",
                                 "The sandbox takes no real payments: turn it off in production."))
    return messages


def _check_order_states(states: object) -> list:
    if not isinstance(states, dict):
        return [_error(5, "INVOICEPAY['ORDER_STATES'] must map invoice statuses to order states.")]
    messages = []
    for key, value in states.items():
        if key not in INVOICE_STATUSES:
            messages.append(_error(6, f"INVOICEPAY['ORDER_STATES'] has an unknown invoice status {key!r}.",
                                   f"Invoice statuses: {', '.join(INVOICE_STATUSES)}."))
        if value is not None and (not isinstance(value, str) or not value):
            messages.append(_error(7, f"INVOICEPAY['ORDER_STATES'][{key!r}] must be a state name or None."))
    return messages
