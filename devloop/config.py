"""Settings (environment) and routing profiles (YAML), both pydantic models."""

from __future__ import annotations

import os
import re
from datetime import tzinfo
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from devloop.types import TIERS

BUNDLED_PROFILES = Path(__file__).parent / "profiles"


class ConfigError(Exception):
    """A user-facing configuration problem: one line naming file, field and reason."""

    def __init__(self, file: str | Path, field: str, reason: str) -> None:
        self.file, self.field, self.reason = str(file), field, reason
        super().__init__(f"{file}: {field}: {reason}" if field else f"{file}: {reason}")


def parse_duration(value: str | int | float) -> float:
    """'24h', '30m', '7d', '45s' or a number of seconds -> seconds."""
    if isinstance(value, int | float):
        return float(value)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", str(value))
    if not m:
        raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 10m, 24h, 7d)")
    scale = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2)]
    return float(m.group(1)) * scale


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CapabilityOverrides(Strict):
    """What a tier can do, where the backend cannot tell (e.g. a vision model on Ollama)."""

    tools: bool | None = None
    parallel_tool_calls: bool | None = None
    vision: bool | None = None
    json_object: bool | None = None
    json_schema: bool | None = None
    fim: bool | None = None
    logprobs: bool | None = None
    n: int | None = Field(default=None, ge=1)
    context_length: int | None = Field(default=None, ge=1)
    embeddings: bool | None = None


class TierConfig(Strict):
    backend: Literal["ollama", "embedded", "openai", "litellm"]
    model: str
    base_url: str | None = None
    # Several replicas of the same server (vLLM): balanced by fewest requests in flight.
    base_urls: list[str] = Field(default_factory=list)
    api_key_env: str | None = None
    api_base: str | None = None
    fallback: str | None = None
    models: list[str] = Field(default_factory=list)
    model_path: str | None = None
    n_ctx: int = 8192  # SmolLM2's trained context; llama.cpp allocates the KV cache for it
    timeout: float = 120.0
    embedding_model: str | None = None
    capabilities: CapabilityOverrides = Field(default_factory=CapabilityOverrides)

    def urls(self) -> list[str]:
        return self.base_urls or ([self.base_url] if self.base_url else [])

    def all_models(self) -> list[str]:
        return [self.model, *[m for m in self.models if m != self.model]]


class RouteMatch(Strict):
    endpoint: Literal["chat", "completions", "embeddings", "messages", "responses"] | None = None
    feature: str | None = None
    model: str | None = None
    complexity: Literal["low", "high"] | None = None
    min_prompt_tokens: int | None = None
    max_prompt_tokens: int | None = None


class Route(Strict):
    match: RouteMatch = Field(default_factory=RouteMatch)
    tier: str
    max_tokens: int | None = Field(default=None, ge=1)
    default_max_tokens: int | None = Field(default=None, ge=1)


class CacheConfig(Strict):
    enabled: bool = True
    ttl: float = 86400.0
    max_temperature: float = 0.0
    namespace: str = "default"
    cache_all_temperatures: bool = False
    semantic: bool = False
    semantic_threshold: float = 0.95
    semantic_include_code: bool = False

    @field_validator("ttl", mode="before")
    @classmethod
    def _ttl(cls, v: Any) -> float:
        return parse_duration(v)


class Budget(Strict):
    scope: str = "global"
    usd: float = Field(gt=0)
    period: Literal["day", "week", "month"] = "day"

    @field_validator("scope")
    @classmethod
    def _scope(cls, v: str) -> str:
        if v != "global" and not re.fullmatch(r"(tier|feature|key|user):[^\s]+", v):
            raise ValueError("scope must be global, tier:NAME, feature:NAME, key:NAME or "
                             "user:NAME")
        return v


class RateLimit(Strict):
    scope: str = "global"
    rpm: int | None = Field(default=None, ge=1)
    max_concurrent: int | None = Field(default=None, ge=1)


