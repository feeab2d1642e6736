"""Server-side request forgery guard for webhook URLs.

A URL is checked when it is saved and again before every delivery, and the delivery connects
to the very address that was checked (`Target.ip`), with the name only in the Host header and
TLS SNI: a name that resolves to a public address for the check and to an internal one for the
connection (DNS rebinding) therefore never reaches the internal one.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeUrl(ValueError):
    """The URL may not be called; the message says why, for the caller."""


@dataclass(frozen=True)
class Target:
    """Where one delivery goes: `url` names the checked address itself; `server_name` is the
    name the server expects (TLS SNI and certificate), `host_header` the same with the port."""

    url: str
    server_name: str
    host_header: str
    ip: IpAddress


async def resolve(host: str, port: int) -> list[IpAddress]:
    """Every address of `host`. Tests replace this function to play a DNS server."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [ipaddress.ip_address(info[4][0]) for info in infos]


# IPv6 ranges that reach somewhere else than a public host, whatever the standard library
# of the day says of them: 6to4 (2002::/16) and NAT64 (64:ff9b::/96, 64:ff9b:1::/48) relay
# to the IPv4 address they embed, through a gateway that may well sit inside our network;
# site-local (fec0::/10, deprecated, still routed by some) is private by design.
_RELAYED_OR_SITE_LOCAL = tuple(
    ipaddress.IPv6Network(net)
    for net in ("2002::/16", "64:ff9b::/96", "64:ff9b:1::/48", "fec0::/10")
)


def is_public(ip: IpAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        # An IPv4-mapped IPv6 address (::ffff:127.0.0.1) reaches the IPv4 host it embeds.
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif any(ip in net for net in _RELAYED_OR_SITE_LOCAL):
            return False
    forbidden = (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )
    # is_global also rules out shared address space (100.64.0.0/10) and similar ranges.
    return not forbidden and ip.is_global


def check_syntax(url: str, *, allow_private: bool) -> None:
    """The rules that need no DNS: an absolute https URL with a host and no credentials."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise UnsafeUrl("The URL is not valid.") from None
    allowed = {"https", "http"} if allow_private else {"https"}
    if parts.scheme not in allowed:
        raise UnsafeUrl("The URL must use https.")
    if not parts.hostname:
        raise UnsafeUrl("The URL must name a host.")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl("The URL must not carry credentials.")


async def target(url: str, *, allow_private: bool) -> Target:
    """Resolve the URL's host once and check every address it has; the first one is used."""
    check_syntax(url, allow_private=allow_private)
    parts = urlsplit(url)
    host = parts.hostname
    assert host is not None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            addresses = await resolve(host, port)
        except (OSError, UnicodeError, ValueError):
            raise UnsafeUrl(f"The host {host} does not resolve.") from None
    if not addresses:
        raise UnsafeUrl(f"The host {host} does not resolve.")
    # The answer names no address: it would map the internal network for the caller.
    if not allow_private and not all(is_public(address) for address in addresses):
        raise UnsafeUrl(f"The host {host} resolves to a private or reserved address.")
    ip = addresses[0]
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    name = f"[{host}]" if ":" in host else host
    return Target(
        url=f"{parts.scheme}://{_bracketed(ip)}:{port}{path}",
        server_name=host,
        host_header=name if parts.port is None else f"{name}:{parts.port}",
        ip=ip,
    )


def _bracketed(ip: IpAddress) -> str:
    return f"[{ip}]" if ip.version == 6 else str(ip)
