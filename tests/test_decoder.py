"""The decode kernels (C and Python) against each other and against the official protobuf parse.

Both kernels must give equal columns or the same error for every input
(valid, mutated, random); their columns must say what the official library
parses from the same bytes.
"""

from __future__ import annotations

import struct
from typing import Any, List, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promwrite import _pydecode
from promwrite._pydecode import Decoded
from promwrite.codec import encode_with
from promwrite.decoder import DEFAULT_LIMITS, decode_histogram, decode_with
from promwrite.encoding import histogram_body
from promwrite.model import Sample, TimeSeries, WriteRequest

from .conftest import BACKENDS
from .prompb2_ref import PB2, to_pb2
from .prompb_ref import PB, to_pb
from .test_codec import requests
from .test_codec_v2 import requests_v2

PYTHON = BACKENDS[0]
SLOW = settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)


def outcome(kernels: Any, data: bytes, protocol: str, limits: Any = DEFAULT_LIMITS) -> Any:
    """A kernel's columns (floats as bits, so NaNs compare), or its error's type and text."""
    kernel = kernels.decode_v1 if protocol == "1.0" else kernels.decode_v2
    try:
        cols = kernel(data, limits.kernel_limits(len(data)), 12345)
    except ValueError as exc:
        return type(exc).__name__, str(exc)
    return cols._replace(values=cols.values.tobytes())  # still a Decoded


def same_everywhere(data: bytes, protocol: str, limits: Any = DEFAULT_LIMITS) -> Any:
    first = outcome(PYTHON, data, protocol, limits)
    for kernels in BACKENDS[1:]:
        assert outcome(kernels, data, protocol, limits) == first, kernels.name
    return first


def mutate(raw: bytes, data: st.DataObject) -> bytes:
    out = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 4))):
        what = data.draw(st.sampled_from(["set", "insert", "delete"]))
        pos = data.draw(st.integers(0, max(len(out) - 1, 0)))
        if what == "insert" or not out:
            out[pos:pos] = data.draw(st.binary(min_size=1, max_size=3))
        elif what == "set":
            out[pos] = data.draw(st.integers(0, 255))
        else:
            del out[pos]
    return bytes(out[: data.draw(st.integers(0, len(out)))])


# ---- the two kernels agree -----------------------------------------------------


@SLOW
@given(requests(), st.data())
def test_kernels_agree_v1(req: WriteRequest, data: st.DataObject) -> None:
    raw = encode_with(PYTHON, req, compress=False)
    assert isinstance(same_everywhere(raw, "1.0"), Decoded)
    same_everywhere(mutate(raw, data), "1.0")


@SLOW
@given(requests_v2(), st.data())
def test_kernels_agree_v2(req: WriteRequest, data: st.DataObject) -> None:
    raw = encode_with(PYTHON, req, compress=False, protocol="2.0")
    assert isinstance(same_everywhere(raw, "2.0"), Decoded)
    same_everywhere(mutate(raw, data), "2.0")


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(["1.0", "2.0"]))
def test_kernels_agree_on_garbage(data: bytes, protocol: str) -> None:
    same_everywhere(data, protocol)


@SLOW
@given(st.one_of(requests(), requests_v2()), st.sampled_from(["1.0", "2.0"]), st.integers(0, 8), st.integers(0, 3000))
def test_kernels_agree_at_every_limit(req: WriteRequest, protocol: str, which: int, value: int) -> None:
    raw = encode_with(PYTHON, req, compress=False, protocol=protocol)
    limits = DEFAULT_LIMITS._replace(**{DEFAULT_LIMITS._fields[which]: value}) if which else DEFAULT_LIMITS
    if which == 8:
        limits = limits._replace(max_expansion=value % 20)
    same_everywhere(raw, protocol, limits)


def test_errors_are_worded_the_same() -> None:
    cases = {
        b"\x0a": ("1.0", "truncated varint"),
        b"\x0a\x05\x0a": ("1.0", "field 1 claims 5 bytes, 1 are left"),
        b"\x0b": ("1.0", "unsupported wire type 3 (field 1)"),
        b"\x00": ("1.0", "field number 0"),
        b"\x09\x00": ("1.0", "truncated fixed-size field"),
        b"\x08" + b"\xff" * 9 + b"\x02": ("1.0", "varint over 64 bits"),
        b"\x0a\x05\x0a\x03\x0a\x01\xff": ("1.0", "invalid UTF-8 in a string field"),
        b"\x0a\x05\x22\x03\x52\x01\x00": ("1.0", "packed doubles of a length not a multiple of 8"),
        b"\x22\x00\x2a\x03\x0a\x01\x01": ("2.0", "a series has an odd number of label references (1)"),
        b"\x22\x00\x2a\x04\x0a\x02\x00\x01": ("2.0", "a series refers to symbol 1, but there are 1"),
    }
    for data, (protocol, message) in cases.items():
        assert same_everywhere(data, protocol) == ("DecodeError", message), data


