"""SSRF guard and the one HTTP client of outbound webhooks.

``check_target`` resolves the host once and refuses the URL unless every address is globally routable
(or, outside production, inside ``STRATUM_WEBHOOK_ALLOW_CIDRS``). ``send`` then connects to the address
that was checked — there is no second DNS lookup a rebinding resolver could answer differently — while
TLS SNI, certificate verification and the ``Host`` header keep the hostname. Redirects are never
followed (``http.client`` does not follow them; a 3xx is returned as is). Timeouts: connect 5 s, the
whole exchange 15 s; at most ``max_response_bytes`` of the answer are read.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from stratum.errors import StratumError

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

# named because ``is_global`` alone lets some of them through on some Python versions
_ALWAYS_REFUSED = [
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT
        "169.254.0.0/16",  # link-local, incl. the instance metadata 169.254.169.254
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",
        "fd00:ec2::254/128",  # EC2 metadata over IPv6 (inside fc00::/7)
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
        "::/128",
        "::1/128",
        "64:ff9b::/96",  # NAT64: reaches IPv4 addresses, possibly private ones
        "2002::/16",  # 6to4: embeds an IPv4 address
        "2001::/32",  # Teredo
    )
]


class TargetRefused(StratumError):
    """The webhook target is not allowed (HTTP 422 at creation, a failed attempt at delivery)."""

    status, code, title = 422, "target_refused", "Webhook target refused"


def parse_cidrs(text: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    out = []
    for part in (p.strip() for p in text.split(",")):
        if part:
            try:
                out.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                raise ValueError(f"STRATUM_WEBHOOK_ALLOW_CIDRS: {part!r} is not a CIDR") from None
    return out


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(i[4][0]) for i in infos))


def refusal(ip: IP) -> str | None:
    """Why ``ip`` is not a globally routable destination, or None when it is."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return f"{ip} is an IPv4-mapped IPv6 address"
    if ip.is_unspecified:
        return f"{ip} is the unspecified address"
    if ip.is_loopback:
        return f"{ip} is a loopback address"
    if ip.is_multicast:
        return f"{ip} is a multicast address"
    if ip.is_link_local:
        return f"{ip} is a link-local address (cloud metadata lives there)"
    for net in _ALWAYS_REFUSED:
        if ip.version == net.version and ip in net:
            return f"{ip} is in the non-global range {net}"
    if ip.is_private or not ip.is_global:
        return f"{ip} is a private or reserved address"
    return None


@dataclass(frozen=True)
class Target:
    url: str
    scheme: str
    host: str
    port: int
    path: str
    address: str  # the checked IP the connection goes to


@dataclass
class Guard:
    production: bool
    allow: list[ipaddress.IPv4Network | ipaddress.IPv6Network]
    resolver: Resolver = system_resolver

    def check_url(self, url: str) -> None:
        """Syntax and scheme only (no DNS): used where resolution must not happen (e.g. tests of input)."""
        self._parse(url)

    def _parse(self, url: str) -> tuple[str, str, int, str]:
        if len(url) > 2048:
            raise TargetRefused("target_url is longer than 2048 characters")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise TargetRefused(f"target_url is not a valid URL: {exc}") from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise TargetRefused(f"target_url must be https (got scheme {scheme or 'none'!r})")
        if scheme == "http" and self.production:
            raise TargetRefused("target_url must be https in production")
        if parts.username is not None or parts.password is not None:
            raise TargetRefused("target_url must not carry credentials")
        host = (parts.hostname or "").rstrip(".")
        if not host:
            raise TargetRefused("target_url has no host")
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return scheme, host, port or (443 if scheme == "https" else 80), path

    def resolve(self, url: str) -> Target:
        """Parse, resolve once and check every address. Raises ``TargetRefused``."""
        scheme, host, port, path = self._parse(url)
        try:
            literal: IP | None = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            literal = None
        if literal is not None:
            addresses = [str(literal)]
        else:
            try:
                addresses = self.resolver(host, port)
            except (OSError, UnicodeError) as exc:
                raise TargetRefused(f"cannot resolve {host!r}: {exc}") from None
            if not addresses:
                raise TargetRefused(f"{host!r} resolves to no address")
        for a in addresses:
            ip = ipaddress.ip_address(a.split("%")[0])
            why = refusal(ip)
            if why and not self._allowed(ip):
                hint = "" if self.production else " (allow it with STRATUM_WEBHOOK_ALLOW_CIDRS)"
                raise TargetRefused(f"target {host!r} refused: {why}{hint}")
        return Target(url, scheme, host, port, path, addresses[0])

    def _allowed(self, ip: IP) -> bool:
        if self.production:
            return False
        return any(ip.version == n.version and ip in n for n in self.allow)


@dataclass
class Response:
    status: int | None
    headers: dict[str, str]
    body: bytes
    error: str | None
    latency_ms: float


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._address = address
        self._ctx = context

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._ctx.wrap_socket(sock, server_hostname=self.host)


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


def send(
    target: Target,
    body: bytes,
    headers: dict[str, str],
    *,
    connect_timeout: float = 5.0,
    total_timeout: float = 15.0,
    max_response_bytes: int = 65536,
    ssl_context: ssl.SSLContext | None = None,
) -> Response:
    """POST ``body`` to the checked address of ``target``. Never raises for network trouble: the error
    is in ``Response.error`` (status None)."""
    t0 = time.monotonic()
    deadline = t0 + total_timeout
    conn: http.client.HTTPConnection
    if target.scheme == "https":
        conn = _PinnedHTTPS(
            target.host, target.port, target.address, connect_timeout, ssl_context or ssl.create_default_context()
        )
    else:
        conn = _PinnedHTTP(target.host, target.port, target.address, connect_timeout)
    try:
        conn.connect()
        sock = conn.sock  # http.client drops conn.sock once the answer says Connection: close
        assert sock is not None
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        h = {"Content-Type": "application/json", "User-Agent": "Stratum-Webhooks/1", **headers}
        conn.request("POST", target.path, body=body, headers=h)
        resp = conn.getresponse()
        chunks, got = [], 0
        while got < max_response_bytes:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no complete answer within {total_timeout:g} s")
            sock.settimeout(left)
            chunk = resp.read1(min(16384, max_response_bytes - got)) if hasattr(resp, "read1") else b""
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        return Response(
            resp.status,
            {k.lower(): v for k, v in resp.getheaders()},
            b"".join(chunks),
            None,
            (time.monotonic() - t0) * 1e3,
        )
    except (OSError, http.client.HTTPException, ssl.SSLError, TimeoutError) as exc:
        kind = "timeout" if isinstance(exc, TimeoutError | socket.timeout) else type(exc).__name__
        return Response(None, {}, b"", f"{kind}: {exc}"[:500], (time.monotonic() - t0) * 1e3)
    finally:
        conn.close()
