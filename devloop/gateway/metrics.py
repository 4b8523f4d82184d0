"""The gateway's Prometheus metrics: names, labels, and how they are kept.

Counters and histograms are plain numbers in dicts, turned into metric families when
scraped (``_Tallies``): a prometheus_client child takes a lock and four Python calls per
update (a call's ten updates cost about 25 µs of CPU on the hot path; a dict update costs
well under 1 µs). Gauges that are set, or read when scraped, stay prometheus_client
gauges. The exposition is the same text, less the ``_created`` samples.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # what generate_latest writes
MAX_FEATURE_LABELS = 50  # distinct feature label values; later features report as "other"
OUTPUT_BUCKETS = (16, 64, 256, 1024, 4096, 16384, 65536)
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                    120.0)
# name -> (kind, help, label names). The names and labels are what dashboards and tests use.
METRICS: dict[str, tuple[type[Any], str, tuple[str, ...]]] = {
    "devloop_requests_total": (Counter, "Calls handled, by tier, key, cache status and status",
                               ("tier", "key", "cache", "status")),
    "devloop_tokens_total": (Counter, "Tokens, by tier, key and direction",
                             ("tier", "key", "direction")),
    "devloop_cost_usd_total": (Counter, "Actual spend in USD, by tier and key", ("tier", "key")),
    # A gauge: a call on a pricier model than the production one saves a negative amount.
    "devloop_saved_usd_total": (Gauge, "Saved spend in USD against the production model",
                                ("tier", "key")),
    "devloop_cache_hits_total": (Counter, "Responses served from the cache", ("tier",)),
    "devloop_queued_requests_total": (Counter, "Team requests that had to wait for a slot, by key",
                                      ("key",)),
    "devloop_queue_rejected_total": (Counter, "Team requests refused before queueing, by key and "
                                     "reason", ("key", "reason")),
    "devloop_queue_abandoned_total": (Counter, "Team requests whose client left while queued",
                                      ("key",)),
    "devloop_auth_failures_total": (Counter, "Team requests refused with 401, by reason",
                                    ("reason",)),
    "devloop_in_flight": (Gauge, "Requests in flight", ()),
    "devloop_queue_depth": (Gauge, "Requests waiting in the team queue, by key", ("key",)),
    "devloop_upstream_slots_in_use": (Gauge, "Team slots in use (requests admitted to upstream)",
                                      ()),
    "devloop_upstream_slots": (Gauge, "Team cap on requests in flight to the upstream", ()),
    "devloop_team_keys_active": (Gauge, "Active (not revoked) team keys", ()),
    "devloop_request_duration_seconds": (Histogram, "Call latency, by tier", ("tier",)),
    # Provider prompt caching and output sizes, by feature (bounded: MAX_FEATURE_LABELS)
    "devloop_cache_read_tokens_total": (Counter, "Provider-cache read tokens, by feature and tier",
                                        ("feature", "tier")),
    "devloop_cache_write_tokens_total": (Counter, "Provider-cache write tokens, by feature, tier "
                                         "and TTL", ("feature", "tier", "ttl")),
    "devloop_output_tokens": (Histogram, "Output tokens per answered call, by feature and tier",
                              ("feature", "tier")),
    "devloop_own_requests_total": (Counter, "devloop's own calls (check, eval, judge, probe), "
                                   "never counted as saved", ("origin",)),
    # Its _sum is the total wait by key (what devloop_queue_wait_seconds_total once counted).
    "devloop_queue_wait_seconds": (Histogram, "Wait in the team queue before a slot, by key",
                                   ("key",)),
}
# Gauges only ever added to (kept as tallies, exposed as gauges).
ADDED_GAUGES = frozenset({"devloop_saved_usd_total"})
Labels = tuple[str | None, ...]  # label values in METRICS' order; None is exposed as ""


class Metrics:
    """The gateway's metrics, in a registry of its own (several gateways can run in one
    process). ``add`` and ``sample`` take label values in METRICS' order (the hot path);
    ``inc``, ``observe`` and ``set`` take them by name."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.counts: dict[str, dict[Labels, float]] = {}
        self.histograms: dict[str, tuple[tuple[float, ...], dict[Labels, list[float]]]] = {}
        self._gauges: dict[str, Any] = {}
        for name, (kind, text, labels) in METRICS.items():
            if kind is Counter or name in ADDED_GAUGES:
                self.counts[name] = {}
            elif kind is Histogram:
                buckets = OUTPUT_BUCKETS if name == "devloop_output_tokens" else DURATION_BUCKETS
                self.histograms[name] = (tuple(float(b) for b in buckets), {})
            else:
                self._gauges[name] = Gauge(name, text, labels, registry=self.registry)
        self.registry.register(_Tallies(self))
        self._features: set[str] = set()

    def feature(self, name: str | None) -> str:
        """A bounded label value: the first MAX_FEATURE_LABELS features, then "other"."""
        label = name or "(none)"
        if label in self._features or len(self._features) < MAX_FEATURE_LABELS:
            self._features.add(label)
            return label
        return "other"

    def add(self, name: str, labels: Labels, value: float = 1.0) -> None:
        counts = self.counts[name]
        counts[labels] = counts.get(labels, 0.0) + value

    def sample(self, name: str, labels: Labels, value: float) -> None:
        """One observation into a histogram: per-bucket counts (made cumulative when
        scraped), then the running sum."""
        bounds, series = self.histograms[name]
        row = series.get(labels)
        if row is None:
            row = series[labels] = [0.0] * (len(bounds) + 2)  # buckets, +Inf, sum
        row[bisect_left(bounds, value)] += 1
        row[-1] += value

    def inc(self, name: str, value: float = 1.0, **labels: str | None) -> None:
        self.add(name, _in_order(name, labels), value)

    def observe(self, name: str, value: float, **labels: str | None) -> None:
        self.sample(name, _in_order(name, labels), value)

    def set(self, name: str, value: float, **labels: str | None) -> None:
        gauge = self._gauges[name]
        (gauge.labels(**{k: v or "" for k, v in labels.items()}) if labels else gauge).set(value)

    def track(self, name: str, read: Callable[[], float]) -> None:
        """A gauge without labels that reads its value when scraped."""
        self._gauges[name].set_function(read)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


def _in_order(name: str, labels: dict[str, str | None]) -> Labels:
    """Label values by name -> in METRICS' order; ValueError for a wrong set of names (as
    prometheus_client's ``labels()`` raises)."""
    names = METRICS[name][2]
    if len(labels) != len(names) or not labels.keys() <= set(names):
        raise ValueError(f"{name}: labels {sorted(labels)}, expected {list(names)}")
    return tuple(map(labels.get, names))


class _Tallies(Collector):
    """The tallied counters and histograms as metric families, built at each scrape."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        for name, counts in self.metrics.counts.items():
            _, text, labels = METRICS[name]
            family = (GaugeMetricFamily if name in ADDED_GAUGES else CounterMetricFamily)(
                name, text, labels=labels)
            for values, total in list(counts.items()):
                family.add_metric([v or "" for v in values], total)
            yield family
        for name, (bounds, series) in self.metrics.histograms.items():
            _, text, labels = METRICS[name]
            hist = HistogramMetricFamily(name, text, labels=labels)
            for values, row in list(series.items()):
                running, buckets = 0.0, []
                for bound, count in zip((*map(floatToGoString, bounds), "+Inf"), row[:-1],
                                        strict=True):
                    running += count
                    buckets.append((bound, running))
                hist.add_metric([v or "" for v in values], buckets, row[-1])
            yield hist
