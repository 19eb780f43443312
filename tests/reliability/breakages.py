"""Deliberate breakages the reliability suite must catch: `python -m tests.reliability.breakages`
(or `make test-breakages`).

For each breakage, a copy of the working tree gets one small edit that removes a safety mechanism
(the invoice row lock, the order following, the
announcement record), then the reliability suite runs against that copy. Every breakage must turn
it red; the script prints a table and exits 1 if one stays green. docs/reliability.md lists what it
showed. Slow (a reliability run per breakage): not part of `make test`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Breakage:
    name: str
    path: str
    edits: tuple[tuple[str, str], ...]  # (old, new): each old text must be found exactly once
    tests: tuple[str, ...]


CRASHES = "tests/test_reliability_crashes.py"
LOAD = "tests/test_reliability.py"
BREAKAGES = (
    Breakage("no row lock while applying a payload", "django_invoicepay/services/invoices.py",
             (("Invoice.objects.select_for_update().filter(pk=pk).first()", "Invoice.objects.filter(pk=pk).first()"),
              ("row = Invoice.objects.filter(pk=current.pk, status=current.status, "
               "remote_updated=current.remote_updated)", "row = Invoice.objects.filter(pk=current.pk)")),
             (LOAD, CRASHES)),
    Breakage("the order does not follow the invoice", "django_invoicepay/services/invoices.py",
             (("    follow_invoice(invoice, new_status)\n", ""),), (CRASHES,)),
    Breakage("no announcement record (marked announced before the receivers run)",
             "django_invoicepay/services/announcements.py",
             (("    failed = outbox.send(change, owner)\n",
               "    outbox.model.objects.filter(pk=change.pk).update(announced_at=timezone.now())\n"
               "    failed = outbox.send(change, owner)\n"),), (CRASHES,)),
)
# Retired with the one-write intake (issue 14): "no event de-duplication" and "no processing lease". A new
# event is processed in its request and stored once with its outcome; a repeat processed again changes
# nothing (applying is idempotent, under the row lock above), so neither is a safety mechanism any more:
# de-duplication saves the provider call, and the lease only serialises retries of stored, unfinished
# deliveries (docs/webhooks.md).


def broken_copy(breakage: Breakage, into: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,  # noqa: S607
                           text=True, check=True).stdout.splitlines()
    for name in files:
        source = ROOT / name
        if source.is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)
    target = into / breakage.path
    text = target.read_text()
    for old, new in breakage.edits:
        if text.count(old) != 1:
            raise SystemExit(f"{breakage.name}: the code to break is not found exactly once in {breakage.path}")
        text = text.replace(old, new)
    target.write_text(text)


def run(breakage: Breakage, database: str, timeout: int) -> tuple[bool, float, str]:
    """(turned red, seconds, last lines of the output)."""
    with tempfile.TemporaryDirectory(prefix="invoicepay-breakage-") as tmp:
        broken_copy(breakage, Path(tmp))
        started = time.monotonic()
        env = {**os.environ, "INVOICEPAY_TEST_DB": database}
        done = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                               *breakage.tests], cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout)
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-6:])
        return done.returncode != 0, time.monotonic() - started, tail


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="postgres", choices=["sqlite", "postgres", "mariadb"])
    parser.add_argument("--only", help="run only the breakages whose name contains this")
    parser.add_argument("--timeout", type=int, default=1800)
    options = parser.parse_args()
    rows, green = [], []
    for breakage in BREAKAGES:
        if options.only and options.only not in breakage.name:
            continue
        red, seconds, tail = run(breakage, options.database, options.timeout)
        rows.append(f"| {breakage.name} | {'red (caught)' if red else 'GREEN (missed)'} | {seconds:.0f} s |")
        print(rows[-1], flush=True)
        if not red:
            green.append(breakage.name)
        print("    " + tail.replace("\n", "\n    "), flush=True)
    print("\n| breakage | suite | time |\n|---|---|---|\n" + "\n".join(rows))
    if green:
        raise SystemExit(f"Not caught: {', '.join(green)}")


if __name__ == "__main__":
    main()
