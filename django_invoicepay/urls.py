"""`path("invoicepay/", include("django_invoicepay.urls"))`: the payer API and the webhook receivers."""

from django.urls import include, path

from .webhooks import views as webhooks

urlpatterns = [
    path("api/", include("django_invoicepay.api.urls")),
    path("webhooks/rehive/", webhooks.rehive, name="invoicepay-webhook-rehive"),
    path("webhooks/onepipe/", webhooks.onepipe, name="invoicepay-webhook-onepipe"),
]
