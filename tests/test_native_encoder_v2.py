"""The C remote-write 2.0 kernels (csrc/pbenc2.c) against their Python twins, call by call."""

from __future__ import annotations

import math
import random
import struct
import threading
from array import array
from typing import List, Optional

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promwrite import _pyproto
from promwrite.errors import SeriesError

from .conftest import BACKENDS, REQUIRE_NATIVE, examples

NATIVE = next((k for k in BACKENDS if k.name == "native"), None)
pytestmark = pytest.mark.skipif(
    NATIVE is None and not REQUIRE_NATIVE, reason="the C accelerator is not built"
)
PY = _pyproto.KERNELS

NAME = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,12}", fullmatch=True)
VALUE = st.one_of(st.sampled_from(["a", "b", "prod", "x" * 200]), st.text(min_size=1, max_size=150).filter(
    lambda s: not any(0xD800 <= ord(c) <= 0xDFFF for c in s)))  # fmt: skip
INT64 = st.integers(-(1 << 63), (1 << 63) - 1)
FLOATS = st.one_of(st.floats(), st.sampled_from([0.0, -0.0, math.nan, math.inf]),
                   st.integers(0, (1 << 64) - 1).map(lambda b: struct.unpack("<d", struct.pack("<Q", b))[0]))  # fmt: skip


def label_sets(draw: st.DrawFn, max_sets: int = 6) -> List[dict]:
    out = []
    for _ in range(draw(st.integers(0, max_sets))):
        labels = draw(st.dictionaries(NAME.filter(lambda n: n != "__name__"), VALUE, max_size=6))
        labels["__name__"] = draw(st.sampled_from(["up", "m", "http_requests_total"]))
        out.append(labels)
    return out


def labels_input(sets: List[dict]):
    names = [n for s in sets for n in s]
    values = [v for s in sets for v in s.values()]
    return PY.encode_labels(names, values, [len(s) for s in sets])


def same(a, b) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert type(x) is type(y) and x == y


def outcome(fn, *args):
    try:
        return ("ok", fn(*args))
    except (ValueError, SeriesError) as exc:
        return ("error", type(exc).__name__, str(exc))


@settings(max_examples=examples(300), suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.data())
def test_symbols_identical(data: st.DataObject) -> None:
    sets = label_sets(data.draw)
    text, lengths = labels_input(sets)
    strings = [s.encode() for s in data.draw(st.lists(st.one_of(VALUE, st.just(""), NAME), max_size=8))]
    same(NATIVE.encode_symbols_v2(text, lengths, strings), PY.encode_symbols_v2(text, lengths, strings))


def test_symbols_many_refs_identical() -> None:
    """Hundreds of symbols: references of two and three varint bytes, a grown table."""
    rng = random.Random(5)
    sets = [{"__name__": "m", "id": str(i), "pod": f"pod-{rng.randrange(300)}", "x": "y" * rng.randrange(1, 300)}
            for i in range(20_000)]  # fmt: skip
    text, lengths = labels_input(sets)
    strings = [f"help {i}".encode() for i in range(500)] + [b"", b"m"]
    got = NATIVE.encode_symbols_v2(text, lengths, strings)
    same(got, PY.encode_symbols_v2(text, lengths, strings))
    assert got[3][-2:].tolist() == [0, 2]  # "" and "m" (after "__name__") were known


@settings(max_examples=examples(500), suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.data())
def test_symbols_malformed_text_same_outcome(data: st.DataObject) -> None:
    text, lengths = labels_input(label_sets(data.draw, 3))
    raw = bytearray(text)
    for _ in range(data.draw(st.integers(0, 3))):
        if raw:
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    raw = bytes(raw[:cut])
    lengths = list(lengths)
    if lengths:
        lengths[-1] -= len(text) - cut
    if data.draw(st.booleans()) and lengths:
        lengths[0] += data.draw(st.integers(-3, 3))
    strings = [b"x", b""]
    assert outcome(NATIVE.encode_symbols_v2, raw, lengths, strings) == outcome(PY.encode_symbols_v2, raw, lengths, strings)


@settings(max_examples=examples(300), suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.data())
def test_request_identical(data: st.DataObject) -> None:
    n = data.draw(st.integers(0, 6))
    symbols = data.draw(st.binary(max_size=40))
    refs = [data.draw(st.binary(max_size=20)) for _ in range(n)]
    counts = [data.draw(st.integers(0, 5)) for _ in range(n)]
    stamps: List[int] = []
    for c in counts:
        stamps += sorted(data.draw(st.sets(INT64, min_size=c, max_size=c)))
    if data.draw(st.booleans()) and len(stamps) > 1:  # sometimes out of order
        i = data.draw(st.integers(1, len(stamps) - 1))
        stamps[i] = stamps[i - 1]
    values = array("d", [data.draw(FLOATS) for _ in stamps])
    starts: Optional[array] = array("q", [data.draw(st.one_of(st.just(0), INT64)) for _ in range(n)]) if data.draw(st.booleans()) else None
    extras = [data.draw(st.binary(max_size=30)) for _ in range(n)] if data.draw(st.booleans()) else None
    compress = data.draw(st.booleans())
    args = (symbols, b"".join(refs), array("q", map(len, refs)), counts, values, array("q", stamps), starts, extras, compress)
    assert outcome(NATIVE.encode_request_v2, *args) == outcome(PY.encode_request_v2, *args)


@pytest.mark.parametrize(
    "change",
    [
        dict(refs_lengths=[1, 6]),  # past the text
        dict(counts=[1, -1]),
        dict(counts=[5, 5]),  # more samples than given
        dict(starts=array("q", [1])),  # one per series
        dict(extras=[b""]),
    ],
)
def test_request_refusals_same_outcome(change) -> None:
    base = dict(symbols=b"\x22\x00", refs_text=b"\x0a\x01\x01\x0a\x01\x02", refs_lengths=[3, 3], counts=[1, 1],
                values=array("d", [1.0, 2.0]), timestamps=array("q", [1, 2]), starts=None, extras=None, compress=False)  # fmt: skip
    base.update(change)
    args = tuple(base.values())
    assert outcome(NATIVE.encode_request_v2, *args) == outcome(PY.encode_request_v2, *args)
    assert outcome(PY.encode_request_v2, *args)[0] == "error"


def test_big_request_identical_and_threads() -> None:
    rng = random.Random(9)
    sets = [{"__name__": "node_cpu_seconds_total", "cpu": str(i % 64), "mode": f"m{i}", "host": f"h{rng.randrange(500)}"}
            for i in range(5_000)]  # fmt: skip
    text, lengths = labels_input(sets)
    symbols, refs, ref_lengths, _ = NATIVE.encode_symbols_v2(text, lengths, [])
    counts = [3] * len(sets)
    values = array("d", [rng.random() for _ in range(3 * len(sets))])
    stamps = array("q", [1_700_000_000_000 + 15_000 * (i % 3) for i in range(3 * len(sets))])
    starts = array("q", [1_699_000_000_000] * len(sets))
    args = (symbols, refs, ref_lengths, counts, values, stamps, starts, None, True)
    expected = PY.encode_request_v2(*args)
    results: List[bytes] = []

    def work() -> None:
        for _ in range(5):
            results.append(NATIVE.encode_request_v2(*args))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 20 and all(r == expected for r in results)
