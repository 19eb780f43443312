"""Webhook receivers: `invoicepay/webhooks/rehive/` and `invoicepay/webhooks/onepipe/`.

Thin: everything happens in `intake`. Answers: 401 (not authentic), 400 (not JSON), 200
(processed, ignored, or `"duplicate": true` for a repeat of a finished event), 202 (queued on
the task backend), 503 with Retry-After (processing failed, is in progress elsewhere, or the
database is unavailable: the provider retries with the same event id). Never 500.
"""

from __future__ import annotations

from collections.abc import Callable

from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .. import tasks
from .handlers import HANDLERS
from .intake import Intake


def receiver(provider: str) -> Callable[[HttpRequest], HttpResponse]:
    """The view for one provider's webhooks (never inside ATOMIC_REQUESTS: the delivery is stored first)."""

    @csrf_exempt
    @require_POST
    @transaction.non_atomic_requests
    def receive(request: HttpRequest) -> JsonResponse:
        return Intake(HANDLERS[provider], request, enqueue=tasks.enqueue_webhook if tasks.queueing() else None).run()

    receive.__name__ = receive.__qualname__ = provider
    return receive


rehive = receiver("rehive")
onepipe = receiver("onepipe")
