"""Encoding and decoding of ``prometheus.WriteRequest`` (remote write 1.0),
and, with ``protocol="2.0"``, of ``io.prometheus.write.v2.Request`` (encoding
in `_codec2`, decoding in `decoder`).

`encode` turns the model into the exact bytes the official protobuf library
would produce; `encode_payload` also snappy-compresses them, as they go on the
wire. The bulk work is done by the backend's kernels (C or Python, chosen once
in `_backend`); this module flattens the request for them and words their
errors; `encoding` holds the helpers both versions share (label fields, the
rare parts: exemplars, histograms, metadata), and `batch` the columnar
`SeriesBatch` that a `SeriesSet` request (and the Writer) encodes in one call.
"""

from __future__ import annotations

from array import array
from itertools import chain
from typing import Iterable, List, Optional, Sequence, Tuple

from . import _backend, decoder
from ._backend import Kernels
from ._codec2 import encode_v2
from .batch import SeriesBatch, sample_columns
from .encoding import (
    bad_metadata_text,
    encodable,
    extras_v1,
    get_metadata,
    label_fields,
    metadata_field,
    named_error,
    sample_arrays,
    series_metadata_v1,
)
from .decoder import DecodeLimits
from .errors import SeriesError
from .model import (
    Labels,
    MetricMetadata,
    Time,
    TimeSeries,
    WriteRequest,
)

__all__ = ["PROTOCOLS", "DecodeLimits", "SeriesSet", "decode", "decode_payload", "encode", "encode_payload"]

#: The remote-write protocol versions: "1.0" (prometheus.WriteRequest) and
#: "2.0" (io.prometheus.write.v2.Request).
PROTOCOLS = ("1.0", "2.0")


def _check_protocol(protocol: str) -> str:
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be '1.0' or '2.0', not {protocol!r}")
    return protocol


def encode(request: WriteRequest, protocol: str = "1.0") -> bytes:
    """The serialized request, uncompressed; raises SeriesError/ValueError for bad input.

    `protocol` "1.0" gives a prometheus.WriteRequest, "2.0" an
    io.prometheus.write.v2.Request of the same content.
    """
    return encode_with(_backend.kernels, request, compress=False, protocol=protocol)


def encode_payload(request: WriteRequest, protocol: str = "1.0") -> bytes:
    """The request as remote write sends it: serialized, then snappy-compressed."""
    return encode_with(_backend.kernels, request, compress=True, protocol=protocol)


def encode_with(kernels: Kernels, request: WriteRequest, compress: bool, protocol: str = "1.0") -> bytes:
    """`encode`/`encode_payload` with the given backend (tests run each backend)."""
    batch = request._columns
    if isinstance(batch, SeriesBatch):  # a SeriesSet's request
        return batch.encode(kernels, _check_protocol(protocol), compress, request.metadata)
    if protocol != "1.0":
        _check_protocol(protocol)
        return encode_v2(kernels, request, compress)
    try:
        metadata = b"".join(map(metadata_field, request.metadata))
    except UnicodeEncodeError as exc:
        raise bad_metadata_text(request.metadata, request.timeseries, exc) from None
    series = request.timeseries
    label_text, label_lengths = label_fields(kernels, series)
    if any(map(get_metadata, series)):  # remote write 2.0's per-series metadata, as 1.0 can send it
        entries = series_metadata_v1(request.metadata, series)
        try:
            metadata += b"".join(map(metadata_field, entries))
        except UnicodeEncodeError as exc:
            raise bad_metadata_text(entries, series, exc) from None
    counts, values, stamps = sample_arrays(series, [ts.samples for ts in series])
    try:
        extras: Optional[List[bytes]] = [extras_v1(ts) if ts.exemplars or ts.histograms else b"" for ts in series]
    except UnicodeEncodeError as exc:
        index = next(i for i, ts in enumerate(series) if not encodable(chain.from_iterable(chain.from_iterable(e.labels for e in ts.exemplars))))
        raise named_error(SeriesError(index, f"exemplar label is not valid Unicode ({exc.reason})"), series, index) from None
    if not any(extras):  # type: ignore[arg-type]
        extras = None
    try:
        return kernels.encode_request(
            label_text, label_lengths, counts, values, stamps, extras, metadata, compress
        )
    except SeriesError as exc:
        raise named_error(exc, series, exc.index) from None


class SeriesSet:
    """A fixed list of series whose labels are checked and encoded once.

    For producers that send the same series again and again with new values:
    ``client.write(series.request(values))`` writes one sample per series and
    costs only the samples, whichever backend runs. Bad labels raise a
    SeriesError here, at construction.
    """

    __slots__ = ("labels", "_text", "_lengths", "_ones", "_v2")

    def __init__(self, labels: Iterable[Labels]) -> None:
        self.labels: Tuple[Labels, ...] = tuple(labels)
        self._text, self._lengths = label_fields(_backend.kernels, [TimeSeries(ls) for ls in self.labels])
        self._ones = array("q", [1]) * len(self.labels)
        self._v2: Optional[tuple] = None  # remote write 2.0: symbols and references, made on first use

    def __len__(self) -> int:
        return len(self.labels)

    def request(
        self,
        values: Sequence[float],
        time: Optional[Time] = None,
        *,
        timestamp_ms: Optional[int] = None,
        timestamps_ms: Optional[Sequence[int]] = None,
        metadata: Iterable[MetricMetadata] = (),
    ) -> WriteRequest:
        """A request of one sample per series: values[i] for series i.

        All samples share one time (`time`/`timestamp_ms` as for `Sample`,
        default now) unless `timestamps_ms` gives one per series.
        """
        n = len(self.labels)
        vals, stamps = sample_columns("SeriesSet.request", n, values, time, timestamp_ms, timestamps_ms)
        stamp_column = array("q", [stamps]) * n if type(stamps) is int else stamps
        return WriteRequest.from_columns(SeriesBatch(self._text, self._lengths, self._ones, vals, stamp_column, owner=self), metadata)


# --- decoding (in `decoder`) ---------------------------------------------------


def decode(data: bytes, protocol: str = "1.0", *, limits: Optional[DecodeLimits] = None) -> WriteRequest:
    """A WriteRequest from its serialized (uncompressed) bytes; unknown fields are skipped.

    Reads what any protobuf implementation (Prometheus, the official library,
    promwrite) writes; raises DecodeError for anything malformed, and
    DecodeLimitError for a request over `limits` (default: `DecodeLimits()`).
    Decoded objects are taken as they are on the wire, without the encoder's
    checks. `protocol` "2.0" reads an io.prometheus.write.v2.Request (strings
    resolved, per-series metadata and start timestamps kept; see `_codec2`).
    """
    return decoder.decode_with(_backend.kernels, data, _check_protocol(protocol), limits)


def decode_payload(
    data: bytes, max_length: Optional[int] = None, protocol: str = "1.0", *, limits: Optional[DecodeLimits] = None
) -> WriteRequest:
    """A WriteRequest from a remote-write body (snappy-compressed protobuf), within `limits`."""
    return decoder.decode_payload_with(_backend.kernels, data, max_length, _check_protocol(protocol), limits)
