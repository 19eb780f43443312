"""Rate limits hold across processes with a shared cache (Redis); OTP lock-outs hold whatever the cache.

Two real gunicorn processes (one worker, four threads each) share one database (a SQLite file, or a
database of this test's own on PostgreSQL/MariaDB with INVOICEPAY_TEST_DB), one sandbox
(SANDBOX_STATE_FILE) and one cache: Redis DB 4 under a key prefix of this run, deleted at the end.
The test is the shop's reverse proxy (TRUSTED_PROXIES): each test is a client address of its own.

The servers' WSGI application (`wsgi_app()`) and the helper that prepares the database are this file,
as in test_sandbox_processes.py. Redis must be running: without it these tests fail and say so.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from django.test import override_settings

from django_invoicepay.checks import check_settings
from django_invoicepay.sandbox import SANDBOX_ONEPIPE_OTP, SANDBOX_OTP
from tests.reliability.harness import (  # noqa: F401 - real_time: the fixture `sleeps` here, real time
    ROOT,
    Run,
    free_port,
    prepare_database,
    real_time,
    server_connection,
    wait_for,
)

#: This suite's Redis database: only this run's prefix's keys are ever deleted.
REDIS = os.environ.get("INVOICEPAY_TEST_REDIS", "redis://127.0.0.1:6379/4")
LIMIT = 4  # the payer and webhook rates of the servers, per hour (a boundary rarely falls inside a test)
RATES = {"payer": f"{LIMIT}/hour", "webhook": f"{LIMIT}/hour", "otp": "1000/hour", "read": "1000/hour"}
CONSENTS = "/invoicepay/api/holds/consents/"
ONEPIPE = "/invoicepay/webhooks/onepipe/"
CUSTOMER = {"firstname": "Uju", "surname": "Usmanu", "email": "uju@example.com", "mobile_no": "2348022222208"}
CONSENT = {"auth_type": "bank.account", "credentials": {"account_number": "0123456789", "bank_code": "058"},
           "customer": CUSTOMER}
CLIENTS = (f"198.51.100.{n}" for n in itertools.count(10))  # a new client address for each test


def redis_cache(location: str, prefix: str) -> dict:
    # short timeouts: a cache that does not answer must not hold a request for the OS's TCP timeout
    return {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": location,
                        "KEY_PREFIX": prefix, "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1}}}


LOCAL = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


@dataclass
class Shop:
    """The shop's processes: `urls[i]` is process i; `post` sends as this test's client, through the proxy."""

    run: Run
    urls: list[str]
    client: str = "198.51.100.1"

    def post(self, process: int, path: str, body: dict) -> requests.Response:
        return requests.post(self.urls[process % len(self.urls)] + path, json=body, timeout=30,
                             headers={"X-Forwarded-For": self.client})

    def spread(self, path: str, bodies: list[dict], *, at_once: bool = False) -> list[requests.Response]:
        """POST each body to the processes in turn (A, B, A, ...), one after the other or all at once."""
        if not at_once:
            return [self.post(n, path, body) for n, body in enumerate(bodies)]
        start = threading.Barrier(len(bodies))

        def send(n: int) -> requests.Response:
            start.wait(timeout=30)
            return self.post(n, path, bodies[n])

        with ThreadPoolExecutor(len(bodies)) as pool:
            return list(pool.map(send, range(len(bodies))))

    def helper(self, *args: str) -> dict:
        done = subprocess.run([sys.executable, "-m", "tests.test_shared_cache", *args], env=self.run.env, cwd=ROOT,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def redis_prefix() -> Iterator[str]:
    """This run's key prefix in Redis DB 4; fails (not skips) when Redis is not there, and cleans up after."""
    import redis

    client = redis.Redis.from_url(REDIS, socket_connect_timeout=2)
    try:
        client.ping()
        problem = ""
    except redis.RedisError as exc:
        problem = f"{type(exc).__name__}: {exc}"
    if problem:
        pytest.fail(f"Redis is not reachable at {REDIS} ({problem}). These tests prove the rate limits across "
                    "processes with Django's Redis cache: start Redis (or set INVOICEPAY_TEST_REDIS).", pytrace=False)
    prefix = f"invoicepay-shared-cache-{uuid.uuid4().hex[:12]}"
    yield prefix
    keys = list(client.scan_iter(match=f"{prefix}:*", count=500))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(scope="module")
