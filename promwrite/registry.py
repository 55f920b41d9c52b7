"""`push_registry`: write a prometheus_client registry (or any collector) to a remote-write URL.

In the shape of ``prometheus_client.push_to_gateway``, but to a remote-write
endpoint. prometheus_client is not needed: anything with a ``collect()``
method returning metric families (``.name``, ``.type``, ``.documentation``,
``.unit``, ``.samples`` of ``.name``, ``.labels``, ``.value``, ``.timestamp``)
will do.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Tuple

from .client import Client, WriteResponse
from .model import BucketSpan, Histogram, MetricMetadata, MetricType, TimeSeries, WriteRequest, now_ms as _now_ms

__all__ = ["push_registry", "registry_request"]

# The family's type as Prometheus stores it after scraping the text format
# (prometheus_client's generate_latest: info and stateset become gauges,
# gaugehistogram is written as histogram, unknown as untyped).
_STORED_TYPE = {
    "counter": MetricType.COUNTER,
    "gauge": MetricType.GAUGE,
    "histogram": MetricType.HISTOGRAM,
    "gaugehistogram": MetricType.HISTOGRAM,
    "summary": MetricType.SUMMARY,
    "info": MetricType.GAUGE,
    "stateset": MetricType.GAUGE,
    "unknown": MetricType.UNKNOWN,
    "untyped": MetricType.UNKNOWN,
}
_OM_SUFFIXES = ("_created", "_gsum", "_gcount")
_WITH_START = ("counter", "histogram", "summary")


def _stamp_ms(timestamp: Any, now: int) -> int:
    if timestamp is None:
        return now
    return int(float(timestamp) * 1000)  # prometheus_client's Timestamp and plain seconds both convert


def registry_request(
    registry: Any,
    *,
    job: Optional[str] = None,
    grouping: Optional[Mapping[str, str]] = None,
    protocol: str = "1.0",
    now_ms: Optional[int] = None,
) -> WriteRequest:
    """The WriteRequest `push_registry` sends: the series and metadata a Prometheus scrape of
    `registry`'s text exposition would store, plus the `job` and `grouping` labels.

    For remote write 2.0, a counter's, histogram's or summary's ``_created``
    sample becomes the start timestamp of the family's series with the same
    labels (and is not sent as a series); for 1.0, which has no place for it,
    it is its own gauge series ``<name>_created``, as a scrape stores it.
    """
    now = _now_ms() if now_ms is None else int(now_ms)
    extra: Dict[str, str] = {str(k): str(v) for k, v in (grouping or {}).items()}
    if job is not None:
        extra["job"] = str(job)
    series: Dict[Tuple[Tuple[str, str], ...], TimeSeries] = {}
    metadata: List[MetricMetadata] = []
    for family in registry.collect():
        ftype = family.type
        name = family.name
        stored = name + "_total" if ftype == "counter" else name + "_info" if ftype == "info" else name
        help_text = family.documentation or ""
        unit = getattr(family, "unit", "") or ""
        metadata.append(MetricMetadata(_STORED_TYPE.get(ftype, MetricType.UNKNOWN), stored, help_text, unit))
        om: Dict[str, List[Any]] = {}
        starts: Dict[Tuple[Tuple[str, str], ...], int] = {}
        members: List[Tuple[Tuple[Tuple[str, str], ...], TimeSeries]] = []
        for s in family.samples:
            native = getattr(s, "native_histogram", None)
            if native is not None:  # stored as one series of native histogram samples
                ts = _series(series, s.name, s.labels, extra)
                ts.histograms.append(_native_histogram(native, _stamp_ms(s.timestamp, now)))
                continue
            suffix = next((x for x in _OM_SUFFIXES if s.name == name + x), None)
            if suffix is not None:
                if suffix == "_created" and protocol == "2.0" and ftype in _WITH_START:
                    base = {k: v for k, v in s.labels.items()}
                    created = int(round(float(s.value) * 1000))
                    starts[tuple(sorted(base.items()))] = created if created != 0 else 1
                    continue
                om.setdefault(suffix, []).append(s)
                continue
            ts = _add(series, s.name, s.labels, extra, float(s.value), _stamp_ms(s.timestamp, now))
            own = {k: v for k, v in s.labels.items() if k not in ("le", "quantile")}
            members.append((tuple(sorted(own.items())), ts))
        for key, ts in members:
            if key in starts:
                ts.start_timestamp_ms = starts[key]
        for suffix in sorted(om):
            metadata.append(MetricMetadata(MetricType.GAUGE, name + suffix, help_text, ""))
            for s in om[suffix]:
                _add(series, s.name, s.labels, extra, float(s.value), _stamp_ms(s.timestamp, now))
    return WriteRequest(list(series.values()), metadata)


def _series(
    series: Dict[Tuple[Tuple[str, str], ...], TimeSeries], name: str, labels: Mapping[str, str],
    extra: Mapping[str, str],
) -> TimeSeries:  # fmt: skip
    """The series of that name and labels (plus the extra ones), made on first use."""
    merged = {"__name__": name, **{str(k): str(v) for k, v in labels.items()}, **extra}
    key = tuple(sorted(merged.items()))
    ts = series.get(key)
    if ts is None:
        ts = series[key] = TimeSeries(merged, [])
    return ts


def _add(
    series: Dict[Tuple[Tuple[str, str], ...], TimeSeries], name: str, labels: Mapping[str, str],
    extra: Mapping[str, str], value: float, stamp: int,
) -> TimeSeries:  # fmt: skip
    ts = _series(series, name, labels, extra)
    ts.samples.append((value, stamp))
    return ts


def _native_histogram(native: Any, stamp: int) -> Histogram:
    """prometheus_client's NativeHistogram (integer counts, bucket deltas) as ours."""
    return Histogram(
        count=int(native.count_value),
        sum=float(native.sum_value),
        schema=int(native.schema),
        zero_threshold=float(native.zero_threshold),
        zero_count=int(native.zero_count),
        positive_spans=[BucketSpan(int(sp.offset), int(sp.length)) for sp in native.pos_spans or ()],
        positive_deltas=[int(d) for d in native.pos_deltas or ()],
        negative_spans=[BucketSpan(int(sp.offset), int(sp.length)) for sp in native.neg_spans or ()],
        negative_deltas=[int(d) for d in native.neg_deltas or ()],
        timestamp_ms=stamp,
    )


