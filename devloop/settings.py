"""Process-wide settings from the environment (``DEVLOOP_`` prefix), one object passed
explicitly (never a module-level singleton). Profiles are in devloop.config."""

from __future__ import annotations

from datetime import tzinfo
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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

    # Team mode: /metrics (per-user requests and spend) without an admin key.
    metrics_public: bool = False

    @property
    def db_path(self) -> Path:
        return self.home / "devloop.db"

    def ensure_home(self) -> Path:
        self.home.mkdir(parents=True, exist_ok=True)
        return self.home
