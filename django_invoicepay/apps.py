from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class InvoicePayConfig(AppConfig):
    name = "django_invoicepay"
    label = "invoicepay"
    verbose_name = _("Invoice payments")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import automation, checks  # noqa: F401  (connects receivers, registers checks)
