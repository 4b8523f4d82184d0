"""Issue 20, Build (TUI/serve): an access-log line per call in `devloop serve`, off with --quiet."""

from __future__ import annotations

import time
from pathlib import Path

import openai
import pytest

from tests.helpers import start_server


def _call(base_url: str, feature: str) -> str:
    client = openai.OpenAI(base_url=base_url + "/v1", api_key="x")
    raw = client.chat.completions.with_raw_response.create(
        model="embedded", max_tokens=4, temperature=0,
        messages=[{"role": "user", "content": "Say hi."}],
        extra_headers={"X-Devloop-Feature": feature})
    return str(raw.headers["x-request-id"])


@pytest.mark.slow
@pytest.mark.parametrize("quiet", [False, True])
def test_serve_prints_one_access_line_per_call(tmp_path: Path, embedded_profile: Path,
                                               quiet: bool) -> None:
    server = start_server(embedded_profile, tmp_path / "home",
                          args=("--quiet",) if quiet else ())
    try:
        request_id = _call(server.base_url, "access-test")
        time.sleep(0.5)  # the line is printed when the ledger row is written
    finally:
        server.stop()
    lines = [line for line in server.output().splitlines() if f"id={request_id}" in line]
    if quiet:
        assert lines == []
        return
    [line] = lines
    assert " 200 chat " in line and "tier=embedded" in line and "cache=miss" in line
    assert "cost=$" in line and "feature=access-test" in line and "ms" in line
