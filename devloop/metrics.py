"""In-process counters, gauges and histograms, rendered as Prometheus text on ``/metrics``."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

LabelSet = tuple[tuple[str, str], ...]

HELP = {
    "devloop_requests_total": ("counter", "Calls handled, by tier, key, cache status and status"),
    "devloop_tokens_total": ("counter", "Tokens, by tier, key and direction"),
    "devloop_cost_usd_total": ("counter", "Actual spend in USD, by tier and key"),
    "devloop_saved_usd_total": ("counter", "Saved spend in USD against the production model"),
    "devloop_cache_hits_total": ("counter", "Responses served from the cache"),
    "devloop_queue_wait_seconds_total": ("counter", "Time spent waiting in the team queue"),
    "devloop_queued_requests_total": ("counter", "Team requests that had to wait for a slot, by key"),
    "devloop_queue_rejected_total": ("counter", "Team requests refused before queueing, by key and reason"),
    "devloop_queue_abandoned_total": ("counter", "Team requests whose client left while queued"),
    "devloop_auth_failures_total": ("counter", "Team requests refused with 401, by reason"),
    "devloop_in_flight": ("gauge", "Requests in flight"),
    "devloop_queue_depth": ("gauge", "Requests waiting in the team queue (total and by key)"),
    "devloop_upstream_slots_in_use": ("gauge", "Team slots in use (requests admitted to upstream)"),
    "devloop_upstream_slots": ("gauge", "Team cap on requests in flight to the upstream"),
    "devloop_team_keys_active": ("gauge", "Active (not revoked) team keys"),
    "devloop_request_duration_seconds": ("histogram", "Call latency, by tier"),
    "devloop_queue_wait_seconds": ("histogram", "Wait in the team queue before a slot, by key"),
}
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                   120.0)


@dataclass(slots=True)
class _Histogram:
    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def observe(self, value: float) -> None:
        if not self.counts:
            self.counts = [0] * len(self.buckets)
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1
                break
        self.total += value
        self.count += 1


class Metrics:
    def __init__(self) -> None:
        self.values: dict[str, dict[LabelSet, float]] = defaultdict(lambda: defaultdict(float))
        self.histograms: dict[str, dict[LabelSet, _Histogram]] = defaultdict(dict)

    def inc(self, name: str, value: float = 1.0, **labels: str | None) -> None:
        self.values[name][_labels(labels)] += value

    def set(self, name: str, value: float, **labels: str | None) -> None:
        self.values[name][_labels(labels)] = value

    def observe(self, name: str, value: float, buckets: tuple[float, ...] = DEFAULT_BUCKETS,
                **labels: str | None) -> None:
        series = self.histograms[name]
        key = _labels(labels)
        if key not in series:
            series[key] = _Histogram(buckets)
        series[key].observe(value)

    def render(self) -> str:
        lines: list[str] = []
        for name, series in sorted(self.values.items()):
            kind, text = HELP.get(name, ("untyped", name))
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
            for labels, value in series.items():
                lines.append(f"{name}{_label_text(labels)} {_number(value)}")
        for name, hseries in sorted(self.histograms.items()):
            _, text = HELP.get(name, ("histogram", name))
            lines += [f"# HELP {name} {text}", f"# TYPE {name} histogram"]
            for labels, h in hseries.items():
                running = 0
                for bound, n in zip(h.buckets, h.counts or [0] * len(h.buckets), strict=True):
                    running += n
                    lines.append(f"{name}_bucket{_label_text(labels, le=_number(bound))} {running}")
                lines.append(f"{name}_bucket{_label_text(labels, le='+Inf')} {h.count}")
                lines.append(f"{name}_sum{_label_text(labels)} {_number(h.total)}")
                lines.append(f"{name}_count{_label_text(labels)} {h.count}")
        return "\n".join(lines) + "\n"


def _labels(labels: dict[str, str | None]) -> LabelSet:
    return tuple(sorted((k, v or "") for k, v in labels.items()))


def _label_text(labels: LabelSet, le: str | None = None) -> str:
    pairs = [*labels, ("le", le)] if le is not None else list(labels)
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}"


def _number(value: float) -> str:
    """Exact for counts (``:g`` would print 1234567 as 1.23457e+06), full precision otherwise."""
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
