"""Done-when, end to end over real HTTP: a real ``stratum serve`` subprocess, an inbound hook posts a
notification (``notification.new``), an outbound webhook subscribed to it is signed and delivered; the
receiver answers 500 three times, the server is killed after the first attempt and started again, and the
receiver gets the event on the 4th attempt; the email lands in <data-dir>/outbox/."""

from __future__ import annotations

import email
import email.policy
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import standardwebhooks

from stratum.auth.keys import KeyService
from stratum.devtools.webhook_receiver import Receiver
from stratum.storage.sqlite import SqliteMetadataStore


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(data: Path, port: int, log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "STRATUM_BACKEND": "local",
        "STRATUM_ENVIRONMENT": "dev",
        "STRATUM_WEBHOOK_ALLOW_CIDRS": "127.0.0.1/32",
        "STRATUM_DELIVERY__RETRY_SCHEDULE_SECONDS": "[0, 2, 2, 2]",
        "STRATUM_DELIVERY__JITTER_FRACTION": "0",
        "STRATUM_DELIVERY__POLL_INTERVAL_SECONDS": "0.2",
        "STRATUM_DELIVERY__LEASE_SECONDS": "3",  # an attempt cut off by the kill is retried after this
    }
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "stratum"),
            "serve",
            "--data-dir",
            str(data),
            "--port",
            str(port),
            "--no-watch",
        ],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    end = time.monotonic() + 60
    while time.monotonic() < end:
        assert proc.poll() is None, log.read_text()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/status", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("stratum serve did not come up:\n" + log.read_text())


def test_restart_mid_retry_loses_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    meta = SqliteMetadataStore(data / "stratum.db")
    token = KeyService(meta).create("default", ["admin"], "test")[0]
    meta.close()
    receiver = Receiver(script=lambda n, r: (500, {}) if n <= 3 else (200, {})).start()
    port, log = free_port(), tmp_path / "serve.log"
    proc = start(data, port, log)
    try:
        base, auth = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {token}"}
        wh = httpx.post(
            f"{base}/v1/webhooks/outbound",
            json={"name": "r", "target_url": receiver.url, "events": ["notification.new"]},
            headers=auth,
        ).json()
        prefs = {"digest": "immediate", "email_to": ["qa@example.com"], "kinds": ["monitor.fired"]}
        assert httpx.put(f"{base}/v1/notifications/prefs", json=prefs, headers=auth).status_code == 200
        hook = httpx.post(f"{base}/v1/webhooks/inbound", json={"name": "mes", "action": "notify"}, headers=auth).json()
        r = httpx.post(
            f"{base}{hook['url']}", json={"title": "Lot L1 done"}, headers={"Authorization": f"Bearer {hook['token']}"}
        )
        assert r.status_code == 200, r.text
        receiver.wait_for(1)
        end = time.monotonic() + 10  # the first attempt's outcome is recorded: a retry is pending
        while time.monotonic() < end:
            items = httpx.get(f"{base}/v1/webhooks/deliveries", headers=auth).json()["items"]
            if items and len(items[0]["attempts"]) == 1:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)  # a crash, not a clean stop
        proc.wait(10)
        time.sleep(2.5)
        assert len(receiver.received) == 1  # nobody delivered while the server was down
        proc = start(data, port, log)
        got = receiver.wait_for(4, timeout=30)
        time.sleep(1)
        assert len(receiver.received) == 4
        assert len({g.headers["webhook-id"] for g in got}) == 1
        body = standardwebhooks.Webhook(wh["secret"]).verify(got[-1].body, got[-1].headers)
        assert body["type"] == "notification.new" and body["data"]["data"]["title"] == "Lot L1 done"
        log_ = httpx.get(f"{base}/v1/webhooks/deliveries?webhook_id={wh['id']}", headers=auth).json()["items"]
        (d,) = log_
        assert [a["status_code"] for a in d["attempts"]] == [500, 500, 500, 200] and d["status"] == "succeeded"
        (eml,) = sorted((data / "outbox").glob("*.eml"))  # digest "immediate": one mail per notification
        msg = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
        assert (msg["To"], msg["Subject"]) == ("qa@example.com", "[Stratum default] Lot L1 done")
    finally:
        proc.terminate()
        proc.wait(20)
        receiver.stop()
