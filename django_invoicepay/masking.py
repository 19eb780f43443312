"""Masked forms of personal and secret values, for anything shown or logged."""

from __future__ import annotations


class Redacted(str):
    """A secret string (an API key, an Authorization header) that is used as it is but never shown:
    its repr is masked, so tracebacks with local variables (Django's debug page, error e-mails) and
    reprs of the dicts that hold it do not print it."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'[redacted]'"


def mask(value: str, *, keep_last: int = 4, keep_first: int = 0, fill: str = "•") -> str:
    """'+27821234567' -> '+27•••••4567' (keep_first=3): never more than a few characters in clear."""
    value = str(value or "")
    if len(value) <= keep_last + keep_first:
        return fill * len(value)
    hidden = len(value) - keep_last - keep_first
    return value[:keep_first] + fill * hidden + (value[-keep_last:] if keep_last else "")


def mask_mobile(number: str) -> str:
    return mask(number, keep_first=3, keep_last=3)


def redact_secrets(text: str) -> str:
    """`text` (a traceback, an error) with every configured credential replaced by [redacted]."""
    from .conf import invoicepay_settings

    rehive, onepipe = invoicepay_settings.REHIVE, invoicepay_settings.ONEPIPE
    for secret in (rehive.get("API_KEY"), rehive.get("WEBHOOK_SECRET"), onepipe.get("API_KEY"),
                   onepipe.get("CLIENT_SECRET"), onepipe.get("WEBHOOK_TOKEN")):
        if secret and len(str(secret)) >= 4:
            text = text.replace(str(secret), "[redacted]")
    return text
