"""System checks for `INVOICEPAY`: say clearly what is missing or wrong, at start-up.

Each check is a small function registered with Django (`manage.py check`, `migrate` and `runserver`
run them); `check_settings()` runs them all, for tests and scripts. Ids are stable: see the table in
docs/settings.md. A check never raises: a setting of the wrong type is reported, not tripped over.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
from collections.abc import Callable, Sequence
from numbers import Real
from typing import Any, overload
from urllib.parse import urlsplit

from django.apps import AppConfig, apps
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.db import router
from django.urls import NoReverseMatch, reverse
from django.utils.module_loading import import_string

from .clientip import parse_trusted_proxies
from .conf import DEFAULTS, INVOICE_STATUSES, NESTED, invoicepay_settings, is_rate, is_url, onepipe_configured

ID = "invoicepay"
APP_LABEL = "invoicepay"

#: Settings that must be True or False (a string "False" is true: the sandbox would be on).
BOOLEANS = {
    (): ("SANDBOX", "AUTO_REFUND_OVERPAYMENT", "AUTO_RENEW_EXPIRED", "HOLDS_ALLOW_ANONYMOUS"),
    ("ONEPIPE",): ("OTP_OVERRIDE",),
}
#: Settings that must be text ("" or None: not set).
STRINGS = {
    ("REHIVE",): ("API_KEY", "BUSINESS_ID", "WEBHOOK_SECRET", "QR_NAME"),
    ("ONEPIPE",): ("API_KEY", "CLIENT_SECRET", "AUTH_PROVIDER", "WEBHOOK_TOKEN"),
}
#: Settings that must be a positive integer; those marked True may also be None.
POSITIVE_INTEGERS = {
    "OTP_MAX_ATTEMPTS": False,
    "OTP_COOLDOWN": False,
    "WEBHOOK_MAX_BYTES": False,
    "WEBHOOK_MAX_DEPTH": False,
    "WEBHOOK_RETENTION_DAYS": True,
}
#: The base URLs the provider clients are built on.
URLS = (("REHIVE", "BUSINESS_URL"), ("REHIVE", "PAYMENT_REQUESTS_URL"), ("ONEPIPE", "BASE_URL"))
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
THROTTLE_SCOPES = {f"invoicepay_{name}" for name in DEFAULTS["THROTTLE_RATES"]} | {"invoicepay_otp_invoice"}


def _error(n: int, msg: str, hint: str = "") -> Error:
    return Error(msg, hint=hint or None, id=f"{ID}.E{n:03d}")


def _warning(n: int, msg: str, hint: str = "") -> Warning:
    return Warning(msg, hint=hint or None, id=f"{ID}.W{n:03d}")


def _raw() -> object:
    return getattr(settings, "INVOICEPAY", {})


def _well_formed() -> bool:
    """INVOICEPAY and its nested dicts are dicts: otherwise E001 says so and the other checks wait."""
    raw = _raw()
    return isinstance(raw, dict) and all(isinstance(raw.get(name, {}), dict) for name in NESTED)


def _name(path: tuple[str, ...], key: str) -> str:
    return "INVOICEPAY" + "".join(f"[{part!r}]" for part in (*path, key))


def _value(path: tuple[str, ...], key: str) -> object:
    """The effective value (defaults merged), for keys that exist in this version's DEFAULTS."""
    return getattr(invoicepay_settings, path[0]).get(key) if path else getattr(invoicepay_settings, key)


def _known(path: tuple[str, ...], key: str) -> bool:
    defaults = DEFAULTS[path[0]] if path else DEFAULTS
    return key in defaults


def _sandbox() -> bool:
    """Only a real True turns the sandbox on for the checks: SANDBOX = "False" meant off (and is E019)."""
    return invoicepay_settings.SANDBOX is True


#: What a check of this app computes, and the check Django runs (it takes app_configs and **kwargs).
CheckBody = Callable[[], list[CheckMessage]]
Check = Callable[..., list[CheckMessage]]
CHECKS: list[Check] = []


#: Checks of a production deployment: `manage.py check --deploy` runs them (as Django's own security checks).
DEPLOY_CHECKS: list[Check] = []


