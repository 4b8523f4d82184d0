"""devloop: a local-first LLM gateway, spend ledger and prompt promotion ladder."""

__version__ = "0.1.0"
