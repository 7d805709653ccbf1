"""Which IP addresses an outbound request may reach, with the IPv4 address hidden in an IPv6
one decoded and checked too.

An IPv6 address can carry an IPv4 one that this host's stack or a gateway on the path will
reach on the sender's behalf; each is decoded here (bits counted from the left, 0-127):

- IPv4-mapped ``::ffff:a.b.c.d`` (RFC 4291): the stack connects to ``a.b.c.d`` itself;
- IPv4-compatible ``::a.b.c.d`` (deprecated, RFC 4291) and IPv4-translated
  ``::ffff:0:a.b.c.d`` (SIIT, RFC 2765): the last 32 bits;
- NAT64 ``64:ff9b::/96`` (RFC 6052) and local-use ``64:ff9b:1::/48`` (RFC 8215): the last 32 bits;
- 6to4 ``2002::/16`` (RFC 3056): bits 16-48;
- Teredo ``2001::/32`` (RFC 4380): the client, the last 32 bits XOR ``0xffffffff``.

A destination is refused when the address, or the IPv4 address it carries, is not globally
routable: private, loopback, link-local, carrier-grade NAT (100.64.0.0/10, home of some clouds'
metadata endpoints), multicast, reserved.
"""

from __future__ import annotations

import socket
from ipaddress import IPv4Address, IPv6Address, IPv6Network, ip_address
from urllib.parse import urlsplit

IPAddress = IPv4Address | IPv6Address

_LAST_32_BITS = (
    IPv6Network("::/96"),  # IPv4-compatible
    IPv6Network("::ffff:0:0:0/96"),  # IPv4-translated
    IPv6Network("64:ff9b::/96"),  # NAT64, well-known prefix
    IPv6Network("64:ff9b:1::/48"),  # NAT64, local use
)


def embedded_ipv4(ip: IPv6Address) -> IPv4Address | None:
    """The IPv4 address ``ip`` carries, or None."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if any(ip in network for network in _LAST_32_BITS):
        return IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]  # the client; the standard library undoes the XOR
    return None


def _not_global(ip: IPAddress) -> bool:
    return not ip.is_global or ip.is_multicast


def blocked(ip: IPAddress) -> bool:
    """True when no outbound request may go to ``ip`` (unless private destinations are allowed)."""
    if isinstance(ip, IPv6Address):
        if ip.ipv4_mapped is not None:
            # the mapped range itself is not global, yet ::ffff:8.8.8.8 is simply 8.8.8.8
            return _not_global(ip.ipv4_mapped)
        inner = embedded_ipv4(ip)
        if inner is not None and _not_global(inner):
            return True
    return _not_global(ip)


def literal(host: str) -> IPAddress | None:
    """The address a URL's host names without asking DNS: an IP literal (a zone dropped), or one
    of the legacy IPv4 spellings the resolver reads the same way (``2130706433``, ``0x7f.1``,
    ``0177.0.0.1``, ``127.1``)."""
    try:
        return ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    try:
        return IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError):
        return None


def refused_literal(url: str) -> str | None:
    """Why ``url`` can never be called, when its host is an address that is not allowed: the
    reason to refuse it on save (a host name is checked at delivery, where it is resolved)."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    if not host:
        return None
    ip = literal(host)
    if ip is None or not blocked(ip):
        return None
    return (
        f"{host} is a private, loopback, link-local or reserved address "
        "(set OFFERD_ALLOW_PRIVATE_DESTINATIONS=1 to allow it)"
    )
