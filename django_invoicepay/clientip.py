"""The client's address: what the API's rate limits (and anything else that keys on the client) count by.

By default the client is the peer of the connection, `REMOTE_ADDR`, and every header is ignored:
any client can send `X-Forwarded-For` with any value, so a limit keyed on the header is no limit.

Behind reverse proxies, list them in `INVOICEPAY["TRUSTED_PROXIES"]`: addresses ("10.0.0.7"),
networks ("10.0.0.0/24", "2001:db8::/48"), or "unix" for a proxy that connects through a Unix
socket (the app server then has no peer address). The header is read from the right, the end
that the proxies wrote: the connection's peer must be a trusted proxy, and each address a trusted
proxy appended is believed only as far as it is itself a trusted proxy. The client is the right-most
address that is not a trusted proxy. Whatever a client writes in the header lands to the left of
that address and is never read. A malformed entry ends the walk at the last address vouched for.

A list of proxies rather than a count of hops: a count trusts whoever connects, so a client that
reaches the app past the proxy (another port, an internal route) chooses its own address, and a
count is wrong the day a CDN or a second load balancer is added in front. A list fails safe:
an address not on it is never believed.

Rate limits key IPv6 clients by their /64 network (`client_ident`): one home or server is given a
/64, and counting its addresses apart would let it rotate through 2**64 of them.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass

from django.http import HttpRequest

from .conf import invoicepay_settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: A TRUSTED_PROXIES entry for a proxy connected through a Unix socket (no peer address).
UNIX = "unix"
#: The identity of a client whose address cannot be known: such clients share one limit.
UNKNOWN = "unknown"
#: At most this many header entries are read: no real chain of proxies is longer.
MAX_HOPS = 32


@dataclass(frozen=True)
class TrustedProxies:
    networks: tuple[Network, ...] = ()
    unix: bool = False
    #: Entries that are not an address, a network or "unix", or that would trust every address.
    invalid: tuple[object, ...] = ()

    def __contains__(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks)


def parse_trusted_proxies(value: object) -> TrustedProxies:
    """Read a TRUSTED_PROXIES value. Invalid entries are set aside (and never trusted), for the checks."""
    if value is None:
        return TrustedProxies()
    if isinstance(value, str) or not isinstance(value, list | tuple | set | frozenset):
        return TrustedProxies(invalid=(value,))
    entries = tuple(value)
    try:
        return _parse_cached(entries)
    except TypeError:  # an unhashable entry (a list in the list): invalid, and not worth caching
        return _parse_entries(entries)


def _parse_entries(entries: tuple) -> TrustedProxies:
    networks: list[Network] = []
    invalid: list[object] = []
    unix = False
    for entry in entries:
        if entry == UNIX:
            unix = True
            continue
        try:
            network = ipaddress.ip_network(entry.strip(), strict=False) if isinstance(entry, str) else None
        except ValueError:
            network = None
        if network is None or network.prefixlen == 0:  # "0.0.0.0/0" would believe every header
            invalid.append(entry)
            continue
        mapped = network.network_address.ipv4_mapped if network.version == 6 else None
        if mapped is not None and network.prefixlen >= 96:  # ::ffff:10.0.0.7 is 10.0.0.7 (see parse_address)
            network = ipaddress.IPv4Network((mapped, network.prefixlen - 96))
        networks.append(network)
    return TrustedProxies(tuple(networks), unix, tuple(invalid))


_parse_cached = functools.lru_cache(maxsize=16)(_parse_entries)


def parse_address(text: object) -> IPAddress | None:
    """An address as a proxy writes it ("203.0.113.9", "2001:db8::1", "[2001:db8::1]:443",
    "203.0.113.9:51234"), or None. IPv4-mapped IPv6 addresses are read as IPv4."""
    if not isinstance(text, str):
        return None
    text = text.strip()
    if text.startswith("["):  # [IPv6] or [IPv6]:port
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not (rest.startswith(":") and rest[1:].isascii() and rest[1:].isdigit())):
            return None
    elif text.count(":") == 1:  # IPv4:port
        host, _, port = text.partition(":")
        if not (port.isascii() and port.isdigit()):
            return None
    else:
        host = text
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _client(request: HttpRequest) -> IPAddress | str:
    meta = request.META
    trusted = parse_trusted_proxies(invoicepay_settings.TRUSTED_PROXIES)
    peer = parse_address(meta.get("REMOTE_ADDR"))
    if peer is None:
        if not trusted.unix:  # a Unix socket (or a server that says nothing) and no proxy trusted on it
            return UNKNOWN
        vouched: IPAddress | str = UNIX
    elif peer not in trusted:
        return peer
    else:
        vouched = peer
    header = meta.get("HTTP_X_FORWARDED_FOR")
    if not isinstance(header, str):
        return vouched
    for entry in reversed(header.rsplit(",", MAX_HOPS)[-MAX_HOPS:]):
        address = parse_address(entry)
        if address is None:  # garbage, or nothing: stop at the last address a trusted proxy vouched for
            return vouched
        if address not in trusted:
            return address
        vouched = address
    return vouched


def client_address(request: HttpRequest) -> str:
    """The client's address: `REMOTE_ADDR`, or behind TRUSTED_PROXIES the right-most untrusted address
    of X-Forwarded-For. "unknown" when there is none (clients without an address share one limit)."""
    return str(_client(request))


def client_ident(request: HttpRequest) -> str:
    """What rate limits count by: the client's IPv4 address, or its IPv6 /64 network."""
    client = _client(request)
    if isinstance(client, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((int(client) >> 64 << 64, 64)))
    return str(client)
