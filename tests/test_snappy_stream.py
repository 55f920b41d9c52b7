"""The snappy the encoders write (`encode_request(..., compress=True)`): what it
decompresses to, and its size against Google's snappy (cramjam).

The contract, per backend (their compressed bytes may differ: the Python
encoder writes its own stream, `promwrite._pystream`):
* cramjam and both our decompressors read it back to exactly the protobuf bytes
  that the same call without `compress` gives (those are identical across
  backends and to the official library's: tests/test_codec.py);
* it is at most 10% larger than cramjam's compression of those bytes on the
  bench workloads and on the remote-write bodies below (Prometheus-style: one
  sample per series, a scrape's series sharing its timestamp; batches of many
  samples per series; counters, gauges, zeros, jittered timestamps). Where
  nothing repeats (random label values and doubles), literals: at most a few
  bytes per 64 over the raw size.
"""

from __future__ import annotations

import pickle
import random
from array import array
from typing import Dict, List, Tuple

import cramjam
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promwrite import _pyproto
from promwrite.codec import encode_with
from promwrite.demo import demo_request, node_exporter_labels
from promwrite.model import TimeSeries, WriteRequest

from .conftest import examples
from .snappy_check import assert_decompresses_to

SUPPRESS = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
START = 1_700_000_000_000


def google_size(raw: bytes) -> int:
    return len(cramjam.snappy.compress_raw(raw))


# --- the round trip, on arbitrary requests ------------------------------------------

label_name = st.sampled_from(["job", "instance", "le", "mode", "a_b", "x"])
label_value = st.one_of(st.sampled_from(["node", "10.0.0.1:9100", "0.5", "+Inf", "idle", "é🚀"]), st.text(min_size=1, max_size=40))
label_set = st.dictionaries(label_name, label_value, max_size=5).map(lambda d: {"__name__": "m", **d})
value = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1.0, 42.0, 1e9]),
    st.integers(0, 1 << 40).map(float),
)
# timestamps: from a few shared runs (copies across series), or anything (1-10 byte varints, 0, negative)
shared_runs = [[START + 15_000 * j for j in range(k)] for k in range(6)] + [[1, 2, 3], [0, 5]]
stamps = st.one_of(
    st.sampled_from(shared_runs),
    st.lists(st.integers(-(1 << 63), (1 << 63) - 1), max_size=5, unique=True).map(sorted),
    st.lists(st.integers(START, START + 200), max_size=5, unique=True).map(sorted),
)


@st.composite
def request_parts(draw: st.DrawFn) -> Tuple:
    """encode_request's arguments, label text from the Python label kernel or raw bytes."""
    series = draw(st.lists(st.tuples(label_set, stamps), max_size=8))
    names: List[str] = [n for labels, _ in series for n in labels]
    values: List[str] = [v for labels, _ in series for v in labels.values()]
    text, lengths = _pyproto.encode_labels(names, values, [len(labels) for labels, _ in series])
    if draw(st.booleans()):  # any bytes, cut anyhow: the stream must not rely on their shape
        pieces = draw(st.lists(st.binary(max_size=300), min_size=len(series), max_size=len(series)))
        text, lengths = b"".join(pieces), list(map(len, pieces))
    counts = [len(ts) for _, ts in series]
    vals = array("d", draw(st.lists(value, min_size=sum(counts), max_size=sum(counts))))
    ts_column = array("q", [t for _, run in series for t in run])
    extras = draw(st.one_of(st.none(), st.lists(st.binary(max_size=40), min_size=len(series), max_size=len(series))))
    metadata = draw(st.binary(max_size=60))
    return text, lengths, counts, vals, ts_column, extras, metadata


@settings(max_examples=examples(400), deadline=None, suppress_health_check=SUPPRESS)
@given(parts=request_parts())
def test_compressed_request_decompresses_to_the_request(kernels, parts):
    raw = kernels.encode_request(*parts, False)
    assert raw == _pyproto.encode_request(*parts, False)
    assert_decompresses_to(kernels.encode_request(*parts, True), raw)


@settings(max_examples=examples(150), deadline=None, suppress_health_check=SUPPRESS)
@given(parts=request_parts())
def test_label_text_cut_or_kept_gives_the_same_stream(parts):
    """The fields `LabelText` keeps, and label text cut up again, are the same pieces."""
    text, lengths = parts[:2]
    assert _pyproto.encode_request(bytes(text), list(lengths), *parts[2:], True) == _pyproto.encode_request(*parts, True)


def test_repeats_across_blocks_and_far_back(kernels):
    """Copies over 64 KiB back (copy-4) and longer than 64 bytes (split) read back right."""
    labels = [{"__name__": "m", "big": "v" * 200 + str(i % 3)} for i in range(2000)]
    filler = [{"__name__": "m", "r": random.Random(i).randbytes(30).hex()} for i in range(3000)]
    series = [TimeSeries(ls, [(1.5, START)]) for ls in labels[:3] + filler + labels]
    request = WriteRequest(series)
    assert_decompresses_to(encode_with(kernels, request, compress=True), encode_with(kernels, request, compress=False))


# --- size against Google's snappy ---------------------------------------------------------


