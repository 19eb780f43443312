"""The example shop with its background work on real task workers (docs/tasks.md).

Webhooks are answered 202 at once and processed by a worker; `sync_invoices` runs the polling sweep
there. Choose the backend with INVOICEPAY_TASKS:

    export DJANGO_SETTINGS_MODULE=demo.settings_workers
    INVOICEPAY_TASKS=db python manage.py db_worker --no-reload            # the database (the default)
    INVOICEPAY_TASKS=rq python manage.py rqworker --job-class django_tasks_rq.Job default   # Redis (RQ)

REDIS_URL (default redis://127.0.0.1:6379/0) is where the RQ queue lives.
"""

import os
from importlib.util import find_spec

from django.core.exceptions import ImproperlyConfigured

from .settings import *  # noqa: F403
from .settings import INSTALLED_APPS

TASKS_BACKEND = os.environ.get("INVOICEPAY_TASKS", "db")
#: What each backend needs installed, and the extra of django-invoicepay that installs it.
NEEDS = {"db": (["django_tasks_db"], "tasks-db"), "rq": (["django_tasks_rq", "django_rq", "redis"], "tasks-rq")}

# Django 5.2 runs tasks on the django-tasks backport; Django 6 has django.tasks built in.
_BACKPORT = ["django_tasks"] if find_spec("django.tasks") is None else []

if TASKS_BACKEND not in NEEDS:
    raise ImproperlyConfigured(f"INVOICEPAY_TASKS={TASKS_BACKEND!r}: use 'db' or 'rq'.")
_missing = [name for name in [*NEEDS[TASKS_BACKEND][0], *_BACKPORT] if find_spec(name) is None]
if _missing:
    raise ImproperlyConfigured(f"INVOICEPAY_TASKS={TASKS_BACKEND} needs {', '.join(_missing)}: "
                               f"pip install 'django-invoicepay[{NEEDS[TASKS_BACKEND][1]}]'")

if TASKS_BACKEND == "rq":
    INSTALLED_APPS = [*INSTALLED_APPS, *_BACKPORT, "django_rq"]
    TASKS = {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default"]}}
    RQ_QUEUES = {"default": {"URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), "DEFAULT_TIMEOUT": 300}}
else:
    INSTALLED_APPS = [*INSTALLED_APPS, *_BACKPORT, "django_tasks_db"]
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}
