"""Prometheus metrics on /metrics: jobs by state, queue depth, submit->start latency, capacity in use,
and the API's own request counts and latencies.

Store-derived numbers are read at scrape time by a custom collector (two small queries), so they are
right even when the scheduler runs in another process. Each app has its own registry, so several
apps (tests) never share counters.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from freight.jobs.states import JobState

if TYPE_CHECKING:
    from freight.jobs.service import JobService
    from freight.server.sampler import Sampler

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600)
_HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)


class _StoreCollector(Collector):
    def __init__(self, service: JobService, sampler: Sampler) -> None:
        self.service = service
        self.sampler = sampler

    def collect(self) -> Iterator[Metric]:
        by_state = {state.value: 0 for state in JobState}
        depth = GaugeMetricFamily(
            "freight_queue_depth", "Jobs waiting in a queue (queued or retrying)", labels=["queue"]
        )
        paused = GaugeMetricFamily("freight_queue_paused", "1 if the queue is paused", labels=["queue"])
        weight = GaugeMetricFamily("freight_queue_weight", "Fair-share weight of the queue", labels=["queue"])
        for queue in self.service.queues():
            counts = queue["jobs"]
            for state, count in counts.items():
                by_state[state] = by_state.get(state, 0) + count
            depth.add_metric([queue["name"]], counts.get("queued", 0) + counts.get("retrying", 0))
            paused.add_metric([queue["name"]], 1.0 if queue["paused"] else 0.0)
            weight.add_metric([queue["name"]], float(queue["weight"]))
        jobs = GaugeMetricFamily("freight_jobs", "Jobs in the store by state", labels=["state"])
        for state, count in sorted(by_state.items()):
            jobs.add_metric([state], count)
        yield jobs
        yield depth
        yield paused
        yield weight
        sample = self.sampler.current()
        yield GaugeMetricFamily("freight_cpus_capacity", "CPUs this node offers to jobs", value=sample.cpus)
        yield GaugeMetricFamily("freight_cpus_in_use", "CPUs held by running jobs", value=sample.used_cpus)
        yield GaugeMetricFamily(
            "freight_memory_capacity_bytes", "Memory this node offers to jobs", value=sample.memory
        )
        yield GaugeMetricFamily(
            "freight_memory_in_use_bytes",
            "Memory held by running jobs (their limits)",
            value=sample.used_memory,
        )
        holder = self.service.scheduler_holder()
        yield GaugeMetricFamily(
            "freight_scheduler_up",
            "1 if a scheduler holds the lease on this store",
            value=1.0 if holder else 0.0,
        )


class Metrics:
    def __init__(self) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created series are noise here
        self.registry = CollectorRegistry(auto_describe=True)
        self.submit_to_start = Histogram(
            "freight_submit_to_start_seconds",
            "Seconds from a job's submission to the start of its first attempt",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.requests = Counter(
            "freight_http_requests",
            "API and UI requests served",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "freight_http_request_duration_seconds",
            "Time to the response head (streams are not timed to their end)",
            ["method", "route"],
            buckets=_HTTP_BUCKETS,
            registry=self.registry,
        )

    def watch_store(self, service: JobService, sampler: Sampler) -> None:
        self.registry.register(_StoreCollector(service, sampler))

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.request_seconds.labels(method, route).observe(seconds)