def database(tmp_path_factory) -> Iterator[tuple[str, dict]]:
    """The database the processes share: a SQLite file, or a database of our own on the server engine."""
    engine = os.environ.get("INVOICEPAY_TEST_DB", "sqlite")
    tmp = tmp_path_factory.mktemp("shared-cache")
    if engine not in ("postgres", "mariadb"):
        yield "sqlite", {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp / "shop.sqlite3"),
                         "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 30}}
        return
    name = prepare_database(engine, tmp, f"invoicepay_shared_cache_{uuid.uuid4().hex[:8]}")
    from django.conf import settings

    config = {**settings.DATABASES["default"], "NAME": name}
    config.pop("TEST", None)
    yield engine, config
    conn = server_connection(engine)  # the database is ours: drop it
    try:
        conn.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' if engine == "postgres"
                              else f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        conn.close()


def start_shop(tmp: Path, database: tuple[str, dict], caches: dict, processes: int = 2) -> Shop:
    """Migrate the shared database, then start the processes, each gunicorn with one worker."""
    engine, config = database
    shop = {"DATABASES": {"default": config}, "CACHES": caches,
            "INVOICEPAY": {"SANDBOX": True, "SANDBOX_STATE_FILE": str(tmp / "sandbox.sqlite3"),
                           "THROTTLE_RATES": RATES, "TRUSTED_PROXIES": ["127.0.0.1"], "HOLDS_ALLOW_ANONYMOUS": True,
                           "REHIVE": {"QR_NAME": "Cache Shop", "WEBHOOK_SECRET": "cache-webhook-secret"}}}
    started = Shop(Run(engine, config["NAME"], tmp, INVOICEPAY_SHARED_CACHE_SHOP=json.dumps(shop)), [],
                   client=next(CLIENTS))
    started.helper("migrate")
    try:
        for n in range(processes):
            port = free_port()
            started.run.start(f"gunicorn-{n}", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
                              "--threads", "4", "--timeout", "60", "--no-control-socket",  # one path per user: shared
                              "tests.test_shared_cache:wsgi_app()", module=True)
            started.urls.append(f"http://127.0.0.1:{port}")
        for url, process in zip(started.urls, started.run.processes, strict=True):
            wait_for(url + "/", process)
    except BaseException:
        started.run.stop()
        raise
    return started


def own_database(tmp: Path, database: tuple[str, dict]) -> tuple[str, dict]:
    """A SQLite file of this test's own (the module's shop has migrated the shared one); a server database
    is shared: each shop's rows are its own."""
    engine, config = database
    return (engine, {**config, "NAME": str(tmp / "shop.sqlite3")}) if engine == "sqlite" else database


@pytest.fixture(scope="module")
def redis_shop(tmp_path_factory, database, redis_prefix) -> Iterator[Shop]:
    started = start_shop(tmp_path_factory.mktemp("redis-shop"), database, redis_cache(REDIS, redis_prefix))
    try:
        yield started
    finally:
        started.run.stop()


@pytest.fixture
def shop(redis_shop) -> Shop:
    """The Redis-cached shop, seen from a client address of this test's own."""
    redis_shop.client = next(CLIENTS)
    return redis_shop


def statuses(responses: list[requests.Response]) -> Counter:
    return Counter(response.status_code for response in responses)


def assert_throttled(responses: list[requests.Response], allowed: int, answered: int) -> None:
    """`allowed` answers of `answered` (status), every other one a 429 with a Retry-After within the hour."""
    assert statuses(responses) == Counter({answered: allowed, 429: len(responses) - allowed})
    for refused in (response for response in responses if response.status_code == 429):
        assert 1 <= int(refused.headers["Retry-After"]) <= 2 * 3600


# -- the rate limits, across processes ------------------------------------------------------------------


@pytest.mark.parametrize("at_once", [False, True], ids=["alternating", "concurrent"])
def test_the_payer_rate_holds_across_processes(shop, at_once):
    """An empty consent request is a 400 that reaches no provider: LIMIT of them, then 429s, from both."""
    responses = shop.spread(CONSENTS, [{}] * (3 * LIMIT), at_once=at_once)
    assert_throttled(responses, LIMIT, 400)
    refused_by = {n % 2 for n, response in enumerate(responses) if response.status_code == 429}
    assert refused_by == {0, 1}  # both processes refused: they share the count


@pytest.mark.parametrize("at_once", [False, True], ids=["alternating", "concurrent"])
def test_the_onepipe_receivers_rate_holds_across_processes(shop, at_once):
    bodies = [{"request_ref": f"r-{shop.client}-{n}", "request_type": "transaction_notification",
               "details": {"transaction_ref": "unknown"}} for n in range(3 * LIMIT)]
    assert_throttled(shop.spread(ONEPIPE, bodies, at_once=at_once), LIMIT, 200)


