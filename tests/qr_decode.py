"""Decode the QR code in an inline SVG made by segno: rasterise its run-length path, read it with zxing-cpp."""

from __future__ import annotations

import re

import zxingcpp
from PIL import Image, ImageDraw


def svg_modules(svg: str) -> set[tuple[int, int]]:
    """The dark modules of segno's path (`M x y`, relative `m dx dy`, horizontal runs `h n`)."""
    path = re.search(r'\sd="([^"]+)"', svg).group(1)
    x = y = 0.0
    dark: set[tuple[int, int]] = set()
    for command, args in re.findall(r"([MmHh])([^MmHh]*)", path):
        numbers = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", args)]
        if command == "M":
            x, y = numbers
        elif command == "m":
            x, y = x + numbers[0], y + numbers[1]
        else:
            length = numbers[0] if command == "h" else numbers[0] - x
            dark.update((int(x) + i, int(y)) for i in range(int(length)))
            x += length
    return dark


def decode_svg(svg: str, scale: int = 6) -> list[str]:
    dark = svg_modules(svg)
    size = max(max(c) for c in dark) + 5  # segno's path already sits inside a 4-module quiet zone
    image = Image.new("L", (size * scale, size * scale), 255)
    draw = ImageDraw.Draw(image)
    for cx, cy in dark:
        draw.rectangle([cx * scale, cy * scale, (cx + 1) * scale - 1, (cy + 1) * scale - 1], fill=0)
    return [result.text for result in zxingcpp.read_barcodes(image)]
