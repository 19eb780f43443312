"""Serve the provider sandbox over HTTP: `manage.py invoicepay_sandbox [--port 8765]`."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from django_invoicepay.conf import (
    SANDBOX_API_KEY,
    SANDBOX_BUSINESS_ID,
    SANDBOX_ONEPIPE_KEY,
    SANDBOX_ONEPIPE_SECRET,
    invoicepay_settings,
)
from django_invoicepay.providers import OnePipeConfig
from django_invoicepay.sandbox import OnePipeSandbox, RehiveSandbox, get_state
from django_invoicepay.sandbox.server import make_sandbox_server


class Command(BaseCommand):
    help = "Run the offline simulator of the payment providers as a standalone HTTP server."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8765)
        parser.add_argument("--state-file", default=None, help="Keep the sandbox's data in this JSON file.")
        parser.add_argument("--onepipe-notify-url", default=None,
                            help="POST OnePipe transaction notifications here (your invoicepay/webhooks/onepipe/).")

    def handle(self, *args, host: str, port: int, state_file: str | None, onepipe_notify_url: str | None,
               **options) -> None:
        api_key = invoicepay_settings.REHIVE.get("API_KEY") or SANDBOX_API_KEY
        business_id = invoicepay_settings.REHIVE.get("BUSINESS_ID") or SANDBOX_BUSINESS_ID
        state = get_state(state_file)
        simulator = RehiveSandbox(state, api_key=api_key, business_id=business_id)
        onepipe = OnePipeConfig.from_settings()
        onepipe_simulator = OnePipeSandbox(state, api_key=onepipe.api_key or SANDBOX_ONEPIPE_KEY,
                                           client_secret=onepipe.client_secret or SANDBOX_ONEPIPE_SECRET,
                                           encoding=onepipe.encoding)
        if onepipe_notify_url:
            state.data["onepipe_notify_url"] = onepipe_notify_url
        server = make_sandbox_server(simulator, host, port, onepipe=onepipe_simulator)
        base = f"http://{host}:{server.server_port}"
        self.stdout.write(
            "Sandbox listening. Point the app at it with:\n"
            f'  "BUSINESS_URL": "{base}/business/api/",\n'
            f'  "PAYMENT_REQUESTS_URL": "{base}/payment-requests/api/",\n'
            f'  "BUSINESS_ID": "{business_id}" and the same API_KEY as this command\n'
            f'  ONEPIPE "BASE_URL": "{base}/onepipe/v2/" with the same API_KEY and CLIENT_SECRET\n'
            "Stop with Ctrl+C."
        )
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