@overload
def invoicepay_check(func: CheckBody, *, always: bool = False, deploy: bool = False) -> Check: ...
@overload
def invoicepay_check(func: None = None, *, always: bool = False,
                     deploy: bool = False) -> Callable[[CheckBody], Check]: ...
def invoicepay_check(func: CheckBody | None = None, *, always: bool = False,
                     deploy: bool = False) -> Check | Callable[[CheckBody], Check]:
    """Add `func` to this app's checks (`CHECKS`, or `DEPLOY_CHECKS`; AppConfig.ready() registers them with
    Django). Unless `always`, it runs only on a well-formed INVOICEPAY (check_structure reports the rest)."""
    if func is None:
        return functools.partial(invoicepay_check, always=always, deploy=deploy)

    def check(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[CheckMessage]:
        if app_configs is not None and APP_LABEL not in {config.label for config in app_configs}:
            return []
        if not always and not _well_formed():
            return []
        return func()

    # not functools.wraps: Django reads the signature (it must take **kwargs), and __wrapped__ would hide it
    check.__name__, check.__qualname__, check.__doc__ = func.__name__, func.__qualname__, func.__doc__
    (DEPLOY_CHECKS if deploy else CHECKS).append(check)
    return check


def register_checks() -> None:
    """Called once from AppConfig.ready(): every check of this module, with Django's check framework."""
    for check in CHECKS:
        register(check, Tags.compatibility)
    for check in DEPLOY_CHECKS:
        register(check, Tags.compatibility, deploy=True)


def check_settings(app_configs: Sequence[AppConfig] | None = None, *, include_deployment_checks: bool = False,
                   **kwargs: Any) -> list[CheckMessage]:
    """Every invoicepay check, in order (what `manage.py check`, or with the flag `check --deploy`, runs for
    this app)."""
    checks = CHECKS + DEPLOY_CHECKS if include_deployment_checks else CHECKS
    return [message for check in checks for message in check(app_configs, **kwargs)]


@invoicepay_check(always=True)
def check_structure() -> list[CheckMessage]:
    """E001: INVOICEPAY and REHIVE/ONEPIPE are dicts. W001: an unknown key, usually a typo."""
    raw = _raw()
    if not isinstance(raw, dict):
        return [_error(1, "INVOICEPAY must be a dict.", "See the settings reference in the docs.")]
    messages: list[CheckMessage] = []
    for key in sorted(map(str, raw.keys() - DEFAULTS.keys())):
        messages.append(_warning(1, f"INVOICEPAY has an unknown key {key!r}.",
                                 f"Known keys: {', '.join(sorted(DEFAULTS))}."))
    for name in NESTED:
        value = raw.get(name, {})
        if not isinstance(value, dict):
            messages.append(_error(1, f"INVOICEPAY[{name!r}] must be a dict.",
                                   f"e.g. {{'{next(iter(DEFAULTS[name]))}': ...}}; see the settings reference."))
            continue
        for key in sorted(map(str, value.keys() - DEFAULTS[name].keys())):
            messages.append(_warning(1, f"INVOICEPAY[{name!r}] has an unknown key {key!r}.",
                                     f"Known keys: {', '.join(sorted(DEFAULTS[name]))}."))
    return messages


@invoicepay_check
def check_credentials() -> list[CheckMessage]:
    """E002, E003: Rehive credentials (unless the sandbox is on). E017: OnePipe needs both or neither."""
    if _sandbox():
        return []
    rehive, onepipe = invoicepay_settings.REHIVE, invoicepay_settings.ONEPIPE
    messages: list[CheckMessage] = []
    if not rehive.get("API_KEY"):
        messages.append(_error(2, "INVOICEPAY['REHIVE']['API_KEY'] is not set.",
                               "Set the business manager's API token, or SANDBOX: True for offline work."))
    if not rehive.get("BUSINESS_ID"):
        messages.append(_error(3, "INVOICEPAY['REHIVE']['BUSINESS_ID'] is not set.",
                               "Set your Rehive business id, or SANDBOX: True for offline work."))
    if bool(onepipe.get("API_KEY")) != bool(onepipe.get("CLIENT_SECRET")):
        messages.append(_error(17, "INVOICEPAY['ONEPIPE'] needs both API_KEY and CLIENT_SECRET (or neither).",
                               "The client secret signs every request and encrypts card, account and OTP data."))
    return messages


@invoicepay_check
def check_urls() -> list[CheckMessage]:
    """E004: a provider base URL that is not an http(s) URL. W002: plain http to a remote host, in production."""
    messages: list[CheckMessage] = []
    relaxed = _sandbox() or settings.DEBUG
    for path in URLS:
        name, url = _name(path[:1], path[1]), _value(path[:1], path[1])
        if not is_url(url):
            shown = f" {url!r}" if isinstance(url, str) and url else ""
            messages.append(_error(4, f"{name}{shown} is not an http(s) URL with a host.",
                                   f"Write the full base URL, e.g. {DEFAULTS[path[0]][path[1]]!r}."))
        elif url.lower().startswith("http:") and not relaxed and urlsplit(url).hostname not in LOCAL_HOSTS:
            messages.append(_warning(2, f"{name} uses plain http: API keys would travel in clear.",
                                     "Use https:// (plain http is accepted with DEBUG or the sandbox on)."))
    return messages


@invoicepay_check
def check_types() -> list[CheckMessage]:
    """E019: a setting that must be True or False. E021: a setting that must be text."""
    messages: list[CheckMessage] = []
    for path, keys in BOOLEANS.items():
        for key in keys:
            value = _value(path, key) if _known(path, key) else False
            if not isinstance(value, bool):
                messages.append(_error(19, f"{_name(path, key)} must be True or False, not {value!r}.",
                                       "A string such as 'False' counts as true in Python: write False. "
                                       "From the environment: os.environ.get('X', '') == 'true'."))
    for path, keys in STRINGS.items():
        for key in keys:
            value = _value(path, key) if _known(path, key) else ""
            if value is not None and not isinstance(value, str):
                messages.append(_error(21, f"{_name(path, key)} must be text, not {type(value).__name__}.",
                                       "Write a string (\"\" or None when not set)."))
    return messages


@invoicepay_check
def check_numbers() -> list[CheckMessage]:
    """E011 HTTP_TIMEOUT, E012 HTTP_MAX_RETRIES, E015 positive integers (OTP limits, webhook limits)."""
    s = invoicepay_settings
    messages: list[CheckMessage] = []
    timeout = s.HTTP_TIMEOUT
    # typeshed's numbers.Real declares no __gt__, so `0 < timeout` needs the ignore; the comparison is fine at run time.
    if isinstance(timeout, bool) or not isinstance(timeout, Real) or not 0 < timeout < float("inf"):  # type: ignore[operator]
        messages.append(_error(11, "INVOICEPAY['HTTP_TIMEOUT'] must be a positive number of seconds.",
                               f"The default is {DEFAULTS['HTTP_TIMEOUT']}."))
    retries = s.HTTP_MAX_RETRIES
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 10:
        messages.append(_error(12, "INVOICEPAY['HTTP_MAX_RETRIES'] must be an integer from 0 to 10.",
                               f"The default is {DEFAULTS['HTTP_MAX_RETRIES']}."))
    for name, may_be_none in POSITIVE_INTEGERS.items():
        if name not in DEFAULTS:
            continue
        value = getattr(s, name)
        if value is None and may_be_none:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            messages.append(_error(15, f"INVOICEPAY[{name!r}] must be a positive integer"
                                       f"{' or None' if may_be_none else ''}, not {value!r}.",
                                   f"The default is {DEFAULTS[name]!r}."))
    return messages


@invoicepay_check
def check_orders() -> list[CheckMessage]:
    """E005-E007 ORDER_STATES, E008 ORDER_ADAPTER, E009 ORDER_STATUS_FIELD."""
    s = invoicepay_settings
    messages = _check_order_states(s.ORDER_STATES)
    adapter = s.ORDER_ADAPTER
    if not isinstance(adapter, str) or not adapter:
        messages.append(_error(8, "INVOICEPAY['ORDER_ADAPTER'] must be the dotted path of a class.",
                               f"The default is {DEFAULTS['ORDER_ADAPTER']!r}."))
    else:
        try:
            import_string(adapter)
        except ImportError as exc:
            messages.append(_error(8, f"INVOICEPAY['ORDER_ADAPTER'] {adapter!r} cannot be imported: {exc}"))
    if not isinstance(s.ORDER_STATUS_FIELD, str) or not s.ORDER_STATUS_FIELD:
        messages.append(_error(9, "INVOICEPAY['ORDER_STATUS_FIELD'] must name a field of your order model."))
    return messages


def _check_order_states(states: object) -> list[CheckMessage]:
    if not isinstance(states, dict):
        return [_error(5, "INVOICEPAY['ORDER_STATES'] must map invoice statuses to order states.")]
    messages: list[CheckMessage] = []
    for key, value in states.items():
        if key not in INVOICE_STATUSES:
            messages.append(_error(6, f"INVOICEPAY['ORDER_STATES'] has an unknown invoice status {key!r}.",
                                   f"Invoice statuses: {', '.join(INVOICE_STATUSES)}."))
        if value is not None and (not isinstance(value, str) or not value):
            messages.append(_error(7, f"INVOICEPAY['ORDER_STATES'][{key!r}] must be a state name or None."))
    return messages


@invoicepay_check
def check_rehive_qr() -> list[CheckMessage]:
    """E010: QR_SCHEME is not a URI scheme. W006: no QR_NAME, so the wallet shows no payee name."""
    rehive = invoicepay_settings.REHIVE
    messages: list[CheckMessage] = []
    if not isinstance(rehive.get("QR_SCHEME"), str) or not re.fullmatch(r"[a-z][a-z0-9+.-]*", rehive["QR_SCHEME"]):
        messages.append(_error(10, "INVOICEPAY['REHIVE']['QR_SCHEME'] is not a URI scheme.",
                               "Use lower case letters, e.g. 'rehive'."))
    name = rehive.get("QR_NAME")
    if not _sandbox() and (name is None or (isinstance(name, str) and not name.strip())):
        messages.append(_warning(6, "INVOICEPAY['REHIVE']['QR_NAME'] is empty: the wallet shows no payee name "
                                    "when a Scan to Pay code is scanned.",
                                 "Set it to your shop's name, e.g. 'QR_NAME': 'Example Shop'."))
    return messages


@invoicepay_check
def check_onepipe() -> list[CheckMessage]:
    """E013 MOCK_MODE, E014 SECURE_ENCODING, E018/W005 ALLOWED_AUTH_TYPES."""
    onepipe = invoicepay_settings.ONEPIPE
    messages: list[CheckMessage] = []
    if onepipe.get("MOCK_MODE") not in {"inspect", "live"}:
        messages.append(_error(13, "INVOICEPAY['ONEPIPE']['MOCK_MODE'] must be 'inspect' or 'live'."))
    if str(onepipe.get("SECURE_ENCODING", "")).lower() not in {"utf-16-le", "utf-8"}:
        messages.append(_error(14, "INVOICEPAY['ONEPIPE']['SECURE_ENCODING'] must be 'utf-16-le' or 'utf-8'."))
    allowed = onepipe.get("ALLOWED_AUTH_TYPES")
    known = ("bank.account", "wallet", "card")
    if not isinstance(allowed, list | tuple) or not all(kind in known for kind in allowed):
        messages.append(
            _error(18, "INVOICEPAY['ONEPIPE']['ALLOWED_AUTH_TYPES'] takes 'bank.account', 'wallet', 'card'.")
        )
    elif "card" in allowed:
        messages.append(_warning(5, "INVOICEPAY['ONEPIPE']['ALLOWED_AUTH_TYPES'] allows cards.",
                                 "Card numbers, CVVs and PINs pass through your server: PCI DSS scope."))
    return messages


@invoicepay_check
def check_consent_api() -> list[CheckMessage]:
    """W008: the consent API is mounted but OnePipe is not configured, so it answers 503."""
    if onepipe_configured():
        return []
    try:
        url = reverse("invoicepay_api:consents")
    except NoReverseMatch:  # the shop does not mount the API: nothing answers
        return []
    return [_warning(8, f"The hold funds consent API is mounted at {url} but INVOICEPAY['ONEPIPE'] is not "
                        "configured: it answers 503 'not_configured'.",
                     "Set ONEPIPE API_KEY and CLIENT_SECRET (and a https BASE_URL), or silence "
                     "invoicepay.W008 in SILENCED_SYSTEM_CHECKS if you do not use hold funds.")]


@invoicepay_check
def check_throttle_rates() -> list[CheckMessage]:
    """E016: THROTTLE_RATES (merged over the defaults) has an unknown scope or a rate DRF cannot parse."""
    settings_dict = _raw()  # a dict: this check waits for a well-formed INVOICEPAY
    raw = settings_dict.get("THROTTLE_RATES", {}) if isinstance(settings_dict, dict) else {}
    if not isinstance(raw, dict):
        return [_error(16, "INVOICEPAY['THROTTLE_RATES'] must be a dict such as {'otp': '10/min'}.",
                       f"Scopes: {', '.join(DEFAULTS['THROTTLE_RATES'])}; the ones you leave out keep their default.")]
    messages: list[CheckMessage] = []
    for scope, rate in raw.items():
        if scope not in DEFAULTS["THROTTLE_RATES"]:
            messages.append(_error(16, f"INVOICEPAY['THROTTLE_RATES'] has an unknown scope {scope!r}.",
                                   f"Scopes: {', '.join(DEFAULTS['THROTTLE_RATES'])}."))
        elif rate is not None and not is_rate(rate):
            messages.append(_error(16, f"INVOICEPAY['THROTTLE_RATES'][{scope!r}] {rate!r} is not a rate.",
                                   "Write requests/period, e.g. '10/min', '100/hour', '5/s', '1000/day'; "
                                   "None turns the limit off."))
    drf = getattr(settings, "REST_FRAMEWORK", {})
    drf_rates = drf.get("DEFAULT_THROTTLE_RATES") if isinstance(drf, dict) else None
    for scope, rate in (drf_rates or {}).items() if isinstance(drf_rates, dict) else ():
        if not isinstance(scope, str) or not scope.startswith("invoicepay_"):
            continue
        if scope not in THROTTLE_SCOPES:
            messages.append(_error(16, f"REST_FRAMEWORK['DEFAULT_THROTTLE_RATES'] has an unknown scope {scope!r}.",
                                   f"invoicepay scopes: {', '.join(sorted(THROTTLE_SCOPES))}."))
        elif rate is not None and not is_rate(rate):
            messages.append(_error(16, f"REST_FRAMEWORK['DEFAULT_THROTTLE_RATES'][{scope!r}] {rate!r} is not a rate.",
                                   "Write requests/period, e.g. '10/min'."))
    return messages


@invoicepay_check
def check_trusted_proxies() -> list[CheckMessage]:
    """E020: TRUSTED_PROXIES is not a list of addresses, networks or "unix". W009: DRF's NUM_PROXIES is set."""
    value = invoicepay_settings.TRUSTED_PROXIES
    messages: list[CheckMessage] = []
    example = "e.g. ['10.0.0.7'], ['10.0.0.0/24', '2001:db8::/48'] or ['unix'] (docs/deployment.md)."
    if isinstance(value, bool | int | float):
        messages.append(_error(20, "INVOICEPAY['TRUSTED_PROXIES'] is a list of proxy addresses, not a number of hops.",
                               f"{example} A count would believe any client that reaches the app past the proxy."))
    elif isinstance(value, str):
        messages.append(_error(20, f"INVOICEPAY['TRUSTED_PROXIES'] must be a list, not the string {value!r}.",
                               f"Write [{value!r}]."))
    elif value is not None and not isinstance(value, list | tuple | set | frozenset):
        messages.append(_error(20, "INVOICEPAY['TRUSTED_PROXIES'] must be a list of proxy addresses.", example))
    else:
        for entry in parse_trusted_proxies(value).invalid:
            messages.append(_error(20, f"INVOICEPAY['TRUSTED_PROXIES'] entry {entry!r} is not a proxy address, "
                                       "a network or 'unix' (a network of every address is refused).", example))
    drf = getattr(settings, "REST_FRAMEWORK", {})
    if isinstance(drf, dict) and drf.get("NUM_PROXIES") is not None:
        messages.append(_warning(9, "REST_FRAMEWORK['NUM_PROXIES'] is set: the invoicepay API ignores it.",
                                 "Its rate limits take the client's address from INVOICEPAY['TRUSTED_PROXIES'] "
                                 "(docs/deployment.md#reverse-proxies)."))
    return messages


@invoicepay_check
def check_sandbox() -> list[CheckMessage]:
    """W003: the sandbox is on while DEBUG is off. E023: SANDBOX_STATE_FILE is not a path."""
    messages: list[CheckMessage] = []
    state_file = invoicepay_settings.SANDBOX_STATE_FILE
    if state_file is not None and not isinstance(state_file, str | os.PathLike):
        messages.append(_error(23, "INVOICEPAY['SANDBOX_STATE_FILE'] must be a file path or None.",
                               "e.g. str(BASE_DIR / '.invoicepay-sandbox.sqlite3'), or ':memory:' (docs/sandbox.md)."))
    if _sandbox() and not settings.DEBUG:
        messages.append(_warning(3, "INVOICEPAY['SANDBOX'] is on while DEBUG is off.",
                                 "The sandbox takes no real payments: turn it off in production. (With DEBUG off "
                                 "each process has its own sandbox unless SANDBOX_STATE_FILE names a file.)"))
    return messages


@invoicepay_check
def check_webhooks() -> list[CheckMessage]:
    """W004: no Rehive webhook secret. E024: ONEPIPE WEBHOOK_ALLOWED_IPS is not a list of addresses/networks."""
    messages: list[CheckMessage] = []
    if not _sandbox() and not invoicepay_settings.REHIVE.get("WEBHOOK_SECRET"):
        messages.append(_warning(4, "INVOICEPAY['REHIVE']['WEBHOOK_SECRET'] is not set: every webhook will be refused.",
                                 "Set the secret you registered with the provider's webhooks."))
    allowed = invoicepay_settings.ONEPIPE.get("WEBHOOK_ALLOWED_IPS") or []
    entries = allowed if isinstance(allowed, list | tuple | set | frozenset) else [allowed]
    bad = [entry for entry in entries if not _is_network(entry)]
    if bad or isinstance(allowed, str):
        messages.append(_error(24, f"INVOICEPAY['ONEPIPE']['WEBHOOK_ALLOWED_IPS'] must be a list of addresses or "
                                   f"networks: {', '.join(map(repr, bad or [allowed]))}.",
                               "e.g. ['203.0.113.0/24', '198.51.100.7']; [] accepts every address."))
    return messages


def _is_network(entry: object) -> bool:
    """What the OnePipe webhook receiver can read as an address or network."""
    try:
        ipaddress.ip_network(str(entry), strict=False)
    except ValueError:
        return False
    return True


@invoicepay_check
def check_phone_region() -> list[CheckMessage]:
    """E022: PHONE_REGION is neither None nor a region code phonenumbers knows."""
    region = invoicepay_settings.PHONE_REGION
    if region is None:
        return []
    import phonenumbers  # only when a region is set: a server that parses no numbers never loads it

    if isinstance(region, str) and region in phonenumbers.SUPPORTED_REGIONS:
        return []
    return [_error(22, f"INVOICEPAY['PHONE_REGION'] {region!r} is not a region code.",
                   "Use an upper-case ISO 3166 code such as 'ZA' or 'NG', or None (international format only).")]


@invoicepay_check
def check_sqlite() -> list[CheckMessage]:
    """W007: the database our models are written to is SQLite without transaction_mode IMMEDIATE."""
    try:
        models = apps.get_app_config(APP_LABEL).get_models()
    except LookupError:
        return []
    messages: list[CheckMessage] = []
    for alias in sorted({router.db_for_write(model) for model in models}):
        database = settings.DATABASES.get(alias) or {}
        if "sqlite" not in str(database.get("ENGINE", "")):
            continue
        options = database.get("OPTIONS") or {}
        mode = options.get("transaction_mode") if isinstance(options, dict) else None
        if str(mode or "").upper() not in {"IMMEDIATE", "EXCLUSIVE"}:
            messages.append(_warning(7, f"DATABASES[{alias!r}] is SQLite without "
                                        "\"OPTIONS\": {\"transaction_mode\": \"IMMEDIATE\"}: concurrent requests "
                                        "that write an invoice fail with 'database is locked'.",
                                     "Add \"OPTIONS\": {\"transaction_mode\": \"IMMEDIATE\", \"timeout\": 20} "
                                     "(or use PostgreSQL/MariaDB in production)."))
    return messages


#: Caches that every process keeps for itself (or that keep nothing): no rate limit holds across processes.
PROCESS_LOCAL_CACHES = ("django.core.cache.backends.locmem.LocMemCache", "django.core.cache.backends.dummy.DummyCache")


@invoicepay_check(deploy=True)
def check_shared_cache() -> list[CheckMessage]:
    """W010 (check --deploy): DEBUG is off and the default cache is process-local, so the API's rate limits
    count per process (DummyCache: not at all). A deploy check: tests and one-process setups are fine."""
    caches = getattr(settings, "CACHES", None)
    default = caches.get("default") if isinstance(caches, dict) else None
    backend = default.get("BACKEND") if isinstance(default, dict) else None
    if settings.DEBUG or backend not in PROCESS_LOCAL_CACHES:
        return []
    return [_warning(10, f"CACHES['default'] is {str(backend).rsplit('.', 1)[-1]}: the API's rate limits "
                         "(THROTTLE_RATES) do not hold across processes.",
                     "With more than one process use a shared cache, e.g. Django's RedisCache "
                     "(docs/deployment.md#shared-cache).")]


@invoicepay_check
def check_order_model() -> list[CheckMessage]:
    """E025: ORDER_MODEL is set but does not name an installed model."""
    from django.apps import apps

    value = invoicepay_settings.ORDER_MODEL
    if value is None:
        return []
    try:
        apps.get_model(str(value)) if isinstance(value, str) else None
        known = isinstance(value, str)
    except (ValueError, LookupError):
        known = False
    if not known:
        return [_error(25, f"INVOICEPAY['ORDER_MODEL'] {value!r} is not an installed model.",
                       "Write 'app_label.ModelName', e.g. 'shop.Order', or leave it None.")]
    return []


@invoicepay_check
def check_order_states_fit_the_order_model() -> list[CheckMessage]:
    """E026: with ORDER_MODEL known and the default adapter, ORDER_STATUS_FIELD must exist and take every
    state ORDER_STATES maps to (its choices, its length)."""
    from django.apps import apps

    from .errors import OrderAdapterError
    from .orders import StatusFieldOrderAdapter, get_order_adapter, state_refused, status_field

    model_name, states = invoicepay_settings.ORDER_MODEL, invoicepay_settings.ORDER_STATES
    if not isinstance(model_name, str) or not isinstance(states, dict):
        return []  # E025 / E006 say what is wrong
    try:
        model = apps.get_model(model_name)
        if not isinstance(get_order_adapter(), StatusFieldOrderAdapter):
            return []  # a shop's own adapter decides what a state means
        field = model._meta.get_field(status_field(model))
    except OrderAdapterError as exc:
        return [_error(26, exc.message)]
    except Exception:  # noqa: BLE001 - E008 / E025 report an adapter or model that cannot be loaded
        return []
    messages: list[CheckMessage] = []
    for status, state in states.items():
        refused = state_refused(field, state) if isinstance(state, str) else ""
        if refused:
            messages.append(_error(26, f"INVOICEPAY['ORDER_STATES'] maps {status!r} to {state!r}, which "
                                       f"{model.__name__}.{field.name} does not accept ({refused}).",
                                   "Map it to a state your orders have, or to None to leave the order alone."))
    return messages
