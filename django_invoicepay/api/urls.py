from django.urls import include, path

from . import views

app_name = "invoicepay_api"

urlpatterns = [
    path("invoices/<str:token>/", views.InvoiceDetail.as_view(), name="invoice"),
    path("invoices/<str:token>/processors/", views.ProcessorList.as_view(), name="processors"),
    path("invoices/<str:token>/processor/", views.ProcessorChoice.as_view(), name="processor"),
    path("invoices/<str:token>/payer/", views.Payer.as_view(), name="payer"),
    path("invoices/<str:token>/otp/", views.Otp.as_view(), name="otp"),
    path("invoices/<str:token>/otp/resend/", views.OtpResend.as_view(), name="otp-resend"),
    path("invoices/<str:token>/renew/", views.Renew.as_view(), name="renew"),
]

try:  # the OpenAPI schema, when the optional drf-spectacular extra is installed
    from drf_spectacular.views import SpectacularAPIView
except ImportError:  # pragma: no cover
    pass
else:
    documented = [path("invoicepay/api/", include((list(urlpatterns), app_name)))]
    urlpatterns.append(path("schema/", SpectacularAPIView.as_view(patterns=documented), name="schema"))
