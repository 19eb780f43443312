"""The payer API's endpoints (mounted by `api/urls.py`, with the schema URL), and where the schema sees them."""

from django.urls import include, path, register_converter

from . import consents, views

app_name = "invoicepay_api"


class TokenConverter:
    """Public tokens are URL-safe base64 (`secrets.token_urlsafe`): anything else is a 404 at once."""

    regex = r"[A-Za-z0-9_-]{1,64}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(TokenConverter, "invoicepay_token")

urlpatterns = [
    path("invoices/<invoicepay_token:token>/", views.InvoiceDetail.as_view(), name="invoice"),
    path("invoices/<invoicepay_token:token>/processors/", views.ProcessorList.as_view(), name="processors"),
    path("invoices/<invoicepay_token:token>/processor/", views.ProcessorChoice.as_view(), name="processor"),
    path("invoices/<invoicepay_token:token>/payer/", views.Payer.as_view(), name="payer"),
    path("invoices/<invoicepay_token:token>/otp/", views.Otp.as_view(), name="otp"),
    path("invoices/<invoicepay_token:token>/otp/resend/", views.OtpResend.as_view(), name="otp-resend"),
    path("invoices/<invoicepay_token:token>/renew/", views.Renew.as_view(), name="renew"),
    path("holds/consents/", consents.ConsentCreate.as_view(), name="consents"),
    path("holds/consents/<invoicepay_token:token>/", consents.ConsentDetail.as_view(), name="consent"),
    path("holds/consents/<invoicepay_token:token>/otp/", consents.ConsentOtp.as_view(), name="consent-otp"),
]

#: What the schema describes: the endpoints above, where docs/api.md mounts them (see `schema`).
schema_patterns = [path("invoicepay/api/", include((list(urlpatterns), app_name)))]
