from django.apps import AppConfig, apps
from django.utils.translation import gettext_lazy as _


class InvoicePayConfig(AppConfig):
    name = "django_invoicepay"
    label = "invoicepay"
    verbose_name = _("Invoice payments")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """The app's wiring, all of it here: its system checks, its own signal receivers, and the services
        behind the models' convenience methods (models/actions.py)."""
        from . import automation, checks
        from .models.actions import invoice_actions
        from .services import invoices, refunds, renewals

        checks.register_checks()
        automation.connect()
        invoice_actions.install(create_for=invoices.create_for, sync=invoices.sync, cancel=invoices.cancel,
                                renew=renewals.renew, refund_overpayment=refunds.refund_overpayment)
        if apps.is_installed("drf_spectacular"):  # the project makes schemas: describe the payer API in them
            from .api.schema import describe_views

            describe_views()
