"""QR codes as inline SVG (segno, no network, no JavaScript), cached by their content.

A QR code is a pure function of its URI and options, so the rendered SVG is cached
under a hash of both: the same URI always renders the same SVG, from the cache after
the first time.
"""

from __future__ import annotations

import hashlib
import logging

import segno
from django.core.cache import cache
from django.utils.html import escape

logger = logging.getLogger("django_invoicepay.qr")
CACHE_PREFIX = "invoicepay:qr:"
CACHE_SECONDS = 24 * 3600


def cache_key(data: str, scale: int, label: str) -> str:
    digest = hashlib.sha256(f"{scale}\x00{label}\x00{data}".encode()).hexdigest()
    return CACHE_PREFIX + digest


def qr_svg(data: str, *, scale: int = 4, label: str = "") -> str:
    """An accessible inline `<svg>` of `data`: role="img" with `label` as its accessible name."""
    key = cache_key(data, scale, label)
    svg = _cached(key)
    if svg is None:
        code = segno.make(data, error="m", micro=False)
        svg = code.svg_inline(scale=scale, title=label or None, svgclass="invoicepay-qr", lineclass=None)
        svg = svg.replace("<svg ", f'<svg role="img" aria-label="{escape(label)}" ', 1)
        _keep(key, svg)
    return svg


def _cached(key: str) -> str | None:
    """The cached drawing, or None (also when the cache is down: the page is drawn without it, not a 500)."""
    try:
        return cache.get(key)
    except Exception as exc:  # noqa: BLE001 - any cache backend's outage (Redis ConnectionError, ...)
        logger.warning("The cache is unavailable for QR codes (%s); drawing without it", type(exc).__name__)
        return None


def _keep(key: str, svg: str) -> None:
    try:
        cache.set(key, svg, CACHE_SECONDS)
    except Exception:  # noqa: BLE001,S110 - drawn again next time; _cached has logged the outage
        pass
