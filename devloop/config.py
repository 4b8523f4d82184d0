"""Settings (environment) and routing profiles (YAML), both pydantic models."""

from __future__ import annotations

import os
import re
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from devloop.settings import (  # noqa: F401 - Settings is imported from here too
    DEFAULT_CORS_ORIGINS,
    SPECULATIVE_KINDS,
    Settings,
)
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


OLLAMA_DEFAULT_URL = "http://127.0.0.1:11434"


def ollama_host_url(value: str | None) -> str:
    """OLLAMA_HOST as the ollama client reads it: ``host``, ``host:port``, ``:port`` or a URL
    (``http://host:port/path``); the port defaults to 11434 (443 for https without one)."""
    value = (value or "").strip()
    if not value:
        return OLLAMA_DEFAULT_URL
    scheme, sep, rest = value.partition("://")
    if not sep:
        scheme, rest = "http", value
    hostport, _, path = rest.partition("/")
    host, port = hostport, ""
    if hostport.startswith("["):  # [::1]:11434
        end = hostport.find("]")
        host, port = hostport[: end + 1], hostport[end + 2:]
    elif hostport.count(":") == 1:
        host, port = hostport.split(":")
    host = host or "127.0.0.1"
    port = port or ("443" if scheme == "https" and sep else "11434")
    return f"{scheme}://{host}:{port}" + (f"/{path.rstrip('/')}" if path.strip("/") else "")


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

    @model_validator(mode="after")
    def _ollama_host(self) -> TierConfig:
        # An Ollama tier without a URL follows OLLAMA_HOST, as the ollama client does.
        if self.backend == "ollama" and not self.base_url and not self.base_urls:
            self.base_url = ollama_host_url(os.environ.get("OLLAMA_HOST"))
        return self

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


# Cascade checks (devloop/routing/checks.py implements them) and alert rules (devloop/alerts.py).
CHECK_NAMES = ("json", "json_schema", "tool_call", "non_empty", "complete", "max_chars",
               "no_refusal", "judge")
ALERT_RULES = ("spend_spike", "user_spend", "feature_spend", "provider_cache_hit_rate",
               "response_cache_hit_rate", "error_rate", "output_tokens_p95", "judge_agreement",
               "escalation_rate")


def validate_check(item: str | dict[str, int]) -> None:
    """A profile's check entry: a name, or ``{max_chars: N}``; else ValueError."""
    if isinstance(item, dict):
        if list(item) != ["max_chars"] or not isinstance(item["max_chars"], int) \
                or item["max_chars"] < 1:
            raise ValueError(f"check {item!r}: only {{max_chars: N}} takes a value (N >= 1)")
        return
    if item not in CHECK_NAMES or item == "max_chars":
        raise ValueError(f"unknown check {item!r} (use one of {', '.join(CHECK_NAMES)}; "
                         "max_chars as {max_chars: N})")


class Route(Strict):
    match: RouteMatch = Field(default_factory=RouteMatch)
    tier: str
    max_tokens: int | None = Field(default=None, ge=1)
    default_max_tokens: int | None = Field(default=None, ge=1)
    # A cascade (devloop/routing/cascade.py): when one of `checks` fails on this tier's
    # answer, the call is made again on `escalate_to` (names: devloop/routing/checks.py).
    escalate_to: str | None = None
    checks: list[str | dict[str, int]] = Field(default_factory=list)

    @field_validator("checks")
    @classmethod
    def _checks(cls, v: list[str | dict[str, int]]) -> list[str | dict[str, int]]:
        for item in v:
            validate_check(item)
        return v

    @cached_property
    def match_text(self) -> str:
        """``key=value, ...`` of what the route matches on ("" for a default route): the
        route reason's text, made once instead of on every routed request."""
        return ", ".join(f"{k}={v}" for k, v in self.match.model_dump(exclude_none=True).items())


class CacheConfig(Strict):
    enabled: bool = True
    ttl: float = 86400.0
    max_temperature: float = 0.0
    namespace: str = "default"
    cache_all_temperatures: bool = False
    semantic: bool = False
    semantic_threshold: float = 0.95
    semantic_include_code: bool = False
    # A feature whose judged semantic hits are wrong more often than this (with at least
    # `semantic_fp_min_judged` verdicts) gets no more semantic hits.
    semantic_fp_threshold: float = Field(default=0.1, ge=0, le=1)
    semantic_fp_min_judged: int = Field(default=5, ge=1)

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


class AuditConfig(Strict):
    """Judge sampling (devloop/audit/): a share of locally served calls is replayed on
    `replay_on` and graded by `judge`; what that may spend is capped by `usd` a `period`."""

    sample: float = Field(default=0.02, ge=0, le=1)
    replay_on: str | None = None  # default: the frontier tier, else the last configured tier
    judge: str | None = None  # default: replay_on
    usd: float = Field(default=1.0, ge=0)
    period: Literal["day", "week", "month"] = "day"
    interval: float = Field(default=30.0, gt=0)  # seconds between the worker's rounds
    semantic_hits: bool = True  # sample semantic-cache hits too (their false-positive rate)
    rubric: str | None = None
    redact: list[str] = Field(default_factory=list)  # more regexes to redact from bodies


class AlertRule(Strict):
    rule: str
    factor: float | None = Field(default=None, gt=0)
    below: float | None = None
    above: float | None = None
    usd: float | None = Field(default=None, ge=0)
    min_calls: int | None = Field(default=None, ge=1)

    @field_validator("rule")
    @classmethod
    def _rule(cls, v: str) -> str:
        if v not in ALERT_RULES:
            raise ValueError(f"unknown rule {v!r} (use one of {', '.join(ALERT_RULES)})")
        return v


class AlertsConfig(Strict):
    webhook: str | None = None
    interval: float = Field(default=300.0, gt=0)  # seconds between evaluations (server)
    rules: list[AlertRule] = Field(default_factory=list)  # overrides of the defaults
    disabled: list[str] = Field(default_factory=list)

    @field_validator("disabled")
    @classmethod
    def _disabled(cls, v: list[str]) -> list[str]:
        for name in v:
            if name not in ALERT_RULES:
                raise ValueError(f"unknown rule {name!r} (use one of {', '.join(ALERT_RULES)})")
        return v


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
    audit: AuditConfig | None = None
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
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
            if route.escalate_to is not None and route.escalate_to not in known:
                raise ValueError(f"routes.{i}.escalate_to: {route.escalate_to!r} is not a "
                                 "configured tier")
            if route.escalate_to is not None and not route.checks:
                raise ValueError(f"routes.{i}.checks: a cascade needs at least one check")
        for field_name in ("replay_on", "judge"):
            name = getattr(self.audit, field_name, None) if self.audit else None
            if name is not None and name not in known:
                raise ValueError(f"audit.{field_name}: {name!r} is not a configured tier")
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


def load_yaml(path: Path, loader: type[yaml.SafeLoader] = yaml.SafeLoader) -> Any:
    """Read a YAML file; ConfigError(file, line, reason) when it cannot be read or parsed."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(path, "", exc.strerror or str(exc)) from None
    except UnicodeDecodeError:
        raise ConfigError(path, "", "not UTF-8 text") from None
    try:
        return yaml.load(text, Loader=loader)  # noqa: S506 - SafeLoader or a subclass
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
