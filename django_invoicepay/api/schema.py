"""The payer API's OpenAPI schema as a file, docs/reference/openapi.yaml, so that a shop's front-end
developers can read it without running the app: `make schema` writes it, and the test suite fails when
the API changes without it (docs/api.md, "The schema"). Needs the optional drf-spectacular extra.

    python -m django_invoicepay.api.schema PATH   (with DJANGO_SETTINGS_MODULE set)
"""

from __future__ import annotations

import sys
from typing import Any

#: The schema's own heading: the API's, whatever the project that generates it calls itself.
INFO = {
    "title": "django-invoicepay payer API",
    "version": "1",
    "description": "Payer-facing endpoints of django-invoicepay (docs/api.md). Errors share one envelope: "
                   "{detail, code}; 400s carry field errors. Nothing answers 500.",
}


def openapi() -> dict[str, Any]:
    """The schema, as the `schema` URL serves it but for its heading, in English."""
    from django.utils import translation
    from drf_spectacular.generators import SchemaGenerator

    from .urls import schema_patterns

    with translation.override("en"):
        generator = SchemaGenerator(patterns=schema_patterns)  # type: ignore[no-untyped-call]  # drf-spectacular's
        schema: dict[str, Any] = generator.get_schema(request=None, public=True)  # type: ignore[no-untyped-call]
    schema["info"] = dict(INFO)
    return schema


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
