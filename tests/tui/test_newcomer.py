"""What a newcomer found: the Calls table's right-hand columns under the detail pane, a loaded
embedded model shown as "not loaded yet" and its detail cut mid-word, "today" in UTC, and no
provider prompt-cache rate or alerts on the dashboard."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from textual.geometry import Region
from textual.pilot import Pilot
from textual.widget import Widget

from devloop.alerts import evaluate
from devloop.store.calls import CallRecord
from devloop.store.db import connect, open_db
from devloop.store.reports import LedgerReader
from devloop.store.spend import spend_report
from devloop.tui.app import DevloopApp
from devloop.tui.screens.calls import COLUMNS
from devloop.tui.widgets.line_table import GAP, LineTable
from devloop.tui.widgets.stats import AlertsBanner, StatCard
from tests.tui.seed import FIXED_NOW
from tests.tui.test_screens import settle

LA = "America/Los_Angeles"
# FIXED_NOW is 04:00 in Los Angeles: 07:59 UTC is yesterday evening there, 08:01 UTC today.
LA_EVENING, LA_MORNING = FIXED_NOW - 4 * 3600 - 60, FIXED_NOW - 4 * 3600 + 60


async def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    start = time.perf_counter()
    while not check():
        assert time.perf_counter() - start < timeout, f"{what}: not after {timeout}s"
        await asyncio.sleep(0.02)


def screen_text(widget: Widget) -> list[str]:
    """The lines the widget paints, as on screen (at its own size)."""
    return [strip.text for strip in widget.render_lines(Region(0, 0, *widget.size))]


def record(ts: float, tier: str = "frontier", prompt: int = 2000, read: int | None = None,
           write: int | None = None, status: int = 200, cost: float = 0.01) -> CallRecord:
    return CallRecord(request_id=f"r{ts}", endpoint="chat", tier=tier, backend="litellm",
                      model="anthropic/claude-sonnet-4-5", route_reason="route 1", cache="miss",
                      status=status, prompt_tokens=prompt, completion_tokens=50,
                      cache_read_tokens=read, cache_write_tokens=write, cost_usd=cost,
                      counterfactual_usd=cost, saved_usd=0.0, ts=ts)


def insert(db_path: Path, *records: CallRecord) -> None:
    db = open_db(db_path)
    db["calls"].insert_all([r.row() for r in records])
    db.conn.close()


# -- 1 Calls: every column on screen at 120x40 ------------------------------------------------
async def calls_table(pilot: Pilot[object]) -> LineTable:
    await pilot.press("2")
    await settle(pilot)
    return pilot.app.screen.query_one("#calls-table", LineTable)


async def test_calls_table_keeps_every_column_at_120(
    make_app: Callable[..., DevloopApp], seeded_home: Path
) -> None:
    app = make_app(seeded_home)
    async with app.run_test(size=(120, 40)) as pilot:
        table = await calls_table(pilot)
        pane = app.screen.query_one("#call-detail-pane")
        needed = sum(width for _, width, *_ in COLUMNS) + GAP * (len(COLUMNS) - 1)
        # no column off to the right: nothing to scroll sideways to
        assert needed <= table.virtual_size.width <= table.scrollable_content_region.width
        assert table.max_scroll_x == 0
        header = screen_text(table)[0]
        for title, *_ in COLUMNS:
            assert title in header
        # The detail pane is below the table, across the full width, and shows its fields.
        assert pane.region.y >= table.region.bottom and pane.region.width == 120
        detail = "\n".join(screen_text(app.screen.query_one("#call-detail")))
        for label in ("Route", "Tokens", "Cost", "Saved", "Request"):
            assert label in detail

        # `d` hides the pane and the table takes its rows; `d` again brings it back.
        rows_before = table.region.height
        await pilot.press("d")
        await pilot.pause()
        assert not pane.display and table.region.height > rows_before
        await pilot.press("d")
        await pilot.pause()
        assert pane.display and table.region.height == rows_before


async def test_calls_at_80_columns_leave_model_and_cache_to_the_detail_pane(
    make_app: Callable[..., DevloopApp], seeded_home: Path
) -> None:
    app = make_app(seeded_home)
    async with app.run_test(size=(80, 24)) as pilot:
        table = await calls_table(pilot)
        header = screen_text(table)[0].split()
        assert header == [t for t, *_ in COLUMNS if t not in ("Model", "Cache")]
        assert table.max_scroll_x == 0
        key = table.highlighted_key
        assert key is not None
        detail = "\n".join(screen_text(app.screen.query_one("#call-detail")))
        model, cache = table.values[key][3], table.values[key][4]
        assert f"· {model}" in detail and cache in detail

        await pilot.resize_terminal(120, 40)  # room again: every column, the cursor kept
        await pilot.pause()
        assert screen_text(table)[0].split() == [t for t, *_ in COLUMNS]
        assert table.max_scroll_x == 0 and table.highlighted_key == key


# -- 4 the local day ----------------------------------------------------------------------------
def test_today_and_spend_days_are_local(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    insert(db, record(LA_EVENING, tier="local", cost=0.0), record(LA_MORNING, tier="local",
                                                                  cost=0.0))
    utc, local = LedgerReader(db, ZoneInfo("UTC")), LedgerReader(db, ZoneInfo(LA))
    assert utc.summary(FIXED_NOW).calls_today == 2
    assert local.summary(FIXED_NOW).calls_today == 1  # the evening call was yesterday there
    days = local.spend(FIXED_NOW, 7).days
    assert days[-2:] == ["11-18", "11-19"]
    view = utc.spend(FIXED_NOW, 7)
    assert view.days[-1] == "11-19" and sum(view.spent) == 0.0


async def test_dashboard_and_spend_say_which_day(
    make_app: Callable[..., DevloopApp], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    insert(home / "devloop.db", record(LA_EVENING), record(LA_MORNING))
    monkeypatch.setenv("DEVLOOP_TIMEZONE", LA)
    app = make_app(home)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        today = app.screen.query_one("#kpi-today", StatCard)
        assert today.border_subtitle == "PST day"
        assert "1 call" in str(today.render())  # not the evening before
        await pilot.press("5")
        await settle(pilot)
        assert "PST days" in str(app.screen.query_one("#spend-totals").render())


# -- 5 provider prompt cache and alerts ----------------------------------------------------------
def cached_calls(now: float) -> list[CallRecord]:
    """Today: frontier calls reading most of their prompt from the provider's cache, one
    writing it, one without any, and local calls that are not the provider's."""
    out = [record(now - 600 - i, read=1500, write=0) for i in range(20)]
    out += [record(now - 900, read=0, write=1800), record(now - 950),
            record(now - 960, tier="local", prompt=5000, cost=0.0),
            record(now - 970, status=502, prompt=0, cost=0.0)]
    return out


