"""Settings of the processes a reliability run starts (app server, poller, tool, sandbox)."""

import os

from tests.reliability import PLANTED
from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS

DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = [*INSTALLED_APPS, "tests.reliability"]

_ENGINE = os.environ.get("INVOICEPAY_RELIABILITY_DB", "sqlite")
_NAME = os.environ.get("INVOICEPAY_RELIABILITY_NAME", "reliability.sqlite3")
if _ENGINE == "postgres":
    DATABASES = {"default": {"ENGINE": "django.db.backends.postgresql", "NAME": _NAME,
                             "USER": os.environ.get("PGUSER", "postgres"),
                             "HOST": os.environ.get("PGHOST", "127.0.0.1"), "PORT": os.environ.get("PGPORT", "5432")}}
elif _ENGINE == "mariadb":
    DATABASES = {"default": {"ENGINE": "django.db.backends.mysql", "NAME": _NAME,
                             "USER": os.environ.get("MYSQL_USER", "root"),
                             "PASSWORD": os.environ.get("MYSQL_PASSWORD", ""),
                             "HOST": os.environ.get("MYSQL_HOST", "127.0.0.1"),
                             "PORT": os.environ.get("MYSQL_PORT", "3306"),
                             "OPTIONS": {"charset": "utf8mb4", "isolation_level": "read committed"}}}
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": _NAME,
                             "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 60}}}

_SANDBOX = os.environ.get("INVOICEPAY_RELIABILITY_SANDBOX", "http://127.0.0.1:9")
INVOICEPAY = {
    "SANDBOX": False,
    "REHIVE": {
        "API_KEY": PLANTED["api_key"],
        "BUSINESS_ID": "rel-business",
        "BUSINESS_URL": f"{_SANDBOX}/business/api/",
        "PAYMENT_REQUESTS_URL": f"{_SANDBOX}/payment-requests/api/",
        "WEBHOOK_SECRET": PLANTED["webhook_secret"],
        "QR_NAME": "Reliability Shop",
    },
    "ONEPIPE": {"API_KEY": PLANTED["onepipe_key"], "CLIENT_SECRET": PLANTED["onepipe_secret"]},
    "HTTP_TIMEOUT": 2.0,
    "HTTP_MAX_RETRIES": 2,
    "THROTTLE_RATES": {"otp": "100000/min", "payer": "100000/min", "read": "100000/min"},
}

_LOG = os.environ.get("INVOICEPAY_RELIABILITY_LOG", os.devnull)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(process)d %(levelname)s %(name)s %(message)s"}},
    "handlers": {"file": {"class": "logging.FileHandler", "filename": _LOG, "formatter": "plain"}},
    "root": {"handlers": ["file"], "level": "INFO"},
    "loggers": {"django_invoicepay": {"level": "DEBUG"}},
}
