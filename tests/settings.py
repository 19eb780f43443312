"""Test settings: the example shop plus the app, on the database named by INVOICEPAY_TEST_DB."""

import os

from demo.settings import *  # noqa: F403

DEBUG = False
DATABASE = os.environ.get("INVOICEPAY_TEST_DB", "sqlite")

if DATABASE == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": "test",
            "USER": os.environ.get("PGUSER", "postgres"),
            "HOST": os.environ.get("PGHOST", "127.0.0.1"),
            "PORT": os.environ.get("PGPORT", "5432"),
        }
    }
elif DATABASE == "mariadb":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.mysql",
            "NAME": "test",
            "USER": os.environ.get("MYSQL_USER", "root"),
            "PASSWORD": os.environ.get("MYSQL_PASSWORD", ""),
            "HOST": os.environ.get("MYSQL_HOST", "127.0.0.1"),
            "PORT": os.environ.get("MYSQL_PORT", "3306"),
            "OPTIONS": {"charset": "utf8mb4", "isolation_level": "read committed"},
            "TEST": {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"},
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": ":memory:",
            "OPTIONS": {"transaction_mode": "IMMEDIATE"},
        }
    }

INVOICEPAY = {
    "SANDBOX": True,
    "REHIVE": {"QR_NAME": "Test Shop", "WEBHOOK_SECRET": "test-webhook-secret"},
    "HTTP_MAX_RETRIES": 2,
}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOGGING = {"version": 1, "disable_existing_loggers": False}

if os.environ.get("INVOICEPAY_TEST_DB_TAG") and DATABASE != "sqlite":  # two runs at once on one server
    DATABASES["default"]["TEST"] = {**DATABASES["default"].get("TEST", {}),  # type: ignore[dict-item]
                                    "NAME": f"test_test_{os.environ['INVOICEPAY_TEST_DB_TAG']}"}
