"""What every payer endpoint shares: who may call it, its rate limit, request validation, the answer
through a declared serializer, errors that never become a 500, and its OpenAPI description.

drf-spectacular is an optional extra: without it the views work the same and `documented` does nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.views import APIView

from ..errors import InvoicePayError
from .errors import error_response
from .serializers import BAD_REQUEST_SCHEMA, ErrorSerializer
from .throttling import ReadThrottle

if TYPE_CHECKING:
    from drf_spectacular.openapi import AutoSchema as _AutoSchema

AutoSchema: type[_AutoSchema] | None
try:  # drf-spectacular is an optional extra: describe the views when it is there
    from drf_spectacular.openapi import AutoSchema
    from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
except ImportError:  # pragma: no cover - exercised when the extra is absent
    AutoSchema = None

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
    status it may answer, its JSON request body and an `example` of it, its query parameters (name, text)."""
    if AutoSchema is None:  # pragma: no cover - the extra is absent
        return lambda view: view
    responses: dict[int, Any] = dict.fromkeys(codes, ok)
    for error in sorted(errors):
        body = BAD_REQUEST_SCHEMA if error == status.HTTP_400_BAD_REQUEST else ErrorSerializer
        responses[error] = OpenApiResponse(response=body, description=ERRORS[error])
    parameters = [OpenApiParameter(name, str, OpenApiParameter.QUERY, description=text) for name, text in query]
    waits = [code for code in WAIT_STATUSES if code in responses]
    if waits:
        parameters.append(OpenApiParameter("Retry-After", int, OpenApiParameter.HEADER, response=waits,
                                           description="Seconds to wait before trying again."))
    sent = {"application/json": request} if request is not None else None  # what clients send; forms work too
    examples = [OpenApiExample("example", value=example, request_only=True)] if example is not None else []
    describe = extend_schema(request=sent, responses=responses, summary=summary or None, parameters=parameters,
                             examples=examples)

    def decorate(view: F) -> F:
        view.kwargs = {"schema": AutoSchema}  # type: ignore[attr-defined]  # extend on it, not on DRF's default
        return describe(view)

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
    if AutoSchema is not None:
        schema = AutoSchema()

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