def test_a_process_local_cache_lets_each_process_count_on_its_own(tmp_path, database):
    """Why the shared cache: with LocMemCache, two processes let twice the rate through (check W010)."""
    local = start_shop(tmp_path, own_database(tmp_path, database), LOCAL)
    try:
        responses = local.spread(CONSENTS, [{}] * (3 * LIMIT))
    finally:
        local.run.stop()
    assert statuses(responses)[400] == 2 * LIMIT  # LIMIT per process: the rate does not hold


@pytest.mark.django_db
def test_the_count_slides_over_a_window_boundary(monkeypatch):
    """One process, a stopped clock (DRF's `timer` hook): LIMIT requests just before a minute ends still
    count just after it (weighted by the part of the last window still in the sliding one)."""
    from rest_framework.test import APIClient

    from django_invoicepay.api.throttling import InvoicePayThrottle

    clock = [60 * 1000 - 1.0]  # one second before a minute ends
    monkeypatch.setattr(InvoicePayThrottle, "timer", staticmethod(lambda: clock[0]))
    api = APIClient(REMOTE_ADDR="203.0.113.50")

    def send(count: int) -> list:
        return [api.post(CONSENTS, {}, format="json") for _ in range(count)]

    with override_settings(INVOICEPAY={"SANDBOX": True, "HOLDS_ALLOW_ANONYMOUS": True,
                                       "THROTTLE_RATES": {"payer": f"{LIMIT}/min"}}):
        before = send(LIMIT + 1)
        clock[0] += 2  # one second into the next minute: the last one weighs 59/60
        after = send(1)
        clock[0] += 15  # 16 s in: 1 + 4 x 44/60 <= 4, one more may pass
        later = send(2)
    assert [r.status_code for r in before + after + later] == [400] * LIMIT + [429, 429, 400, 429]
    assert before[-1]["Retry-After"] == "16" and after[0]["Retry-After"] == "14"  # both: at 15 s into the minute


# -- OTP guessing, across processes ----------------------------------------------------------------------


def guess_until_locked(shop: Shop, path: str, right_code: str, *, at_once: bool) -> None:
    """Wrong codes to both processes: OTP_MAX_ATTEMPTS (5) are checked in all, then both refuse every code,
    even the right one, as locked (429 otp_locked) with the same cooling-off."""
    answers = shop.spread(path, [{"otp": "000000"}] * 8, at_once=at_once)
    assert {r.status_code for r in answers} <= {400, 409, 429}  # 409: another code was being checked
    while statuses(answers)[400] < 5 and len(answers) < 20:  # guesses that met a 409 were not counted
        answers.append(shop.post(len(answers), path, {"otp": "000000"}))
    assert statuses(answers)[400] == 5, statuses(answers)  # OTP_MAX_ATTEMPTS checked in all, never more
    locked = [shop.post(process, path, {"otp": code}) for process in (0, 1) for code in ("000000", right_code)]
    assert {(r.status_code, r.json()["code"]) for r in locked} == {(429, "otp_locked")}
    waits = [int(r.headers["Retry-After"]) for r in locked]
    assert 800 <= min(waits) and max(waits) - min(waits) <= 2  # OTP_COOLDOWN (900 s), the same from both


@pytest.mark.parametrize("at_once", [False, True], ids=["alternating", "concurrent"])
def test_wrong_codes_to_different_processes_lock_the_invoice(shop, at_once):
    token = shop.helper("invoice")["token"]
    path = f"/invoicepay/api/invoices/{token}/"
    assert shop.post(0, path + "processor/", {"processor": "native"}).status_code == 200
    payer = shop.post(1, path + "payer/", {"payer_email": "ann@example.com", "payer_mobile_number": "+27821234567"})
    assert payer.status_code == 200
    guess_until_locked(shop, path + "otp/", SANDBOX_OTP, at_once=at_once)
    assert shop.helper("otp", "invoice", token) == {"failures": 5, "locked": True, "status": "processing"}


def test_wrong_codes_to_different_processes_lock_a_hold_consent(shop):
    created = shop.post(0, CONSENTS, CONSENT)
    assert created.status_code == 201, created.text
    token = created.json()["id"]
    guess_until_locked(shop, f"{CONSENTS}{token}/otp/", SANDBOX_ONEPIPE_OTP, at_once=False)
    assert shop.helper("otp", "consent", token) == {"failures": 5, "locked": True, "status": "waiting_for_otp"}


# -- the cache goes down --------------------------------------------------------------------------------


