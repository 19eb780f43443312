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

from .conf import invoicepay_settings
from .http import HttpTransport, RetryPolicy, with_trailing_slash
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
        return cls(
            api_key=s.credential("REHIVE", "API_KEY"),
            business_id=s.credential("REHIVE", "BUSINESS_ID"),
            business_url=with_trailing_slash(s.REHIVE["BUSINESS_URL"]),
            payment_requests_url=with_trailing_slash(s.REHIVE["PAYMENT_REQUESTS_URL"]),
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
        return cls(
            api_key=s.credential("ONEPIPE", "API_KEY"),
            client_secret=s.credential("ONEPIPE", "CLIENT_SECRET"),
            base_url=with_trailing_slash(onepipe["BASE_URL"]),
            mock_mode=str(onepipe["MOCK_MODE"]).lower(),
            auth_provider=s.credential("ONEPIPE", "AUTH_PROVIDER"),
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
