"""The client's address, and the country it is in.

One place says who the client of an HTTP call is, for the API and the gateway endpoints
alike: the peer of the connection, unless the peer is a configured trusted proxy, whose
`X-Forwarded-For` then names the hop before it (and so on, while the hops are trusted
proxies too). Entries a client wrote before the first untrusted hop are never read.

An address is placed in a country by the configured networks (CIDR → country, the most
specific first), then by an offline IP-to-country database: `iptocc` (the default), the
Regional Internet Registries' delegations embedded in the package and refreshed with each
of its releases, so upgrading the package updates the data; or `none`. A registry's
country is where the block was assigned, not necessarily where it is used (about 95 % of
IPv4 addresses agree with commercial databases), which is why the networks a deployment
knows come first. An address neither places is `unknown`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

import iptocc

from ..model.errors import DataVisaError
from .origin import UNKNOWN

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
IPTOCC, NO_DATABASE = "iptocc", "none"
DATABASES = (IPTOCC, NO_DATABASE)
MAX_HOPS = 16  # trusted proxies in a row that are followed back; more is refused
PEER = "peer"


class BadAddress(DataVisaError):
    """A trusted proxy named a client address that is not one."""

    def __init__(self, message: str, field: str = "X-Forwarded-For") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Networks:
    """Config `location:` (docs/identity.md, "Location sources"): `networks` is CIDR →
    country, most specific first; `proxies` the addresses that may name the client's;
    `database` the IP-to-country database after the networks (iptocc or none)."""

    networks: tuple[tuple[Network, str], ...] = ()
    proxies: tuple[Network, ...] = ()
    database: str = IPTOCC

    def client(self, peer: str | None, forwarded_for: Iterable[str] = ()) -> tuple[str | None, str]:
        """The client's address and who named it: `peer`, or `proxy A` (`proxy A, B` for
        several, the client's side first) when trusted proxies passed the call on.
        X-Forwarded-For (every header of it, as one list) counts only from a trusted
        proxy; an entry a trusted proxy wrote that is not an address is `BadAddress`."""
        address = parse(peer) if peer else None
        entries = [e.strip() for value in forwarded_for for e in value.split(",")]
        hops: list[str] = []
        while address is not None and entries and self.trusts(address):
            if len(hops) == MAX_HOPS:
                raise BadAddress(f"more than {MAX_HOPS} trusted proxies in a row")
            hops.append(str(address))
            entry = entries.pop()
            address = parse(entry)
            if address is None:
                raise BadAddress(
                    f"{entry[:64]!r}, from the trusted proxy {hops[-1]}, is no address"
                )
        via = f"proxy {', '.join(reversed(hops))}" if hops else PEER
        return (None if address is None else str(address)), via

    def trusts(self, address: Address) -> bool:
        return _within(address, self.proxies)

    def country(self, address: str | None) -> str | None:
        """The country `address` is in: a configured network's, else the database's,
        else `unknown`; None with no address at all."""
        ip = parse(address) if address else None
        if ip is None:
            return None
        for network, country in self.networks:
            if ip.version == network.version and ip in network:
                return country
        if self.database == IPTOCC and ip.is_global:
            return iptocc.country_code(str(ip)) or UNKNOWN
        return UNKNOWN


def parse(text: str) -> Address | None:
    """An address as a peer or X-Forwarded-For gives it (`1.2.3.4`, `1.2.3.4:5678`,
    `[2001:db8::1]:443`, `2001:db8::1`), IPv4-mapped IPv6 as the IPv4 it is, with no zone;
    None for anything else."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # IPv4 with a port
        text = text.partition(":")[0]
    try:
        ip = ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _within(address: Address, networks: Iterable[Network]) -> bool:
    return any(address.version == n.version and address in n for n in networks)
