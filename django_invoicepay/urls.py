"""`path("invoicepay/", include("django_invoicepay.urls"))`: the API (and, later, webhook receivers)."""

from django.urls import include, path

urlpatterns = [
    path("api/", include("django_invoicepay.api.urls")),
]
