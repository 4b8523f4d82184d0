"""Batch prices: litellm's batch fields where the map has them, else half the synchronous
price; the profile's own prices are halved too; unknown stays unknown."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from devloop.batch_pricing import BatchPricing, batch_price
from devloop.cli import cli
from devloop.config import Profile
from devloop.pricing import Pricing, cost_map_entry


def profile(**prices: dict[str, float]) -> Profile:
    return Profile.model_validate({
        "name": "p", "production_model": "anthropic/claude-sonnet-4-6",
        "tiers": {"embedded": {"backend": "embedded", "model": "smollm2-135m"}},
        "routes": [{"tier": "embedded"}], "prices": prices})


@pytest.mark.parametrize(("model", "field_in_map"), [
    ("openai/gpt-4o-mini", True), ("anthropic/claude-sonnet-4-6", False)])
def test_map_batch_fields_else_half(model: str, field_in_map: bool) -> None:
    pricing = Pricing(profile())
    entry = cost_map_entry(model) or {}
    assert ("input_cost_per_token_batches" in entry) is field_in_map
    sync, batch = pricing.price(model), batch_price(pricing, model)
    assert sync is not None and batch is not None
    if field_in_map:
        assert batch.input == entry["input_cost_per_token_batches"]
        assert batch.output == entry["output_cost_per_token_batches"]
    else:
        assert (batch.input, batch.output) == (sync.input / 2, sync.output / 2)
    assert batch.cost(1000, 100) == pytest.approx(sync.cost(1000, 100) / 2)


def test_profile_prices_are_halved_and_unknown_stays_unknown() -> None:
    pricing = Pricing(profile(**{"openai/gpt-4o-mini": {"input": 1.0, "output": 3.0}}))
    batch = batch_price(pricing, "openai/gpt-4o-mini")
    assert batch is not None and batch.input == pytest.approx(0.5e-6)
    assert batch.output == pytest.approx(1.5e-6)  # the override wins over the map's fields
    assert batch_price(pricing, "openai/no-such-model") is None
    bp = BatchPricing(profile(), {"anthropic/claude-sonnet-4-6"})
    assert bp.cost("anthropic/claude-sonnet-4-6", 1000, 0) == pytest.approx(
        bp.sync.cost("anthropic/claude-sonnet-4-6", 1000, 0) / 2)
    # models not in the batch (a judge called synchronously) keep the synchronous price
    assert bp.cost("openai/gpt-4o-mini", 1000, 0) == bp.sync.cost("openai/gpt-4o-mini", 1000, 0)


def test_a_bad_batch_value_is_one_line(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["eval", "--batch=later", "x.yaml"],
                             env={"DEVLOOP_HOME": str(tmp_path)})
    assert res.exit_code == 2
    assert res.stderr == "devloop: error: --batch: 'later': use --batch or --batch=auto\n"
