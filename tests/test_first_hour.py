"""docs/first-hour.md, run as written: a new project from `startproject` to a paid order.

Each fenced block is preceded by a marker comment: `run` (shell commands, one per line), `write PATH`
or `append PATH` (a file of the project), `shell` (Python for `manage.py shell -c`, in a process of
its own) followed by `output` (what it must print). Every step is a separate process, as a developer's
terminal would run it, so the page also proves that they all share one sandbox.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "first-hour.md"
STEP = re.compile(r"<!-- first-hour: (?P<what>\w+)(?: (?P<path>\S+))? -->\n```\w*\n(?P<body>.*?)```", re.S)


def steps() -> list[tuple[str, str | None, str]]:
    return [(m["what"], m["path"], m["body"]) for m in STEP.finditer(PAGE.read_text())]


def run(command: list[str], cwd: Path) -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(cwd)})
    assert done.returncode == 0, f"{command}: {done.stdout[-2000:]}{done.stderr[-3000:]}"
    return done.stdout


def command(line: str) -> list[str]:
    words = shlex.split(line)
    if words[0] == "django-admin":
        return [sys.executable, "-m", "django", *words[1:]]
    assert words[0] == "python", line
    return [sys.executable, *words[1:]]


def test_the_page_has_every_kind_of_step():
    kinds = [what for what, _, _ in steps()]
    assert {"run", "write", "append", "shell", "output"} <= set(kinds)
    assert all(kinds[n + 1] == "output" for n, what in enumerate(kinds) if what == "shell")


def test_the_first_hour_runs_as_written(tmp_path):
    printed = None
    for what, path, body in steps():
        if what == "run":
            for line in filter(None, (line.strip() for line in body.splitlines())):
                run(command(line), tmp_path)
        elif what in {"write", "append"}:
            target = tmp_path / path
            with target.open("w" if what == "write" else "a") as file:
                file.write(("\n" if what == "append" else "") + body)
        elif what == "shell":
            printed = run([sys.executable, "manage.py", "shell", "-v", "0", "-c", body], tmp_path)
        elif what == "output":
            assert printed is not None and printed.strip() == body.strip(), printed
            printed = None
        else:  # pragma: no cover - a marker this test does not know
            pytest.fail(f"unknown step {what!r} in {PAGE.name}")
