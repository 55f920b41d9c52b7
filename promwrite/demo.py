"""The README's main job: a realistic write through the real client to an embedded receiver.

Also home of the deterministic node-exporter-like workload that the benchmarks
use, so the demo and `bench/` measure the same kind of data.
"""

from __future__ import annotations

import random
import sys
import time
from typing import Dict, List, TextIO

from . import _backend, codec
from .client import Client
from .model import MetricMetadata, MetricType, Sample, TimeSeries, WriteRequest
from .receiver import Receiver

__all__ = ["node_exporter_labels", "run"]

_METRICS = [
    ("node_cpu_seconds_total", {"cpu": ["0", "1", "2", "3"], "mode": ["idle", "user", "system", "iowait", "irq"]}),
    ("node_filesystem_avail_bytes", {"device": ["/dev/sda1", "/dev/nvme0n1p2", "tmpfs"], "fstype": ["ext4", "xfs", "tmpfs"], "mountpoint": ["/", "/var/lib/docker", "/run", "/home"]}),
    ("node_network_receive_bytes_total", {"device": ["eth0", "eth1", "lo", "docker0", "veth3f2a1c9"]}),
    ("kube_pod_container_status_restarts_total", {"namespace": ["kube-system", "monitoring", "payments-prod", "région-européenne"], "container": ["coredns", "prometheus", "api-gateway", "worker-🚀"]}),
    ("node_memory_MemAvailable_bytes", {}),
    ("http_request_duration_seconds_bucket", {"le": ["0.005", "0.01", "0.05", "0.1", "0.5", "1", "+Inf"], "handler": ["/api/v1/query", "/metrics", "/healthz"], "code": ["200", "500"]}),
]
_REGIONS = ["eu-west-1", "us-east-1", "ap-southeast-2", "sa-east-1"]


def node_exporter_labels(n: int, seed: int = 42) -> List[Dict[str, str]]:
    """`n` distinct label sets like node-exporter / kube-state-metrics expose:
    ``__name__`` plus 8 other labels, values 5-40 characters, some unicode."""
    rng = random.Random(seed)
    out: List[Dict[str, str]] = []
    for i in range(n):
        name, choices = _METRICS[i % len(_METRICS)]
        labels = {
            "__name__": name,
            "instance": f"ip-10-{i // 4096 % 256}-{i // 16 % 256}-{i % 256}.eu-west-1.compute.internal:9100",
            "job": "node-exporter",
            "region": _REGIONS[i % len(_REGIONS)],
            "cluster": f"prod-cluster-{i % 7:02d}",
            "pod": f"node-exporter-{rng.getrandbits(40):010x}",
        }
        for key, values in choices.items():
            labels[key] = rng.choice(values)
        for key in ("team", "env", "zone", "tier"):
            if len(labels) >= 9:
                break
            labels[key] = f"{key}-{rng.choice(['alpha', 'beta', 'gamma', 'δέλτα'])}-{i % 13}"
        out.append(labels)
    return out


def demo_request(series: int, samples: int, start_ms: int) -> WriteRequest:
    """A request of `series` node-exporter-like series with `samples` samples each (15 s apart)."""
    rng = random.Random(7)
    timeseries = [
        TimeSeries(labels, [Sample(rng.random() * 1e6, timestamp_ms=start_ms + j * 15_000) for j in range(samples)])
        for labels in node_exporter_labels(series)
    ]
    metadata = [
        MetricMetadata(MetricType.COUNTER if name.endswith("_total") else MetricType.GAUGE, name, f"{name} (demo)")
        for name, _ in _METRICS
    ]
    return WriteRequest(timeseries, metadata)


def run(series: int = 2000, samples: int = 10, out: TextIO = sys.stdout) -> int:
    """Write a batch to an in-process receiver through the real HTTP client and verify it."""
    request = demo_request(series, samples, start_ms=int(time.time() * 1000) - samples * 15_000)
    raw_size = len(codec.encode(request))
    started = time.perf_counter()
    codec.encode_payload(request)
    encoding = time.perf_counter() - started
    with Receiver() as receiver, Client(receiver.url) as client:
        started = time.perf_counter()
        response = client.write(request)
        elapsed = time.perf_counter() - started
        arrived = receiver.received
        ok = len(arrived) == 1 and arrived[0] == request
        wire = receiver.payload_bytes[0] if receiver.payload_bytes else 0
    total = series * samples
    lines = [
        f"promwrite demo: {receiver.url} (embedded receiver, HTTP {response.status})",
        f"  backend          {_backend.name}",
        f"  backend reason   {_backend.reason}",
        f"  series           {series:,}",
        f"  samples          {total:,}",
        f"  protobuf bytes   {raw_size:,}",
        f"  bytes on wire    {wire:,} (snappy)",
        f"  compression      {raw_size / wire:.2f}x" if wire else "  compression      -",
        f"  encode+compress  {encoding * 1000:.1f} ms ({total / encoding:,.0f} samples/s)",
        f"  write            {elapsed * 1000:.1f} ms (encode, compress, HTTP, and the receiver's decode)",
        f"  verified         {'every series and sample arrived intact' if ok else 'MISMATCH: what arrived differs from what was sent'}",
    ]
    out.write("\n".join(lines) + "\n")
    return 0 if ok else 1
