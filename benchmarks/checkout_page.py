#!/usr/bin/env python3
"""Checkout page benchmark: the example shop's pay page with and without django-invoicepay's tags.

The page is example_project's `shop:pay` view (shop/templates/shop/pay.html), rendered through
Django's test Client with the example shop's own settings (DEBUG off, a freshly migrated SQLite temp
file, the sandbox in a temp file). Its invoices are made the way a person makes them in the shop:
POST "Create invoice", then the sandbox panel's "Choose wallet" (the page then shows the Scan to Pay
QR, `{% invoicepay_qr %}`) or "Choose bank transfer" (the deposit details, `{% invoicepay_deposit %}`).

Variants, all from the same template loader chain (cached loader over a locmem copy of pay.html,
then the apps' templates):
  with       pay.html as shipped: `invoicepay_attrs`, `invoicepay_qr` or `invoicepay_deposit`,
             `invoicepay_scripts` and the `invoicepay_status` filter;
  without    the same text with every invoicepay tag and filter removed (built here at run time
             from the real file), so the difference is what the tags cost;
  with-cold  as `with`, with Django's cache off (DummyCache): the QR's SVG is made on every request.

Per page and variant: SQL queries of one request (CaptureQueriesContext), response bytes, and the
wall-clock time of N requests (default 200, after 20 warm-up requests), in rounds that alternate the
variants so a noisy machine hurts them alike; mean, p50 and p95 as benchmarks/intake.py computes them.

    .venv/bin/python benchmarks/checkout_page.py
    .venv/bin/python benchmarks/checkout_page.py --n 50 --rounds 2      # smoke run
    .venv/bin/python benchmarks/checkout_page.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHOP = REPO / "example_project"
PAY_TEMPLATE = SHOP / "shop" / "templates" / "shop" / "pay.html"
PAGES = {  # page: (the shop's sandbox action, what the tags render on it, text only the tag renders)
    "wallet": ("choose_native", "Scan to Pay QR", "<svg"),
    "bank": ("choose_bank", "deposit details", "62012345678"),
}
VARIANTS = ("with", "without", "with-cold")
_TAG = re.compile(r"\{%\s*(?:load\s+invoicepay|invoicepay_\w+)\b[^%]*%\}\n?")
_FILTER = re.compile(r"""\|invoicepay_\w+(?::(?:"[^"]*"|'[^']*'|[\w.]+))?""")


def without_tags(source: str) -> str:
    """pay.html with `{% load invoicepay %}`, every `{% invoicepay_... %}` and `|invoicepay_...` removed."""
    stripped = _FILTER.sub("", _TAG.sub("", source))
    if "invoicepay_" in stripped or "{% load invoicepay" in stripped:
        raise SystemExit("an invoicepay tag survived the stripping: update benchmarks/checkout_page.py")
    return stripped


def templates(pay_source: str) -> list[dict[str, Any]]:
    """The example shop's TEMPLATES, with shop/pay.html served from `pay_source`."""
    from demo import settings as shop

    base: dict[str, Any] = shop.TEMPLATES[0]
    loaders = [("django.template.loaders.locmem.Loader", {"shop/pay.html": pay_source}),
               "django.template.loaders.app_directories.Loader"]
    options = {**base["OPTIONS"], "loaders": [("django.template.loaders.cached.Loader", loaders)]}
    return [{**base, "APP_DIRS": False, "OPTIONS": options}]


def configure_django(db_path: str, sandbox_path: str) -> None:
    """The example shop's settings (demo/settings.py), DEBUG off, on temp files."""
    sys.path.insert(0, str(SHOP))
    import django
    from demo import settings as shop
    from django.conf import settings

    values = {name: getattr(shop, name) for name in dir(shop) if name.isupper()}
    values.update(
        DEBUG=False,
        ALLOWED_HOSTS=["testserver"],
        DATABASES={"default": {**shop.DATABASES["default"], "NAME": db_path}},
        INVOICEPAY={**shop.INVOICEPAY, "SANDBOX_STATE_FILE": sandbox_path},
        TEMPLATES=templates(PAY_TEMPLATE.read_text()),
        LOGGING={"version": 1, "disable_existing_loggers": False,
                 "loggers": {"django_invoicepay": {"level": "WARNING"}}},
    )
    settings.configure(**values)
    django.setup()


@contextmanager
def variant(name: str) -> Iterator[None]:
    """Settings of one variant (override_settings resets the template engines and caches)."""
    from django.test.utils import override_settings

    source = PAY_TEMPLATE.read_text()
    changes: dict[str, Any] = {"TEMPLATES": templates(without_tags(source) if name == "without" else source)}
    if name == "with-cold":
        changes["CACHES"] = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
    with override_settings(**changes):
        yield


