"""Untrusted webhook bodies: read within a size limit, parse within a depth limit, mask for storage.

A body is attacker-controlled until its delivery is authenticated, and OnePipe's notifications are
never authenticated by OnePipe itself. So: a body over WEBHOOK_MAX_BYTES is refused with 413 before
it is read whole; JSON nested deeper than WEBHOOK_MAX_DEPTH is refused with 400 (Python's parser
would otherwise recurse until RecursionError); and a body kept for an event the shop ignores is
stored with its personal fields masked.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest

from ..conf import invoicepay_settings
from ..masking import mask


class BodyRefused(Exception):
    """The body cannot be accepted: `status` (413 or 400) and a message for the sender."""

    def __init__(self, status: int, message: str) -> None:
        self.status, self.message = status, message
        super().__init__(message)


def read(request: HttpRequest) -> bytes:
    """The request body, or BodyRefused(413) when it is over WEBHOOK_MAX_BYTES (checked before reading)."""
    limit = int(invoicepay_settings.WEBHOOK_MAX_BYTES)
    too_big = BodyRefused(413, f"The body is larger than {limit} bytes.")
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise too_big
    try:
        body = request.body
    except RequestDataTooBig:  # over Django's DATA_UPLOAD_MAX_MEMORY_SIZE
        raise too_big from None
    if len(body) > limit:
        raise too_big
    return body


def depth(text: str) -> int:
    """How deeply arrays and objects nest in JSON `text`, counted without recursion (strings skipped)."""
    deepest = level = 0
    for token in re.finditer(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', text):
        char = token.group()
        if char in "[{":
            level += 1
            deepest = max(deepest, level)
        elif char in "]}":
            level -= 1
    return deepest


def parse(text: str) -> dict[str, Any]:
    """A JSON object, or BodyRefused(400) for anything else (not JSON, not an object, nested too deeply)."""
    limit = int(invoicepay_settings.WEBHOOK_MAX_DEPTH)
    if depth(text) > limit:
        raise BodyRefused(400, f"The body is nested more than {limit} levels deep.")
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError):
        payload = None
    if not isinstance(payload, dict):
        raise BodyRefused(400, "The body is not a JSON object.")
    return payload


#: Key parts (split on "_" and "-") whose values are personal or secret, wherever they appear in a body.
PERSONAL = frozenset({"email", "mobile", "phone", "msisdn", "name", "firstname", "surname", "lastname", "address",
                      "otp", "pin", "cvv", "pan", "account", "card", "bvn", "nin", "token", "secret", "password",
                      "birth", "dob", "iban"})


def personal(key: str) -> bool:
    return any(part in PERSONAL for part in re.split(r"[_\-\s.]+", key.lower()))


def masked(value: Any, key: str = "") -> Any:
    """`value` with the values of personal keys masked, keeping the shape (for bodies of ignored events)."""
    if isinstance(value, dict):
        return {k: masked(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v, key) for v in value]
    if key and personal(key) and value not in (None, "", [], {}):
        text = str(value)
        return mask(text, keep_last=2 if len(text) > 8 else 0)
    return value


def masked_text(text: str, *, indent: int | None = None) -> str:
    """A stored body, its personal fields masked ("" for a body that is not JSON: nothing of it is kept)."""
    try:
        return json.dumps(masked(json.loads(text)), ensure_ascii=False, indent=indent)
    except (ValueError, RecursionError):
        return ""
