"""The payer API's OpenAPI schema as a file, docs/reference/openapi.yaml, so that a shop's front-end
developers can read it without running the app: `make schema` writes it, and the test suite fails when
the API changes without it (docs/api.md, "The schema"). Needs the optional drf-spectacular extra.

    python -m django_invoicepay.api.schema PATH   (with DJANGO_SETTINGS_MODULE set)
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse
from rest_framework import status

#: The schema's own heading: the API's, whatever the project that generates it calls itself.
INFO = {
    "title": "django-invoicepay payer API",
    "version": "1",
    "description": "Payer-facing endpoints of django-invoicepay (docs/api.md). Errors share one envelope: "
                   "{detail, code}; 400s carry field errors. Nothing answers 500.",
}


def _describe(method: Any, spec: dict[str, Any]) -> Any:
    """Apply one `base.documented` record to a view method with drf-spectacular."""
    from drf_spectacular.openapi import AutoSchema
    from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema

    from .base import ERRORS, WAIT_STATUSES
    from .serializers import BAD_REQUEST_SCHEMA, ErrorSerializer

    responses: dict[int, Any] = dict.fromkeys(spec["codes"], spec["ok"])
    for error in sorted(spec["errors"]):
        body = BAD_REQUEST_SCHEMA if error == status.HTTP_400_BAD_REQUEST else ErrorSerializer
        responses[error] = OpenApiResponse(response=body, description=ERRORS[error])
    parameters = [OpenApiParameter(name, str, OpenApiParameter.QUERY, description=text) for name, text in spec["query"]]
    waits = [code for code in WAIT_STATUSES if code in responses]
    if waits:
        parameters.append(OpenApiParameter("Retry-After", int, OpenApiParameter.HEADER, response=waits,
                                           description="Seconds to wait before trying again."))
    request = spec["request"]
    sent = {"application/json": request} if request is not None else None  # what clients send; forms work too
    example = spec["example"]
    examples = [OpenApiExample("example", value=example, request_only=True)] if example is not None else []
    method.kwargs = {"schema": AutoSchema}  # extend on it, not on DRF's default
    return extend_schema(request=sent, responses=responses, summary=spec["summary"] or None, parameters=parameters,
                         examples=examples)(method)


def describe_views() -> None:
    """Describe every payer view with drf-spectacular, from what `base.documented` recorded (once)."""
    from drf_spectacular.openapi import AutoSchema

    from .routes import urlpatterns

    for pattern in urlpatterns:
        view = getattr(getattr(pattern, "callback", None), "view_class", None)
        if view is None or getattr(view, "openapi_described", False):
            continue
        view.schema = AutoSchema()
        for name, method in list(vars(view).items()):
            if callable(method) and hasattr(method, "openapi_spec"):
                setattr(view, name, _describe(method, method.openapi_spec))
        view.openapi_described = True


def openapi() -> dict[str, Any]:
    """The schema, as the `schema` URL serves it but for its heading, in English."""
    from django.utils import translation
    from drf_spectacular.generators import SchemaGenerator

    from .routes import schema_patterns

    describe_views()

    with translation.override("en"):
        generator = SchemaGenerator(patterns=schema_patterns)  # type: ignore[no-untyped-call]  # drf-spectacular's
        schema: dict[str, Any] = generator.get_schema(request=None, public=True)  # type: ignore[no-untyped-call]
    schema["info"] = dict(INFO)
    return schema


def openapi_schema(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """The schema URL's view (drf-spectacular, imported on the first request for it)."""
    from drf_spectacular.views import SpectacularAPIView

    from .routes import schema_patterns

    describe_views()
    view: Callable[..., HttpResponse] = SpectacularAPIView.as_view(patterns=schema_patterns)
    return view(request, *args, **kwargs)


def openapi_yaml() -> str:
    """The schema as YAML, checked against the OpenAPI specification."""
    from drf_spectacular.renderers import OpenApiYamlRenderer
    from drf_spectacular.validation import validate_schema

    schema = openapi()
    validate_schema(schema)  # type: ignore[no-untyped-call]
    return OpenApiYamlRenderer().render(schema, renderer_context={}).decode()  # type: ignore[no-untyped-call]


def main(argv: list[str]) -> None:
    import django

    django.setup()
    with open(argv[0], "w", encoding="utf-8") as file:
        file.write(openapi_yaml())


if __name__ == "__main__":
    main(sys.argv[1:])