def make_pages(client: Any) -> dict[str, str]:
    """One order per page, invoiced and given its payment method through the shop's own pages."""
    from shop.models import Order

    from django_invoicepay.models import Invoice

    urls = {}
    for page, (action, _, _) in PAGES.items():
        order = Order.objects.create(description=f"Bench {page}", total=1250)
        for path, data in ((f"/orders/{order.pk}/invoice/", {}), (f"/orders/{order.pk}/sandbox/", {"action": action})):
            if client.post(path, data).status_code != 302:
                raise RuntimeError(f"POST {path} {data} did not redirect")
        invoice = Invoice.objects.for_order(order).get()
        urls[page] = f"/pay/{invoice.public_token}/"
    return urls


def get(client: Any, url: str) -> Any:
    response = client.get(url)
    if response.status_code != 200:
        raise RuntimeError(f"GET {url}: HTTP {response.status_code}")
    return response


def probe(client: Any, url: str, page: str, name: str) -> dict[str, Any]:
    """Queries and bytes of one request, and a check that the tags rendered (or did not)."""
    import intake
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        content = get(client, url).content
    marker = PAGES[page][2].encode()
    if (marker in content) != (name != "without"):
        raise RuntimeError(f"{page}/{name}: {marker!r} {'missing' if name != 'without' else 'present'}")
    kinds = [intake.peer._classify(q["sql"]) for q in ctx.captured_queries]
    data = sum(k in ("SELECT", "INSERT", "UPDATE", "DELETE") for k in kinds)
    return {"queries_total": len(kinds), "queries_data": data, "bytes": len(content)}


def timed(client: Any, url: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        get(client, url)
        out.append(time.perf_counter() - start)
    return out


def measure(a: argparse.Namespace) -> dict[str, dict[str, Any]]:
    import intake
    from django.test import Client

    client = Client()
    urls = make_pages(client)
    times: dict[tuple[str, str], list[float]] = {(p, v): [] for p in PAGES for v in a.variants}
    probes = {}
    per_round = -(-a.n // a.rounds)
    for r in range(a.rounds):
        for name in a.variants if r % 2 == 0 else reversed(a.variants):
            with variant(name):
                for page, url in urls.items():
                    timed(client, url, a.warmup)
                    probes[page, name] = probe(client, url, page, name)
                    times[page, name] += timed(client, url, min(per_round, a.n - len(times[page, name])))
    out: dict[str, dict[str, Any]] = {}
    for (page, name), lat in times.items():
        summary = intake.peer.RunResult(n=len(lat), wall_s=sum(lat), latencies_s=lat).summary()
        out.setdefault(page, {})[name] = {**probes[page, name], "n": len(lat),
                                          **{k: summary[k] for k in ("mean_ms", "p50_ms", "p95_ms", "max_ms")}}
    return out


def print_table(results: dict[str, dict[str, Any]]) -> None:
    print("\n| page | variant | queries total (data) | bytes | mean ms | p50 ms | p95 ms |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for page, by_variant in results.items():
        for name, r in by_variant.items():
            print(f"| {page} ({PAGES[page][1]}) | {name} | {r['queries_total']} ({r['queries_data']}) | {r['bytes']} "
                  f"| {r['mean_ms']} | {r['p50_ms']} | {r['p95_ms']} |")
        if {"with", "without"} <= by_variant.keys():
            w, wo = by_variant["with"], by_variant["without"]
            print(f"| {page}: the tags' cost | with - without | {w['queries_total'] - wo['queries_total']} "
                  f"({w['queries_data'] - wo['queries_data']}) | {w['bytes'] - wo['bytes']} "
                  f"| {w['mean_ms'] - wo['mean_ms']:.2f} | {w['p50_ms'] - wo['p50_ms']:.2f} "
                  f"| {w['p95_ms'] - wo['p95_ms']:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=200, help="timed requests per page and variant (default 200)")
    ap.add_argument("--warmup", type=int, default=20, help="untimed requests per page and variant, each round")
    ap.add_argument("--rounds", type=int, default=4, help="the N requests are split into rounds alternating variants")
    ap.add_argument("--variants", type=lambda s: s.split(","), default=list(VARIANTS),
                    help="comma-separated, of: " + ",".join(VARIANTS))
    ap.add_argument("--json", help="also write the figures here")
    ap.add_argument("--keep-tmp", action="store_true")
    a = ap.parse_args()
    if not set(a.variants) <= set(VARIANTS) or a.n < 1 or a.rounds < 1:
        raise SystemExit(f"--variants among {VARIANTS}; --n and --rounds at least 1")

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import intake  # the peer harness's percentiles and the machine facts, as the intake benchmark

    with intake.scratch("invoicepay-checkout-bench-", a.keep_tmp) as tmp:
        configure_django(str(tmp / "shop.sqlite3"), str(tmp / "sandbox.sqlite3"))
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)
        results = measure(a)
        print_table(results)
        facts = intake.machine_facts()
        print(f"\nN={a.n} per page and variant in {a.rounds} rounds, {a.warmup} warm-up each; machine:",
              json.dumps(facts))
        if a.json:
            Path(a.json).write_text(json.dumps({"machine": facts, "params": vars(a), "pages": results}, indent=2))


if __name__ == "__main__":
    main()
