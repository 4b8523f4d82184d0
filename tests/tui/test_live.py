"""The TUI hosting the endpoint: a request from the OpenAI SDK shows on the dashboard at once,
and quitting stops the server (the port closes) and the gateway."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from pathlib import Path

import openai
import pytest

from devloop.tui.app import DevloopApp
from devloop.tui.widgets.line_table import LineTable
from tests.helpers import free_port


async def wait_until(check: Callable[[], bool], timeout: float, what: str) -> float:
    start = time.perf_counter()
    while not check():
        if time.perf_counter() - start > timeout:
            raise AssertionError(f"{what}: not after {timeout}s")
        await asyncio.sleep(0.01)
    return time.perf_counter() - start


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow
async def test_sdk_request_appears_on_dashboard_and_quit_stops_server(
    make_app: Callable[..., DevloopApp], embedded_profile: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("DEVLOOP_HOME", str(home))
    port = free_port()
    app = make_app(home, embedded_profile, port=port, serve=True, live=True, clock=time.time)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(lambda: app.endpoint is not None and app.endpoint.state == "serving",
                         60, "endpoint serving")
        assert port_open(port)
        client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x")
        raw = await client.chat.completions.with_raw_response.create(
            model="auto", max_tokens=8, temperature=0,
            messages=[{"role": "user", "content": "Say hi."}],
            extra_headers={"X-Devloop-Feature": "tui-test"},
        )
        request_id = raw.headers["x-request-id"]
        completion = raw.parse()
        assert completion.choices[0].message.content is not None

        table = app.screen.query_one("#live-calls", LineTable)
        # pushed by the endpoint's listener, not polled (how fast is scripts/bench_tui.py's)
        await wait_until(lambda: request_id in table.rows, 10.0, "row on the dashboard")
        cells = table.cells(request_id)
        assert cells[1] == raw.headers["x-devloop-tier"] == "embedded"  # local is down
        assert "tui-test" in cells
        await client.close()

        # The figures follow (debounced reload of today's totals from the ledger).
        today = app.screen.query_one("#kpi-today")
        await wait_until(lambda: "1 call" in str(today.render()), 5, "today's count")

        await pilot.press("q")
        await wait_until(lambda: not port_open(port), 10, "port closed after quit")
    assert app.host is not None and app.host.gateway is None  # closed, not leaked
    assert app.return_code == 0


async def test_busy_port_is_reported_and_the_tui_keeps_running(
    make_app: Callable[..., DevloopApp], embedded_profile: Path, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        app = make_app(tmp_path / "home", embedded_profile, port=port, serve=True)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(lambda: app.endpoint is not None and app.endpoint.state == "failed",
                             10, "endpoint failure")
            assert app.endpoint is not None
            assert f"cannot serve on 127.0.0.1:{port}" in app.endpoint.detail
            await pilot.press("2")  # the ledger screens still work
            assert app.current_mode == "calls"
            await pilot.press("q")
        assert app.return_code == 0
