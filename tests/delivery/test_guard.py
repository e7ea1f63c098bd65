"""SSRF guard: every non-global address class is refused (production and local), the allow-list works
only outside production, the connection goes to the checked address (DNS rebinding), https keeps the
hostname for SNI, certificate and Host."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from stratum.delivery.guard import Guard, TargetRefused, parse_cidrs, send
from stratum.delivery.webhooks import WebhookIn
from stratum.devtools.webhook_receiver import Receiver
from stratum.events import new_event

from .conftest import make_delivery

REFUSED = {
    "loopback v4": "127.0.0.1",
    "loopback v4 other": "127.8.9.10",
    "loopback v6": "::1",
    "private 10/8": "10.1.2.3",
    "private 172.16/12": "172.20.0.1",
    "private 192.168/16": "192.168.1.1",
    "link-local": "169.254.10.10",
    "aws metadata": "169.254.169.254",
    "aws metadata v6": "fd00:ec2::254",
    "cgnat": "100.64.0.1",
    "cgnat top": "100.127.255.254",
    "multicast v4": "224.0.0.1",
    "multicast global-scope": "233.252.0.1",
    "multicast v6": "ff02::1",
    "unspecified v4": "0.0.0.0",
    "unspecified v6": "::",
    "ipv4-mapped loopback": "::ffff:127.0.0.1",
    "ipv4-mapped public": "::ffff:8.8.8.8",
    "ula": "fc00::1",
    "link-local v6": "fe80::1",
    "nat64": "64:ff9b::a00:1",
    "6to4": "2002:a00:1::1",
    "reserved 240/4": "240.0.0.1",
    "broadcast": "255.255.255.255",
    "documentation": "192.0.2.10",
    "benchmarking": "198.18.0.1",
}


def guard(production: bool, answers: dict[str, list[str]], allow: str = "") -> Guard:
    return Guard(production, parse_cidrs(allow), lambda host, port: answers[host])


@pytest.mark.parametrize("production", [True, False])
@pytest.mark.parametrize("name", sorted(REFUSED))
def test_non_global_addresses_are_refused(name: str, production: bool) -> None:
    ip = REFUSED[name]
    g = guard(production, {"evil.example.com": [ip]})
    with pytest.raises(TargetRefused, match="refused"):
        g.resolve("https://evil.example.com/hook")
    literal = f"[{ip}]" if ":" in ip else ip
    with pytest.raises(TargetRefused):
        g.resolve(f"https://{literal}/hook")


def test_one_bad_address_among_good_ones_refuses() -> None:
    g = guard(True, {"mixed.example.com": ["93.184.215.14", "10.0.0.5"]})
    with pytest.raises(TargetRefused, match="10.0.0.5 is a private"):
        g.resolve("https://mixed.example.com/")


def test_global_address_passes_and_is_pinned() -> None:
    t = guard(True, {"hooks.example.com": ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]}).resolve(
        "https://hooks.example.com:8443/in?x=1"
    )
    assert (t.scheme, t.host, t.port, t.path, t.address) == (
        "https",
        "hooks.example.com",
        8443,
        "/in?x=1",
        "93.184.215.14",
    )


def test_scheme_and_syntax_rules() -> None:
    prod, local = guard(True, {"h.example.com": ["93.184.215.14"]}), guard(False, {"h.example.com": ["93.184.215.14"]})
    with pytest.raises(TargetRefused, match="must be https in production"):
        prod.resolve("http://h.example.com/")
    assert local.resolve("http://h.example.com/").port == 80
    for bad, why in (
        ("ftp://h.example.com/", "must be https"),
        ("https://user:pw@h.example.com/", "credentials"),
        ("https:///nohost", "no host"),
        ("https://h.example.com:99999/", "not a valid URL"),
    ):
        with pytest.raises(TargetRefused, match=why):
            local.resolve(bad)


def test_allow_cidrs_only_outside_production() -> None:
    answers = {"laptop.local": ["127.0.0.1"]}
    assert guard(False, answers, "127.0.0.1/32").resolve("http://laptop.local:9000/").address == "127.0.0.1"
    with pytest.raises(TargetRefused, match="loopback"):
        guard(True, answers, "127.0.0.1/32").resolve("https://laptop.local:9000/")
    with pytest.raises(TargetRefused, match="STRATUM_WEBHOOK_ALLOW_CIDRS"):
        guard(False, {"laptop.local": ["127.0.0.2"]}, "127.0.0.1/32").resolve("http://laptop.local/")
    with pytest.raises(ValueError, match="not a CIDR"):
        parse_cidrs("127.0.0.1/32, nonsense")
    assert parse_cidrs(" 10.0.0.0/8 ,, fd00::/8 ") == [
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("fd00::/8"),
    ]


def test_dns_rebinding_connects_to_the_checked_address(receiver: Receiver) -> None:
    """The resolver answers a allowed address first and the metadata address next: the connection goes to
    the first answer (only one lookup happens), so the receiver gets the request."""
    answers = iter([["127.0.0.1"], ["169.254.169.254"]])
    calls = []

    def resolver(host: str, port: int) -> list[str]:
        calls.append(host)
        return next(answers)

    g = Guard(False, parse_cidrs("127.0.0.1/32"), resolver)
    t = g.resolve(receiver.url.replace("127.0.0.1", "rebind.example.com"))
    resp = send(t, b"{}", {})
    assert resp.status == 200 and calls == ["rebind.example.com"]
    (r,) = receiver.wait_for(1)
    assert r.headers["Host"] == f"rebind.example.com:{t.port}"
    with pytest.raises(TargetRefused, match="link-local"):  # a later check sees the new answer and refuses
        g.resolve(receiver.url.replace("127.0.0.1", "rebind.example.com"))


def test_rebinding_between_creation_and_delivery_is_refused_at_delivery(tmp_path, receiver: Receiver) -> None:
    answers = {"cell.example.com": ["127.0.0.1"]}
    svc, bus = make_delivery(tmp_path)
    svc.guard.resolver = lambda host, port: answers[host]
    url = receiver.url.replace("127.0.0.1", "cell.example.com")
    svc.webhooks.create("ws1", WebhookIn(name="x", target_url=url, events=["monitor.fired"]))
    answers["cell.example.com"] = ["169.254.169.254"]
    bus.publish(new_event("monitor.fired", "ws1"))
    svc.webhooks.run_due()
    (d,), _ = svc.webhooks.list_deliveries("ws1")
    assert d.attempts[0].status_code is None and receiver.received == []
    assert d.attempts[0].error.startswith("refused: target 'cell.example.com' refused: 169.254.169.254 is a link-local")


def test_refused_at_creation(tmp_path) -> None:
    svc, _ = make_delivery(tmp_path, environment="production")
    svc.guard.resolver = lambda host, port: {"internal.example.com": ["10.0.0.8"]}[host]
    with pytest.raises(TargetRefused, match="10.0.0.8 is a private"):
        svc.webhooks.create(
            "ws1", WebhookIn(name="x", target_url="https://internal.example.com/", events=["monitor.fired"])
        )
    with pytest.raises(TargetRefused, match="https in production"):
        svc.webhooks.create("ws1", WebhookIn(name="x", target_url="http://93.184.215.14/", events=["monitor.fired"]))
    assert svc.webhooks.list("ws1") == ([], None)


def _tls_server(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hooks.example.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("hooks.example.test")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    seen: dict[str, str] = {}

    class H(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers["content-length"]))
            seen["host"] = self.headers["Host"]
            self.send_response(204)
            self.end_headers()

        def log_message(self, *a) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")

    def sni(sock, server_name, _ctx):
        seen["sni"] = server_name

    ctx.sni_callback = sni
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    client = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
    return srv, client, seen


def test_https_keeps_the_hostname_for_sni_certificate_and_host(tmp_path) -> None:
    srv, client_ctx, seen = _tls_server(tmp_path)
    try:
        g = Guard(False, parse_cidrs("127.0.0.1/32"), lambda host, port: ["127.0.0.1"])
        t = g.resolve(f"https://hooks.example.test:{srv.server_port}/in")
        resp = send(t, b"{}", {}, ssl_context=client_ctx)
        assert resp.status == 204 and resp.error is None
        assert seen == {"sni": "hooks.example.test", "host": f"hooks.example.test:{srv.server_port}"}
        # the same address under a name the certificate does not cover fails verification
        t2 = Guard(False, parse_cidrs("127.0.0.1/32"), lambda h, p: ["127.0.0.1"]).resolve(
            f"https://other.example.test:{srv.server_port}/in"
        )
        bad = send(t2, b"{}", {}, ssl_context=client_ctx)
        assert bad.status is None and "CERTIFICATE_VERIFY_FAILED" in bad.error
    finally:
        srv.shutdown()
        srv.server_close()


def test_timeouts_and_response_cap(receiver: Receiver) -> None:
    import socket
    import time

    g = Guard(False, parse_cidrs("127.0.0.1/32"))
    # a listener that accepts and never answers: the total timeout ends the attempt
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen()
    try:
        t = g.resolve(f"http://127.0.0.1:{lst.getsockname()[1]}/")
        t0 = time.monotonic()
        resp = send(t, b"{}", {}, connect_timeout=1, total_timeout=0.5)
        assert resp.status is None and resp.error.startswith("timeout") and time.monotonic() - t0 < 2
    finally:
        lst.close()
    big = b"x" * 100_000
    receiver.script = lambda n, r: (200, {})
    resp = send(g.resolve(receiver.url), big, {}, max_response_bytes=1)
    assert resp.status == 200 and resp.body == b"o"