def test_prompt_cache_rate_is_the_one_spend_computes(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    insert(db, *cached_calls(FIXED_NOW))  # all this week
    reader = LedgerReader(db)
    rate = reader.summary(FIXED_NOW).provider_cache_hit_rate
    handle = open_db(db)
    try:
        expected = spend_report(handle, "all")["totals"]["provider_cache_hit_rate"]
    finally:
        handle.conn.close()
    assert rate is not None and rate == expected
    assert rate == pytest.approx(30000 / (20 * 2000 + 2000 + 2000), abs=1e-4)


def test_prompt_cache_rereads_today_only(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    day = 86400
    insert(db, record(FIXED_NOW - day, read=1000), record(FIXED_NOW - 60, read=0))
    reader = LedgerReader(db, ZoneInfo("UTC"))
    assert reader.summary(FIXED_NOW).provider_cache_hit_rate == 0.25  # 1000 of 4000
    # A late row for yesterday is not seen (past days are final once read); today's is.
    insert(db, record(FIXED_NOW - day + 1, read=2000), record(FIXED_NOW - 30, read=2000))
    assert reader.summary(FIXED_NOW).provider_cache_hit_rate == 0.5  # 3000 of 6000
    reader.forget_days()
    assert reader.summary(FIXED_NOW).provider_cache_hit_rate == 0.625  # 5000 of 8000


async def test_dashboard_shows_prompt_cache_and_the_alerts_that_fire(
    make_app: Callable[..., DevloopApp], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    # Today every frontier call misses the provider cache: the rate is under the 60% target.
    insert(home / "devloop.db", *(record(FIXED_NOW - 60 * i, read=0) for i in range(1, 26)))
    app = make_app(home)
    conn = connect(home / "devloop.db")
    try:
        fired = evaluate(conn, app.profile, FIXED_NOW)  # what `devloop alerts` says
    finally:
        conn.close()
    assert "provider_cache_hit_rate" in {a.rule for a in fired}
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        card = app.screen.query_one("#kpi-pcache", StatCard)
        assert "0%" in str(card.render()) and card.border_title == "p-cache"  # 80 columns
        banner = app.screen.query_one(AlertsBanner)
        assert banner.display and banner.region.height >= 1
        shown = str(banner.render())
        assert all(a.message in shown for a in fired[:2])
        # between the figures and the live calls
        kpis, live = app.screen.query_one("#kpis"), app.screen.query_one("#dash-body")
        assert kpis.region.bottom <= banner.region.y < live.region.y


async def test_no_alerts_no_banner_and_a_full_title_when_wide(
    make_app: Callable[..., DevloopApp], seeded_home: Path, tmp_path: Path
) -> None:
    app = make_app(seeded_home)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        card = app.screen.query_one("#kpi-pcache", StatCard)
        assert card.border_title == "Prompt cache"
        # the seeded paid calls read nothing from the provider's cache (as `devloop spend` says)
        assert str(card.render()).startswith("0%")
    fresh = make_app(tmp_path / "fresh")
    async with fresh.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert not fresh.screen.query_one(AlertsBanner).display


# -- 2 Backends: the embedded model's real state, the detail whole --------------------------------
@pytest.mark.slow
async def test_backends_shows_the_loaded_model_and_wraps_its_detail(
    make_app: Callable[..., DevloopApp], embedded_profile: Path, tmp_path: Path
) -> None:
    from tests.helpers import free_port

    app = make_app(tmp_path / "home", embedded_profile, port=free_port(), serve=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(lambda: app.endpoint is not None and app.endpoint.state == "serving",
                         60, "endpoint serving")
        await pilot.press("6")  # (the endpoint is a worker that never completes: no settle)
        details = app.screen.query_one("#tier-details")

        def shown() -> str:
            return " ".join(" ".join(line.split()) for line in screen_text(details))

        await wait_until(lambda: "not loaded yet (loads on first call)" in shown(), 10,
                         "the probe's word before the first call")
        lines = [line.rstrip() for line in screen_text(details)]
        assert all(len(line) <= 80 and "…" not in line for line in lines)
        assert len([line for line in lines if line]) > len(app.profile.tiers)  # it wrapped
        # Load the model for real (Ollama's load request does this), then refresh: no probe.
        gw = app.gateway
        await gw.router.backends["embedded"].load("smollm2-135m", unload=False)
        app.screen.refresh_tiers()  # what the 2 s timer does when live
        await pilot.pause()
        assert ", loaded" in shown() and "not loaded" not in shown()
        await pilot.press("q")
