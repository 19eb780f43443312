"""The payer API's URLs: its endpoints (`routes`) and, with the optional drf-spectacular extra, its schema."""

from importlib.util import find_spec

from django.urls import path

from .routes import app_name
from .routes import urlpatterns as endpoints
from .schema import openapi_schema

__all__ = ["app_name", "urlpatterns"]

urlpatterns = list(endpoints)
if find_spec("drf_spectacular") is not None:  # imported on the first request for the schema, not at start-up
    urlpatterns.append(path("schema/", openapi_schema, name="schema"))
