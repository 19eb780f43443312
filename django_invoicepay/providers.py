"""Configured provider clients, built from the lazy settings.

The only place where settings meet the provider clients. With `SANDBOX` on, the
client's session gets the in-process simulator mounted on the configured base URLs:
the client code path is exactly the production one, minus the socket.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import requests
from requests.adapters import BaseAdapter

from .conf import SANDBOX_ONEPIPE_KEY, SANDBOX_ONEPIPE_SECRET, invoicepay_settings
from .http import HttpTransport, RetryPolicy
from .onepipe import OnePipeClient
from .rehive import RehiveClient


@dataclass(frozen=True)
class RehiveConfig:
    api_key: str = field(repr=False)
    business_id: str
    business_url: str
    payment_requests_url: str
    timeout: float
    max_retries: int
    sandbox: bool
    sandbox_state_file: str | None

    @classmethod
    def from_settings(cls) -> RehiveConfig:
        s = invoicepay_settings

        def base(url: str) -> str:
            return url if url.endswith("/") else url + "/"

        return cls(
            api_key=s.rehive_api_key,
            business_id=s.rehive_business_id,
            business_url=base(s.REHIVE["BUSINESS_URL"]),
            payment_requests_url=base(s.REHIVE["PAYMENT_REQUESTS_URL"]),
            timeout=float(s.HTTP_TIMEOUT),
            max_retries=int(s.HTTP_MAX_RETRIES),
            sandbox=s.sandbox_on,
            sandbox_state_file=s.SANDBOX_STATE_FILE,
        )


_Config = TypeVar("_Config", "RehiveConfig", "OnePipeConfig")


def _transport(provider: str, config: _Config, sandbox_mounts: dict[str, Callable[[_Config], BaseAdapter]]
               ) -> HttpTransport:
    """One pooled session per configuration; with SANDBOX on, the simulator is mounted on the
    provider's base URLs so the client's code path is exactly the production one, minus the socket."""
    session = requests.Session()
    session.headers["User-Agent"] = "django-invoicepay"
    if config.sandbox:
        for url, make_adapter in sandbox_mounts.items():
            session.mount(url, make_adapter(config))
    return HttpTransport(session, provider=provider, timeout=config.timeout,
                         retry=RetryPolicy(max_retries=config.max_retries))


@functools.lru_cache(maxsize=8)
def _rehive_client(config: RehiveConfig) -> RehiveClient:
    from .sandbox import rehive_adapter

    transport = _transport("rehive", config, {config.business_url: rehive_adapter,
                                              config.payment_requests_url: rehive_adapter})
    return RehiveClient(
        transport=transport,
        api_key=config.api_key,
        business_id=config.business_id,
        business_url=config.business_url,
        payment_requests_url=config.payment_requests_url,
    )


def rehive_client() -> RehiveClient:
    """The Rehive client for the current settings (one pooled session per configuration)."""
    return _rehive_client(RehiveConfig.from_settings())


@dataclass(frozen=True)
class OnePipeConfig:
    api_key: str = field(repr=False)
    client_secret: str = field(repr=False)
    base_url: str
    mock_mode: str
    auth_provider: str
    encoding: str
    timeout: float
    max_retries: int
    sandbox: bool
    sandbox_state_file: str | None

    @classmethod
    def from_settings(cls) -> OnePipeConfig:
        s = invoicepay_settings
        onepipe = s.ONEPIPE
        base = onepipe["BASE_URL"] if onepipe["BASE_URL"].endswith("/") else onepipe["BASE_URL"] + "/"
        return cls(
            api_key=onepipe["API_KEY"] or (SANDBOX_ONEPIPE_KEY if s.sandbox_on else ""),
            client_secret=onepipe["CLIENT_SECRET"] or (SANDBOX_ONEPIPE_SECRET if s.sandbox_on else ""),
            base_url=base,
            mock_mode=str(onepipe["MOCK_MODE"]).lower(),
            auth_provider=onepipe["AUTH_PROVIDER"] or ("Sandbox" if s.sandbox_on else ""),
            encoding=str(onepipe["SECURE_ENCODING"]).lower(),
            timeout=float(s.HTTP_TIMEOUT),
            max_retries=int(s.HTTP_MAX_RETRIES),
            sandbox=s.sandbox_on,
            sandbox_state_file=s.SANDBOX_STATE_FILE,
        )


@functools.lru_cache(maxsize=8)
def _onepipe_client(config: OnePipeConfig) -> OnePipeClient:
    from .sandbox import onepipe_adapter

    transport = _transport("onepipe", config, {config.base_url: onepipe_adapter})
    return OnePipeClient(transport=transport, api_key=config.api_key, client_secret=config.client_secret,
                         base_url=config.base_url, mock_mode=config.mock_mode, auth_provider=config.auth_provider)


def onepipe_client() -> OnePipeClient:
    """The OnePipe client for the current settings."""
    return _onepipe_client(OnePipeConfig.from_settings())
