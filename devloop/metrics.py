"""In-process counters, rendered as Prometheus text on ``/metrics``."""

from __future__ import annotations

from collections import defaultdict

LabelSet = tuple[tuple[str, str], ...]

HELP = {
    "devloop_requests_total": ("counter", "Calls handled, by tier, key, cache status and status"),
    "devloop_tokens_total": ("counter", "Tokens, by tier, key and direction"),
    "devloop_cost_usd_total": ("counter", "Actual spend in USD, by tier and key"),
    "devloop_saved_usd_total": ("counter", "Saved spend in USD against the production model"),
    "devloop_cache_hits_total": ("counter", "Responses served from the cache"),
    "devloop_queue_wait_seconds_total": ("counter", "Time spent waiting in the team queue"),
    "devloop_in_flight": ("gauge", "Requests in flight"),
    "devloop_queue_depth": ("gauge", "Requests waiting in the team queue"),
}


class Metrics:
    def __init__(self) -> None:
        self.values: dict[str, dict[LabelSet, float]] = defaultdict(lambda: defaultdict(float))

    def inc(self, name: str, value: float = 1.0, **labels: str | None) -> None:
        key = tuple(sorted((k, v or "") for k, v in labels.items()))
        self.values[name][key] += value

    def set(self, name: str, value: float, **labels: str | None) -> None:
        key = tuple(sorted((k, v or "") for k, v in labels.items()))
        self.values[name][key] = value

    def render(self) -> str:
        lines: list[str] = []
        for name, series in sorted(self.values.items()):
            kind, text = HELP.get(name, ("untyped", name))
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
            for labels, value in series.items():
                label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
                lines.append(f"{name}{{{label_text}}} {value:g}" if label_text else
                             f"{name} {value:g}")
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
