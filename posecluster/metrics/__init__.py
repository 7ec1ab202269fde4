"""Every metric declared once, with Prometheus naming (posecluster_ prefix, base units, _total counters)
and bounded labels (never a video URI). Where they go is chosen at the edge of each process:

  - the standalone CLI: prometheus-client on --metrics-port (and an optional Pushgateway push at the end);
  - inside Ray (actors, Ray Train workers): Ray's metrics, scraped from each node's metrics endpoint;
  - otherwise: nowhere (the null exporter), so library code can always record.

Archive jobs count work exactly once, in the driver: an archive worker records into a `Relay`, which keeps
its counters and histogram observations (frames, decode wait, infer and write times) and hands them back
with each segment result; the driver `replay`s them into whatever exporter it uses (--metrics-port,
the Pushgateway, or Ray's endpoint inside `ray job submit`). Workers export only their per-process
gauges (decode queue depth, accelerator memory) through Ray's endpoint. So a Prometheus that scrapes
both the CLI's port and Ray's endpoints never sees a frame twice.
"""

from __future__ import annotations

from dataclasses import dataclass

SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass(frozen=True)
class Spec:
    name: str
    kind: str  # counter, gauge, histogram
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = SECONDS_BUCKETS


FRAMES = Spec("posecluster_frames_processed_total", "counter", "Video frames predicted.")
SEGMENTS = Spec("posecluster_segments_total", "counter", "Segments finished, by outcome (done, failed, retried).", ("status",))
VIDEOS = Spec("posecluster_videos_total", "counter", "Videos finished, by outcome (done, skipped, failed).", ("status",))
DECODE_WAIT = Spec("posecluster_decode_wait_seconds", "histogram", "Time the model waited for a decoded batch.")
INFER_TIME = Spec("posecluster_infer_seconds", "histogram", "Model time per batch (transfer, forward, decode).")
WRITE_TIME = Spec("posecluster_write_seconds", "histogram", "Time to publish a segment or a pose table.")
QUEUE_DEPTH = Spec("posecluster_decode_queue_batches", "gauge", "Decoded batches waiting for the model.")
FPS = Spec("posecluster_frames_per_second", "gauge", "Frames per second of the last finished segment or video.")
ACCELERATOR_MEMORY = Spec("posecluster_accelerator_memory_bytes", "gauge", "Accelerator memory allocated by this process.")
TRAINING_LOSS = Spec("posecluster_training_loss", "gauge", "Mean training loss of the last epoch.")
STEP_TIME = Spec("posecluster_training_step_seconds", "histogram", "Seconds per optimizer step.")
TRAINING_RATE = Spec("posecluster_training_images_per_second", "gauge", "Training images per second (all workers).")
# Multi-animal videos (truth unknown at inference: what tracking found, not how right it is).
TRACKLETS = Spec("posecluster_tracklets_total", "counter", "Tracklets linked frame to frame in multi-animal videos.")
INDIVIDUALS_FOUND = Spec("posecluster_individuals_found_total", "counter",
                         "Individuals with at least one detection after stitching, summed over multi-animal videos.")
IDENTITY_JOINS = Spec("posecluster_identity_joins_total", "counter",
                      "Places where an individual's track passes from one tracklet to the next (where an identity "
                      "switch can happen), summed over multi-animal videos.")
LAST_SUCCESS = Spec("posecluster_last_success_timestamp_seconds", "gauge", "Unix time a job last finished with nothing failed.")

ALL = (FRAMES, SEGMENTS, VIDEOS, DECODE_WAIT, INFER_TIME, WRITE_TIME, QUEUE_DEPTH, FPS, ACCELERATOR_MEMORY,
       TRAINING_LOSS, STEP_TIME, TRAINING_RATE, TRACKLETS, INDIVIDUALS_FOUND, IDENTITY_JOINS, LAST_SUCCESS)


class NullExporter:
    def inc(self, spec: Spec, value: float = 1.0, **labels: str) -> None:
        pass

    def set(self, spec: Spec, value: float, **labels: str) -> None:
        pass

    def observe(self, spec: Spec, value: float, **labels: str) -> None:
        pass


