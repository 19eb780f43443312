"""QR codes as inline SVG (segno, no network, no JavaScript), cached by their content.

A QR code is a pure function of its URI and options, so the rendered SVG is cached
under a hash of both: the same URI always renders the same SVG, from the cache after
the first time.
"""

from __future__ import annotations

import hashlib

import segno
from django.core.cache import cache
from django.utils.html import escape

CACHE_PREFIX = "invoicepay:qr:"
CACHE_SECONDS = 24 * 3600


def cache_key(data: str, scale: int, label: str) -> str:
    digest = hashlib.sha256(f"{scale}\x00{label}\x00{data}".encode()).hexdigest()
    return CACHE_PREFIX + digest


def qr_svg(data: str, *, scale: int = 4, label: str = "") -> str:
    """An accessible inline `<svg>` of `data`: role="img" with `label` as its accessible name."""
    key = cache_key(data, scale, label)
    svg = cache.get(key)
    if svg is None:
        code = segno.make(data, error="m", micro=False)
        svg = code.svg_inline(scale=scale, title=label or None, svgclass="invoicepay-qr", lineclass=None)
        svg = svg.replace("<svg ", f'<svg role="img" aria-label="{escape(label)}" ', 1)
        cache.set(key, svg, CACHE_SECONDS)
    return svg
