"""Prometheus metrics (``GET /metrics``): cache tiers, remote fetches, previews and conversions.

Each process has its own registry (tests run several servers in one process). The tiers' counters
live in the tiers themselves and are read at scrape time, so nothing is counted twice.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ..cache import CacheTiers

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _TierCollector(Collector):
    def __init__(self, tiers: CacheTiers) -> None:
        self.tiers = tiers

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        counters = {
            "hits": "Requests answered from the tier",
            "misses": "Requests the tier could not answer",
            "evictions": "Entries dropped to stay under the size cap",
            "expired": "Entries dropped after going unused for the tier's expiry",
            "fills": "Entries fetched or generated",
            "fill_errors": "Fetches or generations that failed",
            "bytes_served": "Bytes sent to clients from the tier",
        }
        for field, help_text in counters.items():
            family = CounterMetricFamily(f"cargohold_cache_{field}", help_text, labels=["tier"])
            for tier in self.tiers.all:
                family.add_metric([tier.name], getattr(tier.stats, field))
            yield family
        gauges = {"entries": "Entries in the tier", "bytes": "Bytes held by the tier",
                  "limit_bytes": "The tier's size cap"}
        for field, help_text in gauges.items():
            gauge = GaugeMetricFamily(f"cargohold_cache_{field}", help_text, labels=["tier"])
            for tier in self.tiers.all:
                value = tier.max_size if field == "limit_bytes" else getattr(tier, field)
                gauge.add_metric([tier.name], value)
            yield gauge


class Metrics:
    def __init__(self, tiers: CacheTiers) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_TierCollector(tiers))
        self.fetch_seconds = Histogram(
            "cargohold_remote_fetch_seconds", "Time to fetch a whole original from its remote into the storage tier",
            ["provider"], registry=self.registry,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
        )
        self.video_read_bytes = Counter(
            "cargohold_video_read_bytes", "Bytes of linked videos read by ranges from their store (probes, posters, "
            "frames), not through the storage tier", ["provider"], registry=self.registry)
        self.previews_made = Counter("cargohold_previews_made", "Previews generated", ["format"],
                                     registry=self.registry)
        self.conversions_made = Counter("cargohold_conversions_made", "Full-size conversions generated", ["format"],
                                        registry=self.registry)
        self.generate_seconds = Histogram(
            "cargohold_image_generate_seconds", "Time to make a preview or a conversion", ["what"],
            registry=self.registry, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
