from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class InvoicePayConfig(AppConfig):
    name = "django_invoicepay"
    label = "invoicepay"
    verbose_name = _("Invoice payments")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """The app's wiring, all of it here: its system checks and its own signal receivers."""
        from . import automation, checks

        checks.register_checks()
        automation.connect()