# ---- against the official protobuf library ----------------------------------------


def _bits(value: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", value))[0]


def plain_columns(cols: Decoded, data: bytes, protocol: str) -> List[Any]:
    """What the columns say, per series: labels in wire order, samples (bits), exemplars, histograms, metadata."""
    text, pairs = cols.strings, cols.pairs

    def labels(refs: Any) -> List[Tuple[str, str]]:
        return [(text[pairs[2 * r]], text[pairs[2 * r + 1]]) for r in refs]

    out: List[Any] = []
    ref = sample = 0
    values = struct.unpack(f"<{len(cols.values)}Q", cols.values.tobytes())
    for s, (n_labels, n_samples) in enumerate(zip(cols.series_labels, cols.series_samples)):
        starts = cols.starts[sample : sample + n_samples] if protocol == "2.0" else [0] * n_samples
        out.append({
            "labels": labels(cols.label_refs[ref : ref + n_labels]),
            "samples": list(zip(values[sample : sample + n_samples], cols.stamps[sample : sample + n_samples], starts)),
            "exemplars": [], "histograms": [], "metadata": None,
        })  # fmt: skip
        ref += n_labels
        sample += n_samples
    rows, eref = cols.exemplars, 0
    for i in range(0, len(rows), 4):
        series, n, value, ts = rows[i : i + 4]
        out[series]["exemplars"].append((labels(cols.exemplar_refs[eref : eref + n]), value & (2**64 - 1), ts))
        eref += n
    rows = cols.histograms
    for i in range(0, len(rows), 3):
        h, begun = decode_histogram(data, rows[i + 1], rows[i + 2])
        out[rows[i]]["histograms"].append((histogram_body(h), begun))
    rows = cols.metadata
    metadata = []
    for i in range(0, len(rows), 4):
        a, b, c, d = rows[i : i + 4]
        if protocol == "1.0":
            metadata.append((a & (2**64 - 1), text[b], text[c], text[d]))
        else:
            out[a]["metadata"] = (b & (2**64 - 1), text[c], text[d])
    return [out, metadata]


def plain_official(data: bytes, protocol: str) -> List[Any]:
    """The same, from the official library's parse."""
    if protocol == "1.0":
        msg = PB["WriteRequest"].FromString(data)
        msg.DiscardUnknownFields()
        out = []
        for ts in msg.timeseries:
            out.append({
                "labels": [(lb.name, lb.value) for lb in ts.labels],
                "samples": [(_bits(s.value), s.timestamp, 0) for s in ts.samples],
                "exemplars": [([(lb.name, lb.value) for lb in e.labels], _bits(e.value), e.timestamp) for e in ts.exemplars],
                "histograms": [(h.SerializeToString(), 0) for h in ts.histograms],
                "metadata": None,
            })  # fmt: skip
        metadata = [(m.type, m.metric_family_name, m.help, m.unit) for m in msg.metadata]
        return [out, metadata]
    msg = PB2["Request"].FromString(data)
    msg.DiscardUnknownFields()
    sym = list(msg.symbols)

    def labels(refs: Any) -> List[Tuple[str, str]]:
        return [(sym[refs[i]], sym[refs[i + 1]]) for i in range(0, len(refs), 2)]

    out = []
    for ts in msg.timeseries:
        hists = []
        for h in ts.histograms:
            begun = h.start_timestamp
            h.ClearField("start_timestamp")
            hists.append((h.SerializeToString(), begun))
        out.append({
            "labels": labels(ts.labels_refs),
            "samples": [(_bits(s.value), s.timestamp, s.start_timestamp) for s in ts.samples],
            "exemplars": [(labels(e.labels_refs), _bits(e.value), e.timestamp) for e in ts.exemplars],
            "histograms": hists,
            "metadata": (ts.metadata.type, sym[ts.metadata.help_ref], sym[ts.metadata.unit_ref]) if ts.HasField("metadata") else None,
        })  # fmt: skip
    return [out, []]


def agrees_with_official(kernels: Any, data: bytes, protocol: str) -> None:
    cols = (kernels.decode_v1 if protocol == "1.0" else kernels.decode_v2)(data, DEFAULT_LIMITS.kernel_limits(len(data)), 7)
    assert plain_columns(cols, data, protocol) == plain_official(data, protocol)


@SLOW
@given(requests())
def test_columns_equal_official_parse_v1(req: WriteRequest) -> None:
    data = to_pb(req).SerializeToString()
    for kernels in BACKENDS:
        agrees_with_official(kernels, data, "1.0")


@SLOW
@given(requests_v2())
def test_columns_equal_official_parse_v2(req: WriteRequest) -> None:
    data = to_pb2(req).SerializeToString()
    for kernels in BACKENDS:
        agrees_with_official(kernels, data, "2.0")


@SLOW
@given(requests(), st.data())
def test_mutated_bytes_both_parsers_accept_agree_v1(req: WriteRequest, data: st.DataObject) -> None:
    """Where the official library and a kernel both read mutated bytes, they read the same."""
    raw = mutate(to_pb(req).SerializeToString(), data)
    try:
        plain_official(raw, "1.0")
    except Exception:  # the official library refuses it: nothing to compare
        return
    for kernels in BACKENDS:
        try:
            agrees_with_official(kernels, raw, "1.0")
        except ValueError:
            pass


def test_model_built_from_columns(kernels) -> None:
    """Label objects are shared, sorted series get a LabelSet, unsorted ones keep wire order."""
    req = WriteRequest([
        TimeSeries({"__name__": "a", "job": "x"}, [Sample(1.0, timestamp_ms=5)]),
        TimeSeries({"__name__": "b", "job": "x"}, [Sample(2.0, timestamp_ms=6), Sample(3.0, timestamp_ms=7)]),
    ])  # fmt: skip
    got = decode_with(kernels, encode_with(kernels, req, compress=False))
    assert got == req
    assert got.timeseries[0].labels[1] is got.timeseries[1].labels[1]
    first, second = got.timeseries  # filled slot by slot: each a whole, independent series
    first.exemplars.append("e")
    first.histograms.append("h")
    assert second.exemplars == second.histograms == [] and first.samples is not second.samples
    assert hash(first._labels) == hash(first.labels) and first.metadata is first.start_timestamp_ms is None
    assert (first.samples[0].value, first.samples[0].timestamp_ms) == (1.0, 5)
    unsorted = b"\x0a\x14" + b"\x0a\x08\x0a\x03job\x12\x01x" + b"\x0a\x08\x0a\x01a\x12\x03abc"
    ts = decode_with(kernels, unsorted).timeseries[0]
    assert [tuple(lb) for lb in ts._labels] == [("job", "x"), ("a", "abc")]
    assert ts.labels == (("a", "abc"), ("job", "x"))


@pytest.mark.parametrize("protocol", ["1.0", "2.0"])
def test_strings_holding_nul(kernels, protocol: str) -> None:
    """The C kernel hands strings over NUL-separated unless one holds a NUL: both ways give the same."""
    req = WriteRequest([TimeSeries({"__name__": "a", "v": "x\x00y", "w": "\x00"}, [(1.0, 1)]),
                        TimeSeries({"__name__": "b", "v": "é\u20ac\U0001f600"}, [(2.0, 2)])])  # fmt: skip
    for each in (req, WriteRequest(req.timeseries[1:])):
        assert decode_with(kernels, encode_with(kernels, each, compress=False, protocol=protocol), protocol) == each


@pytest.mark.parametrize("protocol", ["1.0", "2.0"])
def test_few_strings_not_ascii(kernels, protocol: str) -> None:
    """The C kernel hands over ASCII runs of strings and the few others apart: first, adjacent, last, both widths."""
    odd = {0: "é0", 1: "\u20ac1", 57: "z\U0001f600", 58: "\xff", 199: "last-\u03b4"}
    req = WriteRequest([TimeSeries({"__name__": "m", "v": odd.get(i, f"x{i}")}, [(1.0, i + 1)]) for i in range(200)])
    data = encode_with(kernels, req, compress=False, protocol=protocol)
    assert decode_with(kernels, data, protocol) == req
    assert outcome(kernels, data, protocol) == outcome(PYTHON, data, protocol)


@pytest.mark.parametrize("protocol", ["1.0", "2.0"])
def test_python_kernel_is_the_fallback(protocol: str) -> None:
    assert PYTHON.decode_v1 is _pydecode.decode_v1 and PYTHON.decode_v2 is _pydecode.decode_v2
    if len(BACKENDS) > 1:
        assert BACKENDS[1].decode_v1 is not _pydecode.decode_v1