class PrometheusExporter:
    """prometheus-client metrics in a registry of their own (served by serve(), pushed by push())."""

    def __init__(self):
        import prometheus_client as pc

        self.registry = pc.CollectorRegistry()
        kinds = {"counter": pc.Counter, "gauge": pc.Gauge, "histogram": pc.Histogram}
        self._metrics = {}
        for spec in ALL:
            # prometheus-client appends _total to counters itself.
            name = spec.name.removesuffix("_total") if spec.kind == "counter" else spec.name
            extra = {"buckets": spec.buckets} if spec.kind == "histogram" else {}
            self._metrics[spec.name] = kinds[spec.kind](name, spec.help, spec.labels, registry=self.registry, **extra)

    def _get(self, spec: Spec, labels: dict):
        metric = self._metrics[spec.name]
        return metric.labels(**labels) if spec.labels else metric

    def inc(self, spec: Spec, value: float = 1.0, **labels: str) -> None:
        self._get(spec, labels).inc(value)

    def set(self, spec: Spec, value: float, **labels: str) -> None:
        self._get(spec, labels).set(value)

    def observe(self, spec: Spec, value: float, **labels: str) -> None:
        self._get(spec, labels).observe(value)

    def serve(self, port: int, address: str = "0.0.0.0") -> int:
        """Serve /metrics; returns the port (useful with port 0)."""
        import prometheus_client as pc

        server, _ = pc.start_http_server(port, addr=address, registry=self.registry)
        return server.server_port

    def push(self, gateway: str, job: str) -> None:
        import prometheus_client as pc

        pc.push_to_gateway(gateway, job=job, registry=self.registry)


class RayExporter:
    """Ray's metrics (ray.util.metrics): exported by each node's metrics agent, scraped per node."""

    def __init__(self):
        from ray.util import metrics as rm

        self._metrics = {}
        for spec in ALL:
            if spec.kind == "counter":
                metric = rm.Counter(spec.name, spec.help, tag_keys=spec.labels)
            elif spec.kind == "gauge":
                metric = rm.Gauge(spec.name, spec.help, tag_keys=spec.labels)
            else:
                metric = rm.Histogram(spec.name, spec.help, boundaries=list(spec.buckets), tag_keys=spec.labels)
            self._metrics[spec.name] = metric

    def inc(self, spec: Spec, value: float = 1.0, **labels: str) -> None:
        self._metrics[spec.name].inc(value, tags=labels or None)

    def set(self, spec: Spec, value: float, **labels: str) -> None:
        self._metrics[spec.name].set(value, tags=labels or None)

    def observe(self, spec: Spec, value: float, **labels: str) -> None:
        self._metrics[spec.name].observe(value, tags=labels or None)


class Relay:
    """A worker's exporter: counters and histograms are kept for the driver to replay (see the module
    docstring); gauges go straight to `gauges` (this process's own endpoint)."""

    def __init__(self, gauges=None):
        self.gauges = gauges if gauges is not None else NullExporter()
        self._records: list[tuple[str, str, float, dict]] = []

    def inc(self, spec: Spec, value: float = 1.0, **labels: str) -> None:
        self._records.append(("inc", spec.name, float(value), labels))

    def set(self, spec: Spec, value: float, **labels: str) -> None:
        self.gauges.set(spec, value, **labels)

    def observe(self, spec: Spec, value: float, **labels: str) -> None:
        self._records.append(("observe", spec.name, float(value), labels))

    def drain(self) -> list[tuple[str, str, float, dict]]:
        records, self._records = self._records, []
        return records


BY_NAME = {spec.name: spec for spec in ALL}


def replay(records: list[tuple[str, str, float, dict]], exporter=None) -> None:
    """Record what a Relay kept into `exporter` (default: this process's)."""
    exporter = exporter or current()
    for kind, name, value, labels in records:
        getattr(exporter, kind)(BY_NAME[name], value, **labels)


# The exporter of this process, chosen at its edge (CLI start-up, actor start-up); like logging's root.
_current: NullExporter | PrometheusExporter | RayExporter = NullExporter()


def use(exporter) -> None:
    global _current
    _current = exporter


def current():
    return _current
