"""`@pytest.mark.urls("tests.browser_pages.urls")`: the app's URLs plus the bare pay page."""

from django.urls import include, path

from . import views

urlpatterns = [
    path("invoicepay/", include("django_invoicepay.urls")),
    path("pay/<str:token>/", views.pay, name="browser-pay"),
    path("invoice/<int:pk>/", views.by_id, name="browser-invoice"),
]
