import os
import time

from django.apps import AppConfig


def append_line(path: str, line: str) -> None:
    """One small O_APPEND write: whole lines, whatever the process or thread."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


class ReliabilityConfig(AppConfig):
    """Receivers of invoice_status_changed, in whichever process sends it (app server, poller, commands):

    - with INVOICEPAY_RELIABILITY_SIGNALS, a recorder: one appended line per signal;
    - with INVOICEPAY_RELIABILITY_RECEIVER, a shop's idempotent receiver (see `apply_once`), which logs
      each call to that file; INVOICEPAY_RELIABILITY_SLOW_RECEIVER makes it take that many seconds first.
    """

    name = "tests.reliability"
    label = "reliability"

    def ready(self) -> None:
        from django_invoicepay.signals import invoice_status_changed

        path = os.environ.get("INVOICEPAY_RELIABILITY_SIGNALS")
        if path:
            def record(sender, invoice, old_status, new_status, **kwargs) -> None:
                append_line(path, f"{invoice.remote_id} {old_status or '-'} {new_status}\n")

            invoice_status_changed.connect(record, weak=False, dispatch_uid="reliability-record")
        if os.environ.get("INVOICEPAY_RELIABILITY_RECEIVER"):
            invoice_status_changed.connect(apply_once, weak=False, dispatch_uid="reliability-apply-once")


def apply_once(sender, invoice, old_status, new_status, **kwargs) -> None:
    """Apply a transition's effect once however often the signal comes: in one transaction, insert its
    transition id (unique) and apply the effect; a repeat fails the insert and changes nothing.

    Each call leaves lines in INVOICEPAY_RELIABILITY_RECEIVER: `called <id> ...` on arrival, then
    `applied <id>` or `redundant <id>` (a failure, e.g. a dropped connection, leaves only `called`).
    """
    from django.db import IntegrityError, transaction
    from django.db.models import F

    from .models import AppliedTransition, Fulfilment

    log = os.environ["INVOICEPAY_RELIABILITY_RECEIVER"]
    append_line(log, f"called {kwargs.get('transition_id')} {invoice.remote_id} {old_status or '-'} {new_status} "
                     f"{os.getpid()}\n")
    time.sleep(float(os.environ.get("INVOICEPAY_RELIABILITY_SLOW_RECEIVER") or 0))  # a slow shop: mail, ERP...
    transition_id = str(kwargs["transition_id"])  # a KeyError (logged by send_robust) when the signal has none
    try:
        with transaction.atomic():
            AppliedTransition.objects.create(transition_id=transition_id, remote_id=invoice.remote_id,
                                             from_status=old_status, to_status=new_status, pid=os.getpid())
            Fulfilment.objects.filter(remote_id=invoice.remote_id).update(steps=F("steps") + 1)
    except IntegrityError:
        append_line(log, f"redundant {transition_id}\n")
        return
    append_line(log, f"applied {transition_id}\n")
