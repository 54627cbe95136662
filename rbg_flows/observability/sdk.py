"""The Temporal SDK's own metrics (pollers, task slots, request and task latencies) in our registry.

The SDK's core is Rust; its metrics reach Python through a `MetricBuffer` given to the runtime. The buffer
only holds updates (counter deltas, gauge values, single histogram observations) until it is drained, so
`TemporalMetrics` drains it on every scrape and on a timer (a full buffer drops updates), keeps running
totals, and exposes them as ordinary Prometheus families. Chosen over `PrometheusConfig`, the SDK's own
exporter, because that serves a second port with a second set of process metrics; here one `/metrics`
carries everything.
"""

from __future__ import annotations

import asyncio
import bisect
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from temporalio.runtime import (
    BUFFERED_METRIC_KIND_COUNTER,
    BUFFERED_METRIC_KIND_GAUGE,
    MetricBuffer,
    MetricBufferDurationFormat,
)

from rbg_flows.observability.metrics import LATENCY_BUCKETS, REGISTRY

# Large enough for a burst of thousands of activities between two drains.
BUFFER_SIZE = 100_000
DRAIN_SECONDS = 1.0
_INVALID = re.compile(r"[^a-zA-Z0-9_:]")

Labels = tuple[tuple[str, str], ...]


@dataclass
class _Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    total: float = 0.0
    observed: int = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(LATENCY_BUCKETS, value)] += 1
        self.total += value
        self.observed += 1


@dataclass
class _Family:
    kind: str
    description: str
    values: dict[Labels, float] = field(default_factory=dict)
    histograms: dict[Labels, _Histogram] = field(default_factory=dict)


def metric_name(name: str) -> str:
    """A Prometheus-valid family name (the SDK's names already are; this guards against a future one)."""
    return _INVALID.sub("_", name).removesuffix("_total")


def _labels(attributes: Mapping[str, object]) -> Labels:
    return tuple(sorted((_INVALID.sub("_", k), str(v)) for k, v in attributes.items()))


class TemporalMetrics(Collector):
    """A prometheus_client collector fed by a runtime's `MetricBuffer`."""

    def __init__(self, buffer_size: int = BUFFER_SIZE) -> None:
        # Durations as float seconds, the Prometheus convention.
        self.buffer = MetricBuffer(buffer_size, duration_format=MetricBufferDurationFormat.SECONDS)
        self._families: dict[str, _Family] = {}
        # The SDK hands over the same attributes object for a series in every update; converting it once
        # per series instead of once per update was 2-3 % of a busy worker's CPU (py-spy). The object is
        # kept with its labels so its id cannot be reused by another while it is cached.
        self._labels: dict[int, tuple[object, Labels]] = {}
        # A scrape may run on another thread than the timer (prometheus_client's own server would).
        self._lock = threading.Lock()

    def describe(self) -> list[Metric]:
        # Families are only known once the SDK emits them: no name checks at registration.
        return []

    def drain(self) -> None:
        with self._lock:
            try:
                updates = self.buffer.retrieve_updates()
            except RuntimeError:
                return  # no runtime uses the buffer yet (a scrape before the process connected)
            for update in updates:
                m = update.metric
                kind = (
                    "counter"
                    if m.kind == BUFFERED_METRIC_KIND_COUNTER
                    else "gauge"
                    if m.kind == BUFFERED_METRIC_KIND_GAUGE
                    else "histogram"
                )
                fam = self._families.get(m.name)
                if fam is None:
                    fam = self._families[m.name] = _Family(kind, m.description or m.name)
                labels = self._labels_of(update.attributes)
                if kind == "counter":
                    fam.values[labels] = fam.values.get(labels, 0.0) + update.value
                elif kind == "gauge":
                    fam.values[labels] = float(update.value)
                else:
                    fam.histograms.setdefault(labels, _Histogram()).observe(float(update.value))

    def _labels_of(self, attributes: Mapping[str, object]) -> Labels:
        cached = self._labels.get(id(attributes))
        if cached is not None and cached[0] is attributes:
            return cached[1]
        labels = _labels(attributes)
        self._labels[id(attributes)] = (attributes, labels)
        return labels

    async def drain_forever(self, every: float = DRAIN_SECONDS) -> None:
        while True:
            self.drain()
            await asyncio.sleep(every)

    def collect(self) -> Iterator[Metric]:
        self.drain()
        with self._lock:
            for name, fam in sorted(self._families.items()):
                family = metric_name(name)
                out = Metric(family, fam.description, fam.kind)
                if fam.kind == "counter":
                    for labels, value in fam.values.items():
                        out.add_sample(family + "_total", dict(labels), value)
                elif fam.kind == "gauge":
                    for labels, value in fam.values.items():
                        out.add_sample(family, dict(labels), value)
                else:
                    for labels, h in fam.histograms.items():
                        cumulative = 0
                        for bound, count in zip((*LATENCY_BUCKETS, float("inf")), h.counts, strict=True):
                            cumulative += count
                            le = "+Inf" if bound == float("inf") else repr(float(bound))
                            out.add_sample(family + "_bucket", {**dict(labels), "le": le}, cumulative)
                        out.add_sample(family + "_count", dict(labels), h.observed)
                        out.add_sample(family + "_sum", dict(labels), h.total)
                yield out


_installed: TemporalMetrics | None = None


def temporal_metrics() -> TemporalMetrics:
    """The process's collector, registered once; give its `.buffer` to the process's runtime."""
    global _installed
    if _installed is None:
        _installed = TemporalMetrics()
        REGISTRY.register(_installed)
    return _installed
