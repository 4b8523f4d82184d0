"""Backends: one module per kind of upstream, all behind ``Backend``."""

from __future__ import annotations

from devloop.backends.base import (
    Backend,
    BackendError,
    CredentialError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from devloop.config import Settings, TierConfig

__all__ = ["Backend", "BackendError", "CredentialError", "UpstreamTimeout", "UpstreamUnavailable",
           "make_backend"]


def make_backend(tier: str, config: TierConfig, ollama_probe_timeout: float = 2.0,
                 settings: Settings | None = None) -> Backend:
    """Build a tier's backend; modules are imported only for the kinds a profile uses."""
    if config.backend == "embedded":
        from devloop.backends.embedded import EmbeddedBackend

        return EmbeddedBackend(tier, config, settings)
    if config.backend == "ollama":
        from devloop.backends.ollama import OllamaBackend

        return OllamaBackend(tier, config, ollama_probe_timeout)
    if config.backend == "openai":
        from devloop.backends.openai_compat import OpenAICompatBackend

        return OpenAICompatBackend(tier, config)
    from devloop.backends.litellm import LiteLLMBackend

    return LiteLLMBackend(tier, config)
