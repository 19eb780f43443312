"""Project hygiene a user relies on: committed migrations, docs that build."""

from __future__ import annotations

import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.django_db
def test_migrations_are_committed():
    out = StringIO()
    call_command("makemigrations", "invoicepay", "shop", check=True, dry_run=True, stdout=out)
    assert "No changes detected" in out.getvalue()


def test_docs_build_strictly(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    pages = ("quickstart", "settings", "signals", "sandbox", "template-tags", "api", "open-loop", "polling",
             "webhooks", "security", "deployment", "reliability", "hold-funds")
    for page in pages:
        assert (tmp_path / "site" / page / "index.html").exists(), page
