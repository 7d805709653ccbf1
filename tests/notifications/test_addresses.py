"""``common.addresses``: which addresses outbound requests may reach, with the IPv4 address an
IPv6 one carries decoded (mapped, compatible, translated, NAT64, 6to4, Teredo) and checked."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest

from offerd.common import addresses


@pytest.mark.parametrize(
    ("address", "embedded"),
    [
        ("::ffff:127.0.0.1", "127.0.0.1"),  # IPv4-mapped: the stack connects to the IPv4 itself
        ("::127.0.0.1", "127.0.0.1"),  # IPv4-compatible: the last 32 bits
        ("::1", "0.0.0.1"),  # loopback is in the compatible range too (and blocked as 0.0.0.1)
        ("::ffff:0:a00:1", "10.0.0.1"),  # IPv4-translated (SIIT): the last 32 bits
        ("64:ff9b::7f00:1", "127.0.0.1"),  # NAT64 well-known prefix: the last 32 bits
        ("64:ff9b::a9fe:a9fe", "169.254.169.254"),  # NAT64 of the cloud metadata address
        ("64:ff9b:1::c0a8:101", "192.168.1.1"),  # NAT64 local-use prefix (RFC 8215)
        ("2002:7f00:1::", "127.0.0.1"),  # 6to4: bits 16-48, 7f00:0001
        ("2002:a9fe:a9fe:1234::1", "169.254.169.254"),  # 6to4, whatever follows the IPv4
        # Teredo: server 65.54.227.120, client 0x80fffffe XOR 0xffffffff = 0x7f000001
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "127.0.0.1"),
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "10.0.0.1"),  # 0xf5fffffe XOR ... = 0x0a000001
        ("2606:4700:4700::1111", None),  # an ordinary global IPv6 address carries none
        ("fe80::1", None),
    ],
)
def test_embedded_ipv4_is_decoded(address: str, embedded: str | None) -> None:
    ip = IPv6Address(address)
    expected = None if embedded is None else IPv4Address(embedded)
    assert addresses.embedded_ipv4(ip) == expected


@pytest.mark.parametrize(
    ("address", "is_blocked"),
    [
        ("8.8.8.8", False),  # globally routable
        ("93.184.215.14", False),
        ("127.0.0.1", True),  # loopback
        ("10.0.0.1", True),  # private
        ("169.254.169.254", True),  # link-local: cloud metadata
        ("100.100.100.200", True),  # carrier-grade NAT: Alibaba Cloud metadata
        ("224.0.0.1", True),  # multicast
        ("2606:4700:4700::1111", False),  # a global IPv6 address
        ("::1", True),
        ("fe80::1", True),
        ("fd00:ec2::254", True),  # unique local: AWS metadata over IPv6
        ("::ffff:8.8.8.8", False),  # mapped: only the IPv4 counts (the range itself is not global)
        ("::ffff:127.0.0.1", True),
        # the holes: each prefix is "global" to the standard library, the IPv4 inside is not
        ("::127.0.0.1", True),
        ("::ffff:0:7f00:1", True),
        ("64:ff9b::7f00:1", True),
        ("64:ff9b::a9fe:a9fe", True),
        ("64:ff9b:1::a00:1", True),
        ("2002:7f00:1::", True),
        ("2002:a9fe:a9fe::1", True),
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", True),
        # a global IPv4 behind a translator is as reachable as the IPv4 itself
        ("64:ff9b::808:808", False),
        ("2002:808:808::1", False),
    ],
)
def test_blocked(address: str, is_blocked: bool) -> None:
    assert addresses.blocked(ip_address(address)) is is_blocked


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("::127.0.0.1", "::7f00:1"),
        ("fe80::1%eth0", "fe80::1"),  # the zone is not part of the address
        # spellings the resolver reads as IPv4 without asking DNS
        ("2130706433", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("merchant.example", None),  # a name: checked when it is resolved, at delivery
        ("localhost", None),
    ],
)
def test_literal(host: str, expected: str | None) -> None:
    found = addresses.literal(host)
    assert found == (None if expected is None else ip_address(expected))


@pytest.mark.parametrize(
    ("url", "refused"),
    [
        ("https://[::127.0.0.1]/hook", True),
        ("https://[64:ff9b::a9fe:a9fe]/latest/meta-data/", True),
        ("https://[2002:7f00:1::]:8443/hook", True),
        ("https://[2001:0:4136:e378:8000:63bf:80ff:fffe]/hook", True),
        ("http://127.0.0.1:8080/hook", True),
        ("https://0x7f.1/hook", True),
        ("https://[64:ff9b::808:808]/hook", False),
        ("https://93.184.215.14/hook", False),
        ("https://hooks.merchant.example/hook", False),  # a name is resolved at delivery
        ("https://[::1/broken", False),  # not a URL: left to the URL validation
    ],
)
def test_refused_literal(url: str, refused: bool) -> None:
    reason = addresses.refused_literal(url)
    assert (reason is not None) is refused
    if reason is not None:
        assert "private" in reason and "OFFERD_ALLOW_PRIVATE_DESTINATIONS" in reason
