"""Serve the provider sandbox over HTTP: `manage.py invoicepay_sandbox [--port 8765]`.

`--reset` empties the sandbox's store instead (every simulated invoice and hold, for every process).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_invoicepay.clients import OnePipeConfig
from django_invoicepay.conf import invoicepay_settings
from django_invoicepay.sandbox import (
    MEMORY,
    OnePipeSandbox,
    RehiveSandbox,
    SandboxState,
    configured_location,
    get_state,
)
from django_invoicepay.sandbox.server import make_sandbox_server


class Command(BaseCommand):
    help = (
        "Run the offline simulator of the payment providers as a standalone HTTP server, on the same store "
        "as the shop's in-process sandbox (or empty that store with --reset)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8765)
        where = parser.add_mutually_exclusive_group()
        where.add_argument("--state-file", default=None,
                           help="Keep the sandbox's data in this SQLite file instead of the one the settings name "
                                "(INVOICEPAY['SANDBOX_STATE_FILE']).")
        where.add_argument("--memory", action="store_true",
                           help="Keep the sandbox's data in this process only (forgotten when it stops).")
        parser.add_argument("--reset", action="store_true",
                            help="Forget every simulated invoice and hold in the sandbox's store, then exit.")
        parser.add_argument("--onepipe-notify-url", default=None,
                            help="POST OnePipe transaction notifications here (your invoicepay/webhooks/onepipe/); "
                                 "kept in the store, '' turns them off.")

    def handle(self, *args: Any, host: str, port: int, state_file: str | None, memory: bool, reset: bool,
               onepipe_notify_url: str | None, **options: Any) -> None:
        location = MEMORY if memory else (state_file or configured_location())
        try:
            # --memory: a sandbox of this process only; otherwise the file (or memory) the settings name.
            state = SandboxState() if memory else get_state(state_file) if state_file else get_state()
            if reset:
                state.reset()
                self.stdout.write(f"The sandbox in {state.describe()} is empty now.")
                return
            with state.transaction() as data:  # opens (and creates) the store: a bad file fails here
                if onepipe_notify_url is not None:
                    data["onepipe_notify_url"] = onepipe_notify_url
        except (OSError, ValueError, sqlite3.Error) as exc:
            raise CommandError(f"The sandbox's store {location} cannot be used: {exc}") from exc
        s = invoicepay_settings  # the simulator answers, SANDBOX on or not: empty credentials take its values
        business_id = s.credential("REHIVE", "BUSINESS_ID", sandbox=True)
        simulator = RehiveSandbox(state, api_key=s.credential("REHIVE", "API_KEY", sandbox=True),
                                  business_id=business_id)
        onepipe_simulator = OnePipeSandbox(state, api_key=s.credential("ONEPIPE", "API_KEY", sandbox=True),
                                           client_secret=s.credential("ONEPIPE", "CLIENT_SECRET", sandbox=True),
                                           encoding=OnePipeConfig.from_settings().encoding)
        server = make_sandbox_server(simulator, host, port, onepipe=onepipe_simulator)
        base = f"http://{host}:{server.server_port}"
        self.stdout.write(
            "Sandbox listening. Point the app at it with:\n"
            f'  "BUSINESS_URL": "{base}/business/api/",\n'
            f'  "PAYMENT_REQUESTS_URL": "{base}/payment-requests/api/",\n'
            f'  "BUSINESS_ID": "{business_id}" and the same API_KEY as this command\n'
            f'  ONEPIPE "BASE_URL": "{base}/onepipe/v2/" with the same API_KEY and CLIENT_SECRET\n'
            f"Sandbox data: {state.describe()}.\n"
            "Stop with Ctrl+C."
        )
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
