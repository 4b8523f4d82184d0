"""Must-show 1: no key, a wrong key and a revoked key get 401 authentication_error (OpenAI
shape on /v1, Ollama shape on /api), and a key never appears in clear in the server log,
the database files or `devloop keys list`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import ollama
import openai
import pytest

from tests.helpers import RunningServer
from tests.team.conftest import add_key, bearer, devloop_cli, rows

pytestmark = pytest.mark.slow
CHAT = {"model": "embedded", "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 2}
OLLAMA_CHAT = {"model": "embedded", "messages": [{"role": "user", "content": "Say hi."}],
               "stream": False, "options": {"num_predict": 2}}
WRONG_KEY = "dlk_" + "x" * 43


def assert_openai_401(resp: httpx.Response) -> str:
    assert resp.status_code == 401, resp.text
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "authentication_error" and error["code"] == "invalid_api_key"
    assert resp.headers["www-authenticate"].startswith("Bearer")
    return str(error["message"])


def assert_ollama_401(resp: httpx.Response) -> str:
    assert resp.status_code == 401, resp.text
    body = resp.json()
    assert list(body) == ["error"] and isinstance(body["error"], str)
    return str(body["error"])


def wait_for_status(url: str, key: str, status: int, timeout: float = 5.0) -> float:
    """Seconds until a call with ``key`` gets ``status`` (the server re-reads keys every 1 s)."""
    start = time.perf_counter()
    while True:
        code = httpx.post(url + "/v1/chat/completions", json=CHAT, headers=bearer(key),
                          timeout=60).status_code
        if code == status:
            return time.perf_counter() - start
        assert time.perf_counter() - start < timeout, f"still {code} after {timeout}s"
        time.sleep(0.1)


def test_no_key_and_wrong_keys_get_401_in_both_protocols(team: RunningServer,
                                                          team_keys: dict[str, str]) -> None:
    url = team.base_url
    alice = team_keys["alice"]
    attempts = [{}, bearer(WRONG_KEY), bearer(alice + "x"), bearer(alice[:-1]),
                {"Authorization": f"Basic {alice}"}, {"Authorization": "Bearer"},
                bearer("sk-someone-elses-openai-key")]
    for headers in attempts:
        message = assert_openai_401(httpx.post(url + "/v1/chat/completions", json=CHAT,
                                               headers=headers))
        assert alice not in message
        assert_openai_401(httpx.get(url + "/v1/models", headers=headers))
        assert_ollama_401(httpx.post(url + "/api/chat", json=OLLAMA_CHAT, headers=headers))
        assert_ollama_401(httpx.get(url + "/api/tags", headers=headers))
    assert "devloop keys create" in assert_openai_401(httpx.post(url + "/v1/completions",
                                                                 json={"prompt": "x"}))
    # Real clients see their own authentication errors.
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=url + "/v1", api_key=WRONG_KEY, max_retries=0).models.list()
    with pytest.raises(ollama.ResponseError) as err:
        ollama.Client(host=url, headers=bearer(WRONG_KEY)).chat(
            model="embedded", messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == 401
    assert httpx.get(url + "/health").status_code == 200  # health stays open


def test_a_valid_key_is_served_and_the_call_is_booked_to_its_user(team: RunningServer,
                                                                  team_keys: dict[str, str]
                                                                  ) -> None:
    client = openai.OpenAI(base_url=team.base_url + "/v1", api_key=team_keys["alice"],
                           max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="embedded", messages=[{"role": "user", "content": "Say hi."}], max_tokens=4,
        extra_headers={"X-Devloop-Feature": "auth-test"})
    assert raw.parse().choices[0].message.content is not None
    rid = raw.headers["x-request-id"]
    ((user, key_id, feature, position, wait, cost),) = rows(
        team.db_path, "SELECT user, key_id, feature, queue_position, queue_wait_ms, cost_usd "
                      "FROM calls WHERE request_id = ?", (rid,))
    assert (user, key_id, feature) == ("alice", "alice", "auth-test")
    assert position is not None and wait is not None and cost > 0
    reply = ollama.Client(host=team.base_url, headers=bearer(team_keys["alice"])).chat(
        model="embedded", messages=[{"role": "user", "content": "hi"}], options={"num_predict": 2})
    assert reply.message.content is not None


def test_a_new_key_works_and_a_revoked_key_stops_without_a_restart(team: RunningServer) -> None:
    key = add_key(team.home, "temp")
    wait_for_status(team.base_url, key, 200)  # picked up without a restart
    out = devloop_cli(team.home, "keys", "revoke", "temp")
    assert out.returncode == 0, out.stderr
    took = wait_for_status(team.base_url, key, 401)
    assert took < 3.0
    resp = httpx.post(team.base_url + "/v1/chat/completions", json=CHAT, headers=bearer(key))
    assert "revoked" in assert_openai_401(resp)
    assert "revoked" in assert_ollama_401(httpx.post(team.base_url + "/api/chat",
                                                     json=OLLAMA_CHAT, headers=bearer(key)))
    team.extra["revoked_key"] = key


def test_metrics_need_an_admin_key(team: RunningServer, team_keys: dict[str, str]) -> None:
    """Issue 20, Why 7: per-user requests and spend only to an admin key, loopback included."""
    key = team_keys["metrics"]  # created with admin=True
    httpx.post(team.base_url + "/v1/chat/completions", json=CHAT, headers=bearer(key), timeout=60)
    assert_openai_401(httpx.get(team.base_url + "/metrics"))
    refused = httpx.get(team.base_url + "/metrics", headers=bearer(team_keys["alice"]))
    assert refused.status_code == 403 and "admin key" in refused.json()["error"]["message"]
    text = httpx.get(team.base_url + "/metrics", headers=bearer(key)).text
    for series in ("devloop_requests_total", "devloop_tokens_total", "devloop_cost_usd_total",
                   "devloop_upstream_slots 4", "devloop_upstream_slots_in_use",
                   "devloop_queue_wait_seconds_bucket", "devloop_request_duration_seconds_count",
                   "devloop_auth_failures_total", 'devloop_queue_depth{key="metrics"}'):
        assert series in text, series
    assert 'key="metrics"' in text and 'tier="embedded"' in text
    proxied = {"X-Forwarded-For": "203.0.113.9"}
    assert_openai_401(httpx.get(team.base_url + "/metrics", headers=proxied))
    ok = httpx.get(team.base_url + "/metrics", headers={**proxied, **bearer(key)})
    assert ok.status_code == 200 and "devloop_requests_total" in ok.text


def test_keys_never_appear_in_clear_in_logs_database_or_listing(team: RunningServer,
                                                                 team_keys: dict[str, str]
                                                                 ) -> None:
    # Runs after the tests above: the server has served, refused and revoked keys by now.
    keys = {k: v for k, v in team_keys.items() if not k.startswith("_")}
    keys["wrong"] = WRONG_KEY
    if "revoked_key" in team.extra:
        keys["temp"] = team.extra["revoked_key"]
    for name in ("alice", "metrics"):
        httpx.post(team.base_url + "/v1/chat/completions", json=CHAT, headers=bearer(keys[name]),
                   timeout=60)
    httpx.post(team.base_url + "/v1/chat/completions", json=CHAT, headers=bearer(WRONG_KEY))
    assert rows(team.db_path, "SELECT count(*) FROM calls WHERE key_id = 'alice'")[0][0] >= 2
    log = team.output()
    assert "devloop team endpoint" in log  # the log is the server's, and it is not empty
    files = [p for p in Path(team.home).iterdir() if p.name.startswith("devloop.db")]
    assert any(p.name.endswith("-wal") for p in files)
    blobs = {p.name: p.read_bytes() for p in files}
    listing = devloop_cli(team.home, "keys", "list", "--all").stdout
    listing_json = devloop_cli(team.home, "keys", "list", "--json").stdout
    assert "alice" in listing and "alice" in listing_json
    (alice,) = [k for k in json.loads(listing_json) if k["name"] == "alice"]
    assert alice["last_used"] is not None and alice["calls"] >= 2 and alice["spend_usd"] > 0
    for name, key in keys.items():
        assert key not in log, f"{name}'s key is in the server log"
        for file, blob in blobs.items():
            assert key.encode() not in blob, f"{name}'s key is in {file}"
        assert key not in listing and key not in listing_json, f"{name}'s key is listed"
