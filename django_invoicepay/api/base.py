"""What every payer endpoint shares: who may call it, its rate limit, request validation, the answer
through a declared serializer, errors that never become a 500, and its OpenAPI description.

drf-spectacular is an optional extra: without it the views work the same and `documented` only records.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.views import APIView

from ..errors import InvoicePayError
from .errors import error_response
from .throttling import ReadThrottle

F = TypeVar("F", bound=Callable[..., Any])

#: Why each error status is answered (docs/api.md, "Errors"): for developers, so not translated. The body is
#: `ErrorSerializer`'s but for 400.
ERRORS = {
    400: "Field errors ({field: [messages]}, nested for nested fields), or the error envelope when the "
         "provider refused the request as a whole.",
    403: "A session-authenticated call without its CSRF token, or a consent asked for without logging in.",
    404: "No such invoice or consent, or it is not yours.",
    409: "The invoice is closed (code invoice_closed), or another code is being checked (code otp_in_progress, "
         "Retry-After).",
    429: "A rate limit (Retry-After), or too many wrong codes (code otp_locked, Retry-After).",
    503: "The provider is unavailable (code provider_unavailable, Retry-After), or hold funds is not "
         "configured (code not_configured).",
}
#: The statuses that may come with a Retry-After header.
WAIT_STATUSES = (409, 429, 503)
#: Errors that any endpoint calling the provider may answer.
PROVIDER_ERRORS = (400, 404, 409, 429, 503)
#: ... and those a state-changing (POST) endpoint adds.
POST_ERRORS = (*PROVIDER_ERRORS, 403)


def documented(
    ok: Any, *, codes: Iterable[int] = (status.HTTP_200_OK,), errors: Iterable[int] = (), request: Any = None,
    example: dict[str, Any] | None = None, summary: str = "", query: Iterable[tuple[str, str]] = (),
) -> Callable[[F], F]:
    """The OpenAPI description of one endpoint: its success body `ok` (with its status `codes`), each error
    status it may answer, its JSON request body and an `example` of it, its query parameters (name, text).

    Only recorded here: `schema.describe_views` applies it with drf-spectacular when a schema is made (or
    at start-up when the project installs drf_spectacular), so a server that never serves the schema does
    not import it (about 10 MiB: benchmarks/README.md)."""
    spec = {"ok": ok, "codes": tuple(codes), "errors": tuple(errors), "request": request, "example": example,
            "summary": summary, "query": tuple(query)}

    def decorate(view: F) -> F:
        view.openapi_spec = spec  # type: ignore[attr-defined]
        return view

    return decorate


class PayerView(APIView):
    """A payer-facing endpoint: open to guests (the object's token or its owner decide, see `permissions`),
    read-rate limited unless a view says otherwise; provider and app errors answer with their meaning."""

    permission_classes = [AllowAny]
    throttle_classes = [ReadThrottle]
    #: The request body's serializer (validated by `valid`).
    serializer_class: type[BaseSerializer] | None = None
    #: The success body's serializer (rendered by `answer`).
    response_serializer: type[BaseSerializer] | None = None
    #: Where a provider's message without a field goes (e.g. "Invalid OTP." -> "otp").
    provider_field: str | None = None
    def get_serializer(self, *args: Any, **kwargs: Any) -> BaseSerializer:
        assert self.serializer_class is not None, f"{type(self).__name__} takes no request body"
        return self.serializer_class(*args, context={"request": self.request, "view": self}, **kwargs)

    def valid(self) -> Any:
        """The request's data, validated by `serializer_class` (a 400 when it is not valid)."""
        serializer = self.get_serializer(data=self.request.data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def respond(self, instance: Any, *, code: int = status.HTTP_200_OK, **context: Any) -> Response:
        """`instance` through `response_serializer`; `context` reaches its fields (e.g. a `detail` message)."""
        assert self.response_serializer is not None, f"{type(self).__name__} declares no response_serializer"
        return Response(self.response_serializer(instance, context=context).data, status=code)

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, InvoicePayError):
            return error_response(exc, field=self.provider_field)
        return super().handle_exception(exc)
