"""Delete webhook deliveries older than WEBHOOK_RETENTION_DAYS: `manage.py invoicepay_prune`.

Run it daily (cron, or enqueue `django_invoicepay.tasks.prune_webhook_deliveries`).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_invoicepay.conf import invoicepay_settings
from django_invoicepay.webhooks import retention


class Command(BaseCommand):
    help = "Delete webhook deliveries older than INVOICEPAY['WEBHOOK_RETENTION_DAYS'] (90 days by default)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, help="Keep this many days instead of the setting.")
        parser.add_argument("--dry-run", action="store_true", help="Only count what would be deleted.")

    def handle(self, *args: Any, **options: Any) -> None:
        days = options["days"] if options["days"] is not None else invoicepay_settings.WEBHOOK_RETENTION_DAYS
        if days is None:
            self.stdout.write("WEBHOOK_RETENTION_DAYS is None: deliveries are kept for ever; nothing deleted.")
            return
        if days < 0:
            raise CommandError("--days must be 0 or more.")
        if options["dry_run"]:
            self.stdout.write(f"Would delete {retention.expired(days).count()} webhook delivery(ies) older than "
                              f"{days} days.")
            return
        self.stdout.write(f"Deleted {retention.prune(days)} webhook delivery(ies) older than {days} days.")