@pytest.fixture
def own_redis(tmp_path) -> Iterator[tuple[str, Callable[[], None]]]:
    """A Redis server of this test's own (its URL, and a function that kills it); without the redis-server
    program, an address where nothing listens (the cache is down from the start)."""
    port = free_port()
    program = shutil.which("redis-server")
    if program is None:
        yield f"redis://127.0.0.1:{port}/0", lambda: None
        return
    server = subprocess.Popen([program, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                               "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def kill() -> None:
        server.kill()
        server.wait(timeout=10)

    try:
        import redis

        for _ in range(100):
            try:
                redis.Redis(port=port, socket_connect_timeout=0.2).ping()
                break
            except redis.ConnectionError:
                threading.Event().wait(0.05)
        yield f"redis://127.0.0.1:{port}/0", kill
    finally:
        if server.poll() is None:
            kill()


def test_when_the_cache_goes_down_the_api_works_and_webhooks_wait_for_a_retry(tmp_path, database, own_redis):
    """Fail open on the payer API (no limit, logged), closed on the webhook receiver (503: the provider
    retries); never a 500. docs/security.md, "Rate limits and the cache"."""
    location, kill = own_redis
    down = start_shop(tmp_path, own_database(tmp_path, database), redis_cache(location, "down"))
    try:
        before = down.spread(CONSENTS, [{}] * 2)  # counted in Redis while it is up
        kill()
        payer = down.spread(CONSENTS, [{}] * (3 * LIMIT))
        created = down.post(0, CONSENTS, CONSENT)
        assert created.status_code == 201, created.text[-500:]
        otp = down.post(1, f"{CONSENTS}{created.json()['id']}/otp/", {"otp": SANDBOX_ONEPIPE_OTP})
        webhook = down.post(0, ONEPIPE, {"request_ref": "r-down", "request_type": "transaction_notification",
                                         "details": {"transaction_ref": "unknown"}})
        output = down.run.outputs()
    finally:
        down.run.stop()
    assert statuses(before) == Counter({400: 2})
    assert statuses(payer) == Counter({400: 3 * LIMIT})  # no limit while the cache is down, and no 500
    assert (otp.status_code, otp.json()["status"]) == (200, "active")  # the OTP lock-out is on the row
    assert webhook.status_code == 503 and webhook.headers["Retry-After"]  # the provider retries later
    assert "rate limits are off until it is back" in output
    assert " 500 " not in output and "Internal Server Error" not in output


# -- the system check ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("caches", "debug", "expected"),
    [
        (LOCAL, False, ["invoicepay.W010"]),
        ({"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}, False, ["invoicepay.W010"]),
        (LOCAL, True, []),  # development: one process
        (redis_cache(REDIS, "check"), False, []),
        ({"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "cache"}}, False, []),
    ],
)
def test_a_process_local_cache_in_production_is_a_deployment_warning(caches, debug, expected):
    production = {"REHIVE": {"API_KEY": "key", "BUSINESS_ID": "biz", "WEBHOOK_SECRET": "s", "QR_NAME": "Shop"},
                  "ONEPIPE": {"API_KEY": "op-key", "CLIENT_SECRET": "op-secret"}}
    with override_settings(INVOICEPAY=production, CACHES=caches, DEBUG=debug):
        found = check_settings(include_deployment_checks=True)
        assert check_settings() == []  # a deployment check: `manage.py check --deploy`
    assert [message.id for message in found] == expected
    if expected:
        assert "CACHES" in found[0].msg and "redis" in found[0].hint.lower()


# -- the processes' side ---------------------------------------------------------------------------------


def _setup() -> None:
    """The test settings, with the database, cache and INVOICEPAY of INVOICEPAY_SHARED_CACHE_SHOP."""
    import django
    from django.conf import settings

    import tests.settings as base

    values = {name: getattr(base, name) for name in dir(base) if name.isupper()}
    values.update(json.loads(os.environ["INVOICEPAY_SHARED_CACHE_SHOP"]), DEBUG=False, ALLOWED_HOSTS=["127.0.0.1"])
    settings.configure(**values)
    django.setup()


def wsgi_app():  # noqa: ANN201 - gunicorn's application factory ("tests.test_shared_cache:wsgi_app()")
    _setup()
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


def _invoice() -> dict:
    from shop.models import Order

    from django_invoicepay.models import Invoice

    order = Order.objects.create(description="Coffee beans", total=1250)
    return {"token": Invoice.objects.create_for(order, amount=1250, description="Coffee beans").public_token}


def _otp(kind: str, token: str) -> dict:
    from django_invoicepay.models import HoldConsent, Invoice

    row = (Invoice if kind == "invoice" else HoldConsent).objects.get(public_token=token)
    return {"failures": row.otp_failures, "locked": row.otp_locked_until is not None, "status": row.status}


if __name__ == "__main__":
    action, *arguments = sys.argv[1:]
    _setup()
    if action == "migrate":
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        print(json.dumps({}))  # noqa: T201 - the helper's answer to the test
    else:
        print(json.dumps({"invoice": _invoice, "otp": _otp}[action](*arguments)))  # noqa: T201
