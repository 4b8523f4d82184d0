"""TLS as the README describes it: `devloop serve --team --ssl-certfile --ssl-keyfile`, and a
developer's devloop that trusts the team's certificate through SSL_CERT_FILE."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import ROOT, base_env, free_port, start_server, write_profile
from tests.team.conftest import TEAM_PROFILE, add_key, bearer, rows

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")]


def self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "team.crt", folder / "team.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


@pytest.fixture(scope="module")
def tls_team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Path, str]]:
    home = tmp_path_factory.mktemp("tls-home")
    cert, keyfile = self_signed(home)
    api_key = add_key(home, "dana")
    profile = write_profile(home / "team.yaml", TEAM_PROFILE)
    port = free_port()
    log = home / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "devloop", "serve", "--team", "--port", str(port), "--profile",
             str(profile), "--ssl-certfile", str(cert), "--ssl-keyfile", str(keyfile)],
            cwd=ROOT, env=base_env(home), stdout=out, stderr=subprocess.STDOUT)
    url = f"https://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(url + "/health", verify=str(cert), timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
        yield url, cert, home, api_key
    finally:
        proc.terminate()
        proc.wait(10)


def test_team_server_speaks_tls_and_a_laptop_devloop_trusts_it(
        tls_team: tuple[str, Path, Path, str], tmp_path: Path) -> None:
    url, cert, team_home, api_key = tls_team
    assert "https://" in (team_home / "server.log").read_text()
    with pytest.raises(httpx.ConnectError):  # an untrusted certificate is refused
        httpx.get(url + "/health")
    body = {"model": "embedded", "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}]}
    direct = httpx.post(url + "/v1/chat/completions", json=body, headers=bearer(api_key),
                        verify=str(cert), timeout=60)
    assert direct.status_code == 200, direct.text
    laptop_profile = write_profile(tmp_path / "laptop.yaml", f"""
name: laptop
production_model: anthropic/claude-sonnet-4-5
tiers:
  shared: {{backend: openai, base_url: "{url}/v1", model: embedded, api_key_env: TEAM_KEY}}
routes:
  - {{tier: shared}}
cache: {{enabled: false}}
""")
    laptop = start_server(laptop_profile, tmp_path / "laptop-home",
                          env={"TEAM_KEY": api_key, "SSL_CERT_FILE": str(cert)})
    try:
        resp = httpx.post(laptop.base_url + "/v1/chat/completions", json=body, timeout=60,
                          headers={"X-Devloop-Feature": "over-tls"})
        assert resp.status_code == 200, resp.text
        assert resp.headers["x-devloop-tier"] == "shared"
    finally:
        laptop.stop()
    booked = rows(team_home / "devloop.db", "SELECT user, feature FROM calls WHERE request_id = ?",
                  (resp.headers["x-request-id"],))
    assert booked == [("dana", "over-tls")]