def push_registry(
    target: Optional[str],
    registry: Any,
    *,
    job: Optional[str] = None,
    grouping: Optional[Mapping[str, str]] = None,
    client: Optional[Client] = None,
    **client_options: Any,
) -> WriteResponse:
    """Collect `registry` once and write it to the remote-write URL `target`.

    Like ``prometheus_client.push_to_gateway(gateway, job, registry,
    grouping_key)``: `job` becomes the label ``job`` and `grouping` adds its
    labels to every series. Series, values and metadata are what Prometheus
    stores when it scrapes the registry (counters as ``<name>_total``,
    histograms as ``_bucket``/``_sum``/``_count``, summaries with their
    quantiles, info as ``<name>_info`` = 1, stateset/enum as one 0/1 series per
    state). Pass `client` to reuse a `Client` (its auth, headers, protocol),
    or `client_options` (``auth=``, ``headers=``, ``protocol=``, ...) to make
    one for this call. Raises as `Client.write` does.
    """
    if client is not None:
        if client_options:
            raise ValueError("give client= or client options, not both")
        request = registry_request(registry, job=job, grouping=grouping, protocol=client.protocol)
        return client.write(request)
    if not target:
        raise ValueError("push_registry needs a target URL or a client")
    with Client(target, **client_options) as own:
        request = registry_request(registry, job=job, grouping=grouping, protocol=own.protocol)
        return own.write(request)
