"""Poll the provider for invoices that can still change: `manage.py invoicepay_sync`.

Run it from cron or a worker every minute or so; each invoice has its own schedule, so a run
only fetches what is due. Many runs at once are safe.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from django_invoicepay.models import WebhookDelivery
from django_invoicepay.models.webhooks import UNFINISHED
from django_invoicepay.services.polling import stop_on_signals, sweep
from django_invoicepay.webhooks import intake

DURATION = re.compile(r"(\d+)([smhd])")


def parse_since(value: str) -> datetime:
    """'2h', '30m', '7d' (ago) or an ISO 8601 date-time."""
    match = DURATION.fullmatch(value.strip())
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        return timezone.now() - timedelta(**{{"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[unit]: amount})
    parsed = parse_datetime(value)
    if parsed is None:
        raise CommandError(f"--since {value!r}: give a duration like 2h or 30m, or an ISO date-time.")
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed)


class Command(BaseCommand):
    help = "Refresh invoices that can still change (and their transactions) from the provider."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--invoice", action="append", default=[],
                            help="Only this invoice (remote id, public token, reference or pk); repeatable.")
        parser.add_argument("--status", action="append", default=[], help="Only invoices in this status; repeatable.")
        parser.add_argument("--since", help="Only invoices created since: 2h, 30m, 7d or an ISO date-time.")
        parser.add_argument("--all", action="store_true", help="Include finished invoices (paid, expired, ...).")
        parser.add_argument("--concurrency", type=int, default=4, help="Parallel provider calls (default 4).")
        parser.add_argument("--batch", type=int, default=100,
                            help="Invoices claimed, and their next polls written, at a time (default 100).")
        parser.add_argument("--webhooks", action="store_true",
                            help="Only finish webhook deliveries: unprocessed ones, and failed ones due for a retry.")
        parser.add_argument("--failed", action="store_true",
                            help="With --webhooks: process every failed delivery again now, whatever its backoff.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            with stop_on_signals():
                if options["webhooks"] or options["failed"]:
                    return self.deliveries(options)
                return self.poll(options)
        except KeyboardInterrupt:
            self.stderr.write("Stopped: claims given back, nothing half-done.")
            sys.exit(130)
        except DatabaseError as exc:
            raise CommandError(f"The database is unavailable ({type(exc).__name__}); run again later.") from exc

    def poll(self, options: dict[str, Any]) -> None:
        if options["concurrency"] < 1 or options["batch"] < 1:
            raise CommandError("--concurrency and --batch must be at least 1.")
        tty = hasattr(self.stdout, "isatty") and self.stdout.isatty()
        with self._logs_on_their_own_lines() if tty else contextlib.nullcontext():
            result = sweep(
                invoices=options["invoice"], statuses=options["status"],
                since=parse_since(options["since"]) if options["since"] else None,
                include_final=options["all"], concurrency=options["concurrency"], batch=options["batch"],
                progress=self._bar if tty else None,
            )
        self._end_bar()
        self.stdout.write(result.summary())
        failed = result.outcomes.get("failed") or result.interrupted or result.holds.get("failed to refresh")
        if failed:
            sys.exit(1)

    def deliveries(self, options: dict[str, Any]) -> None:
        if options["failed"]:
            counts = intake.process_all(
                WebhookDelivery.objects.filter(status__in=UNFINISHED).order_by("received_at", "pk"))
        else:
            counts = intake.process_all(intake.due_deliveries())
        total = sum(counts.values())
        noun = "delivery" if total == 1 else "deliveries"
        label = f"webhook {noun} again" if options["failed"] else f"pending webhook {noun}"
        detail = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        self.stdout.write(f"Processed {total} {label}" + (f": {detail}." if detail else "."))
        if counts.get("failed"):
            sys.exit(1)

    _bar_drawn = False

    def _bar(self, done: int, total: int) -> None:
        total = max(total, done, 1)
        filled = int(30 * done / total)
        self.stdout.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {done}/{total}", ending="")
        self.stdout.flush()
        self._bar_drawn = True

    def _end_bar(self) -> None:
        if self._bar_drawn:
            self.stdout.write("")  # ends the bar's line
            self._bar_drawn = False

    @contextlib.contextmanager
    def _logs_on_their_own_lines(self) -> Iterator[None]:
        """While the progress bar is on screen, a log record first ends the bar's line, so a log line never
        lands in the middle of the bar (the next progress update draws the bar again below it)."""
        command = self

        class EndTheBar(logging.Filter):
            def filter(self, record: logging.LogRecord) -> bool:
                command._end_bar()
                return True

        end_the_bar = EndTheBar()
        handlers = {handler for name in ("", "django_invoicepay", "django")
                    for handler in logging.getLogger(name).handlers}
        if logging.lastResort is not None:
            handlers.add(logging.lastResort)
        for handler in handlers:
            handler.addFilter(end_the_bar)
        try:
            yield
        finally:
            for handler in handlers:
                handler.removeFilter(end_the_bar)