def workload(n_series: int, n_samples: int, seed: int) -> WriteRequest:
    """bench/test_encode.py's workloads (W1: 10,000 x 1, seed 1; W2: 1,000 x 100, seed 2)."""
    rng = random.Random(seed)
    return WriteRequest(
        [
            TimeSeries(labels, [(rng.random() * 1e9, START + j * 15_000) for j in range(n_samples)])
            for labels in node_exporter_labels(n_series)
        ]
    )


def scrapes(targets: int, samples: int, zeros: float, jitter: bool = False, seed: int = 1) -> WriteRequest:
    """Like Prometheus or a batching client sends: per target 50 series sharing its scrape
    times (or, `jitter`, each sample its own), values counters (integers), gauges and zeros."""
    rng = random.Random(seed)
    series = []
    for target in range(targets):
        first = START + rng.randrange(15_000)
        for labels in node_exporter_labels(50, seed=target):
            labels = dict(labels, instance=f"10.0.{target // 250}.{target % 250}:9100")
            points = []
            for j in range(samples):
                r = rng.random()
                v = 0.0 if r < zeros else float(rng.randrange(1 << 20)) if r < 0.6 else rng.random() * 1e6
                points.append((v, first + j * 15_000 + (rng.randrange(100) if jitter else 0)))
            series.append(TimeSeries(labels, points))
    return WriteRequest(series)


def prometheus_queue(rounds: int) -> WriteRequest:
    """Prometheus' queue manager: every sample its own TimeSeries, a series again each scrape."""
    labels = node_exporter_labels(500)
    rng = random.Random(3)
    return WriteRequest(
        [TimeSeries(ls, [(float(rng.randrange(5)) if i % 3 else rng.random(), START + r * 15_000)]) for r in range(rounds) for i, ls in enumerate(labels)]
    )


def small_integers(n_series: int, samples: int) -> WriteRequest:
    """Each sample at its own time (a client stamping its readings), values from a few small integers."""
    rng = random.Random(5)
    return WriteRequest(
        [TimeSeries(ls, [(float(rng.randrange(100)), START + j * 15_000 + rng.randrange(100)) for j in range(samples)]) for ls in node_exporter_labels(n_series)]
    )


BODIES: Dict[str, WriteRequest] = {
    "W1": workload(10_000, 1, 1),
    "W2": workload(1_000, 100, 2),
    "demo (metadata)": demo_request(2000, 10, START),
    "scrapes x1": scrapes(200, 1, zeros=0.2),
    "scrapes x1, 90% zeros": scrapes(200, 1, zeros=0.9),
    "scrapes x100": scrapes(20, 100, zeros=0.2),
    "scrapes x100, no zeros": scrapes(20, 100, zeros=0.0),
    "scrapes x50, jittered": scrapes(10, 50, zeros=0.1, jitter=True),
    "prometheus queue": prometheus_queue(8),
    "own times, small integers": small_integers(500, 50),
}


@pytest.mark.parametrize("name", list(BODIES))
def test_within_ten_percent_of_google(kernels, name):
    request = BODIES[name]
    raw = encode_with(kernels, request, compress=False)
    payload = encode_with(kernels, request, compress=True)
    assert_decompresses_to(payload, raw)
    assert len(payload) <= 1.10 * google_size(raw), (len(payload), google_size(raw))


def test_incompressible_request_stays_literal(kernels):
    """Random label values and doubles: nothing to copy; the literals' tags cost little."""
    rng = random.Random(9)
    series = [TimeSeries({"__name__": "m", "id": rng.randbytes(24).hex()}, [(rng.random(), START + rng.randrange(1 << 30))]) for _ in range(3000)]
    request = WriteRequest(series)
    raw = encode_with(kernels, request, compress=False)
    payload = encode_with(kernels, request, compress=True)
    assert_decompresses_to(payload, raw)
    assert len(payload) <= len(raw) + len(raw) // 32 + 8


def test_a_series_sampled_as_an_earlier_one_costs_its_values():
    """Its samples are copies of the earlier series' timestamp fields between 8-byte literal
    values: 8 bytes, a tag and a 2-3 byte copy a sample (Google's snappy: about 12.8)."""
    rng = random.Random(1)
    values = array("d", [rng.random() * 1e9 for _ in range(200)])
    stamps = array("q", [START + 15_000 * j for j in range(100)] * 2)
    text, lengths = _pyproto.encode_labels(["__name__"] * 2, ["a", "b"], [1, 1])
    both = _pyproto.encode_request(text, lengths, [100, 100], values, stamps, None, b"", True)
    first = _pyproto.encode_request(text[: lengths[0]], lengths[:1], [100], values[:100], stamps[:100], None, b"", True)
    assert len(both) - len(first) <= 100 * (8 + 1 + 3) + 16


def test_label_text_pickles_as_plain_bytes():
    """A SeriesSet (which keeps its label text) pickles; the kept fields do not travel."""
    text, _ = _pyproto.encode_labels(["__name__", "job"], ["up", "node"], [2])
    again = pickle.loads(pickle.dumps(text))
    assert again == text and type(again) is bytes
