"""Webhook receivers: thin views over `deliveries`.

`invoicepay/webhooks/onepipe/`: OnePipe's transaction notifications; stored raw, confirmed with
transact/query, answered in the shape OnePipe expects (`{"status": "Successful", ...}`).

`invoicepay/webhooks/rehive/`: answers 401 (not authentic), 400 (not JSON), 200 (processed,
ignored or a repeat), 202 (queued on the task backend) or 503 (processing failed: recorded,
the provider retries with the same event id). Never 500.
"""

from __future__ import annotations

import logging

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from . import deliveries
from .tasks import run_or_enqueue_webhook

logger = logging.getLogger("django_invoicepay.webhooks")


def answer(status: int, message: str, *, words: tuple[str, str] = ("success", "error"), **extra) -> JsonResponse:
    """The provider's own answer shape: `words` are its words for success and failure."""
    response = JsonResponse({"status": words[0] if status < 400 else words[1], "message": message, **extra},
                            status=status)
    if status == 503:
        response["Retry-After"] = "30"
    return response


@csrf_exempt
@require_POST
def rehive(request: HttpRequest) -> JsonResponse:
    if not deliveries.rehive_authentic(request.headers.get("Authorization", "")):
        logger.warning("Refused a Rehive webhook from %s: missing or wrong secret", request.META.get("REMOTE_ADDR"))
        return answer(401, "Authentication failed.")
    received = deliveries.record(
        "rehive", body=request.body, headers=dict(request.headers), source_ip=request.META.get("REMOTE_ADDR")
    )
    delivery = received.delivery
    if delivery.status == deliveries.Status.MALFORMED:
        return answer(400, "The body is not a JSON object.")
    if not received.needs_processing:
        return answer(200, "Already received.", duplicate=True)
    try:
        outcome = run_or_enqueue_webhook(delivery)
    except Exception:  # noqa: BLE001 - recorded with its traceback on the delivery
        return answer(503, "Processing failed; it will be retried.")
    return answer(202 if outcome == "queued" else 200, outcome)


def onepipe_answer(status: int, message: str) -> JsonResponse:
    return answer(status, message, words=("Successful", "Failed"))


@csrf_exempt
@require_POST
def onepipe(request: HttpRequest) -> JsonResponse:
    received = deliveries.record(
        "onepipe", body=request.body, headers=dict(request.headers), source_ip=request.META.get("REMOTE_ADDR")
    )
    if received.delivery.status == deliveries.Status.MALFORMED:
        return onepipe_answer(400, "The body is not a JSON object.")
    if not received.needs_processing:
        return onepipe_answer(200, "Notification already received.")
    try:
        run_or_enqueue_webhook(received.delivery)
    except Exception:  # noqa: BLE001 - recorded with its traceback on the delivery
        return onepipe_answer(503, "Processing failed; please retry.")
    return onepipe_answer(200, "Notification received.")
