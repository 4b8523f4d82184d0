"""Must-show 3: a per-key budget stops that key with 429 budget_exceeded, not the others.

The team profile prices the embedded model at $0.001 a token, and the key `capped` has
$0.10 a day; a rate-limited key (`slow-lane`, 2 requests a minute) is refused the same way.
"""

from __future__ import annotations

import httpx
import pytest

from tests.helpers import RunningServer
from tests.team.conftest import TEAM_KEYS, bearer, rows

pytestmark = pytest.mark.slow


def chat(n: int) -> dict[str, object]:
    return {"model": "embedded", "max_tokens": 4,
            "messages": [{"role": "user", "content": f"Count to {n}."}]}


def test_a_key_over_its_budget_gets_429_and_the_others_do_not(team: RunningServer,
                                                              team_keys: dict[str, str]) -> None:
    url = team.base_url + "/v1/chat/completions"
    budget = TEAM_KEYS["capped"]["budget_usd"]
    served, refused = 0, None
    with httpx.Client(timeout=60) as client:
        for n in range(30):
            resp = client.post(url, json=chat(n), headers=bearer(team_keys["capped"]))
            if resp.status_code == 429:
                refused = resp
                break
            assert resp.status_code == 200, resp.text
            served += 1
        assert refused is not None, "the budget never stopped the key"
        assert served >= 1
        error = refused.json()["error"]
        assert error["code"] == "budget_exceeded" and "key:capped" in error["message"]
        assert int(refused.headers["retry-after"]) >= 1
        # Stays stopped, on the Ollama protocol too.
        again = client.post(team.base_url + "/api/chat", headers=bearer(team_keys["capped"]),
                            json={"model": "embedded", "stream": False,
                                  "messages": [{"role": "user", "content": "hi"}],
                                  "options": {"num_predict": 4}})
        assert again.status_code == 429 and "budget" in again.json()["error"]
        # Everyone else carries on.
        for name in ("bob", "alice"):
            other = client.post(url, json=chat(1), headers=bearer(team_keys[name]))
            assert other.status_code == 200, other.text
    costs = [c for (c,) in rows(team.db_path, "SELECT cost_usd FROM calls WHERE "
                                              "key_id = 'capped' AND status = 200 ORDER BY id")]
    assert len(costs) == served and all(c > 0 for c in costs)
    # Each call was admitted while the key was under budget. (The reservation's estimate of
    # prompt tokens misses the chat template the embedded model adds, so the last call can
    # end a little over: see the report.)
    assert sum(costs[:-1]) <= budget < sum(costs) + costs[-1]
    assert rows(team.db_path, "SELECT count(*) FROM reservations")[0][0] == 0


def test_a_key_over_its_rate_limit_gets_429_rate_limit_exceeded(team: RunningServer,
                                                                team_keys: dict[str, str]
                                                                ) -> None:
    url = team.base_url + "/v1/chat/completions"
    codes = [httpx.post(url, json=chat(n), headers=bearer(team_keys["slow-lane"]),
                        timeout=60) for n in range(3)]
    assert [r.status_code for r in codes] == [200, 200, 429]
    assert codes[2].json()["error"]["code"] == "rate_limit_exceeded"
    assert httpx.post(url, json=chat(1), headers=bearer(team_keys["bob"]),
                      timeout=60).status_code == 200
