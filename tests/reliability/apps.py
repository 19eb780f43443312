import os

from django.apps import AppConfig


class ReliabilityConfig(AppConfig):
    """Records every invoice_status_changed, from whichever process sends it, as one appended line."""

    name = "tests.reliability"
    label = "reliability"

    def ready(self) -> None:
        from django_invoicepay.signals import invoice_status_changed

        path = os.environ.get("INVOICEPAY_RELIABILITY_SIGNALS")
        if not path:
            return

        def record(sender, invoice, old_status, new_status, **kwargs) -> None:
            line = f"{invoice.remote_id} {old_status or '-'} {new_status}\n".encode()
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)  # one small O_APPEND write: whole lines, whatever the process
            finally:
                os.close(fd)

        invoice_status_changed.connect(record, weak=False, dispatch_uid="reliability-record")