class Price(Strict):
    """USD per million tokens."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cache_read: float | None = Field(default=None, ge=0)
    cache_write: float | None = Field(default=None, ge=0)


class PriorityConfig(Strict):
    # Background calls (batch lines, eval drafts, judge replays) at once, per tier; keep the
    # shared tier's below what the GPU serves at once so interactive calls find a slot.
    background_concurrency: dict[str, int] = Field(
        default_factory=lambda: {"local": 2, "embedded": 1, "shared": 2})


class Profile(Strict):
    name: str
    production_model: str
    tiers: dict[str, TierConfig]
    routes: list[Route] = Field(default_factory=lambda: [Route(tier="local")])
    fallbacks: list[str] = Field(default_factory=list)
    allow_frontier_fallback: bool = False
    aliases: dict[str, str] = Field(default_factory=dict)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    budgets: list[Budget] = Field(default_factory=list)
    rate_limits: list[RateLimit] = Field(default_factory=list)
    prices: dict[str, Price] = Field(default_factory=dict)
    classifier: Literal["heuristic", "model"] = "heuristic"
    store_bodies: bool = False
    prompt_cache_min_tokens: int | None = None
    # Add cache_control breakpoints on the static prefix for providers that need markers
    # (Anthropic) when the client marked none; "off" sends requests as they came.
    prompt_caching: Literal["auto", "off"] = "auto"
    # The output limit of a paid call whose client and route set none: sent upstream and
    # reserved against the budget, so a hard stop holds.
    default_max_tokens: int = Field(default=4096, ge=1)
    health_interval: float = 15.0
    cooldown: float = 30.0
    failure_threshold: int = 2
    priority: PriorityConfig = Field(default_factory=PriorityConfig)

    @model_validator(mode="after")
    def _check_references(self) -> Profile:
        for name in self.tiers:
            if name not in TIERS:
                raise ValueError(f"tiers.{name}: unknown tier (use one of {', '.join(TIERS)})")
        known = set(self.tiers)
        for i, route in enumerate(self.routes):
            if route.tier not in known:
                raise ValueError(f"routes.{i}.tier: {route.tier!r} is not a configured tier")
        for i, name in enumerate(self.fallbacks):
            if name not in known:
                raise ValueError(f"fallbacks.{i}: {name!r} is not a configured tier")
        for name, tier in self.tiers.items():
            if tier.fallback and tier.fallback not in known:
                raise ValueError(f"tiers.{name}.fallback: {tier.fallback!r} is not a tier")
        for alias, target in self.aliases.items():
            if target != "auto" and target not in known and not any(
                    target in t.all_models() for t in self.tiers.values()):
                raise ValueError(f"aliases.{alias}: {target!r} is neither auto, a tier nor a model")
        return self


DEFAULT_CORS_ORIGINS = (
    "http://localhost", "https://localhost", "http://localhost:*", "https://localhost:*",
    "http://127.0.0.1", "https://127.0.0.1", "http://127.0.0.1:*", "https://127.0.0.1:*",
    "http://[::1]", "http://[::1]:*", "app://*", "file://*", "tauri://*",
    "vscode-webview://*", "vscode-file://*")

# Request kinds of the embedded model's speculative decoding (backends/speculative.py).
SPECULATIVE_KINDS = ("fim", "edit", "chat", "completion")


class Settings(BaseSettings):
    """Process-wide settings from the environment (``DEVLOOP_`` prefix)."""

    model_config = SettingsConfigDict(env_prefix="DEVLOOP_", extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".local" / "share" / "devloop")
    host: str = "127.0.0.1"
    port: int = 8790
    profile: str = "default"
    team: bool = False
    max_body_bytes: int = 10 * 1024 * 1024
    log_level: str = "warning"
    ollama_probe_timeout: float = Field(default=2.0, gt=0)  # seconds, Ollama health probes
    # Team mode (`serve --team`): requests in flight to the GPU upstream, slots kept back
    # from any single key, queue length per key, and how often the keys table is re-read.
    team_max_in_flight: int = Field(default=32, ge=1)
    team_reserved_slots: int = Field(default=1, ge=0)
    team_max_queued_per_key: int = Field(default=256, ge=0)
    team_key_refresh_s: float = Field(default=1.0, gt=0)
    # Browser origins allowed by CORS (globs, like OLLAMA_ORIGINS); preflights need no key.
    cors_origins: list[str] = Field(default_factory=lambda: list(DEFAULT_CORS_ORIGINS))
    # Budget periods, `spend --by day` and Retry-After: an IANA zone, UTC, or local (default).
    timezone: str = "local"

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str) -> str:
        from devloop.periods import zone

        zone(v)  # raises ValueError naming the setting
        return v

    def zone(self) -> tzinfo | None:
        """The zone for calendar periods (None: the machine's local zone)."""
        from devloop.periods import zone

        return zone(self.timezone)
    # The embedded model's KV prefix cache: states of recent prompts kept in RAM (MB, LRU;
    # 0 turns reuse beyond the last prompt off) and on disk under home/kv-prefix (MB; 0: RAM only).
    embedded_prefix_cache_mb: int = Field(default=512, ge=0)
    embedded_prefix_cache_disk_mb: int = Field(default=2048, ge=0)
    # Request kinds the embedded model decodes speculatively with prompt lookup (any of fim,
    # edit, chat, completion). Off by default: on this CPU, checking the guessed tokens in a
    # batch costs more than it saves, and batched logits can flip near-ties at temperature 0
    # (docs/benchmarks.md, "Speculative decoding").
    embedded_speculative: str = ""

    @field_validator("embedded_speculative")
    @classmethod
    def _speculative_kinds(cls, value: str) -> str:
        unknown = sorted({k.strip() for k in value.split(",") if k.strip()}
                         - set(SPECULATIVE_KINDS))
        if unknown:
            raise ValueError(f"unknown request kind {unknown[0]!r} "
                             f"(use any of {', '.join(SPECULATIVE_KINDS)})")
        return value

    @property
    def db_path(self) -> Path:
        return self.home / "devloop.db"

    def ensure_home(self) -> Path:
        self.home.mkdir(parents=True, exist_ok=True)
        return self.home


def user_profiles_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "devloop" / "profiles"


def find_profile(name_or_path: str) -> Path:
    """``./profiles/NAME.yaml``, then the user config folder, then the bundled profiles."""
    direct = Path(name_or_path)
    if direct.suffix in (".yaml", ".yml") or os.sep in name_or_path:
        if direct.is_file():
            return direct
        raise ConfigError(direct, "", "no such profile file")
    for folder in (Path.cwd() / "profiles", user_profiles_dir(), BUNDLED_PROFILES):
        candidate = folder / f"{name_or_path}.yaml"
        if candidate.is_file():
            return candidate
    available = sorted({p.stem for f in (Path.cwd() / "profiles", user_profiles_dir(),
                                          BUNDLED_PROFILES) if f.is_dir() for p in f.glob("*.yaml")})
    raise ConfigError(f"profile {name_or_path!r}", "",
                      f"not found in ./profiles, {user_profiles_dir()} or the bundled profiles "
                      f"(available: {', '.join(available) or 'none'})")


def _first_error(path: Path, err: ValidationError) -> ConfigError:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    msg = first["msg"].removeprefix("Value error, ")
    # Errors raised by model validators carry their own "field: reason" text.
    if not loc and ": " in msg:
        loc, msg = msg.split(": ", 1)
    return ConfigError(path, loc or "(top level)", msg)


def load_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(path, "", exc.strerror or str(exc)) from None
    except UnicodeDecodeError:
        raise ConfigError(path, "", "not UTF-8 text") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "(yaml)"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(path, where, f"invalid YAML: {problem}") from None


def load_profile(name_or_path: str | Path) -> Profile:
    path = find_profile(str(name_or_path))
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(path, "(top level)", "a profile must be a mapping")
    try:
        return Profile.model_validate(data)
    except ValidationError as err:
        raise _first_error(path, err) from None
