"""One screen per mode: dashboard, calls, prompts, evals, spend, backends (keys 1-6)."""
