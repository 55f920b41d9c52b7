"""The C kernels (promwrite._native) against their reference, promwrite._pyproto.

For any input, both give identical bytes, or raise the same exception with
the same message. Each native call is run three ways (no scratch, a tiny
misaligned scratch, the grown per-thread scratch) so that every placement of
the C temporaries and results is exercised.
"""

from __future__ import annotations

import math
import os
import struct
import threading
from array import array
from contextlib import contextmanager
from typing import Any, Callable, Iterator, List, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promwrite import _pyproto
from promwrite.errors import SeriesError
from promwrite.model import STALE_NAN, LabelSet, Sample, TimeSeries, WriteRequest

REQUIRE_NATIVE = os.environ.get("PROMWRITE_REQUIRE_NATIVE") == "1"
try:
    from promwrite import _native
except ImportError as exc:  # pragma: no cover - depends on the build
    if REQUIRE_NATIVE:
        raise
    pytest.skip(f"the C accelerator is not available ({exc})", allow_module_level=True)

from promwrite._cext import ffi  # noqa: E402

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ------------------------------------------------------------------ helpers


@contextmanager
def _scratch(kind: str) -> Iterator[None]:
    """Runs native calls with no scratch, a tiny misaligned one, or the normal growing one."""
    saved_max = _native._SCRATCH_MAX
    saved = getattr(_native._local, "scratch", _native._NO_SCRATCH)
    if kind == "none":
        _native._SCRATCH_MAX = 0
        _native._local.scratch = _native._NO_SCRATCH
    elif kind == "tiny":
        _native._SCRATCH_MAX = 0  # never replaced by a bigger one
        tiny = memoryview(bytearray(100))[3:]  # misaligned on purpose
        _native._local.scratch = (ffi.from_buffer("uint8_t[]", tiny), len(tiny))
    try:
        yield
    finally:
        _native._SCRATCH_MAX = saved_max
        if kind != "grown":
            _native._local.scratch = saved


def _outcome(fn: Callable[..., Any], *args: Any) -> Tuple[Any, ...]:
    try:
        return ("ok", fn(*args))
    except SeriesError as exc:
        return ("SeriesError", exc.index, exc.problem, str(exc))
    except Exception as exc:  # the same type and message from both
        return (type(exc).__name__, str(exc))


def _same(name: str, *args: Any) -> Tuple[Any, ...]:
    """Python's outcome of kernel `name`, asserted equal to the native one's."""
    expected = _outcome(getattr(_pyproto, name), *args)
    for kind in ("none", "tiny", "grown", "grown"):
        with _scratch(kind):
            got = _outcome(getattr(_native, name), *args)
        assert got == expected, (kind, got, expected)
    return expected


def _bits(value: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", value))[0]


def _flat(sets: List[List[Tuple[str, str]]]) -> Tuple[List[Any], List[int]]:
    strings: List[Any] = []
    for pairs in sets:
        for pair in pairs:
            strings += pair
    return strings, [len(p) for p in sets]


# --------------------------------------------------------------- strategies

label_name = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,12}", fullmatch=True)
metric_name = st.from_regex(r"[a-zA-Z_:][a-zA-Z0-9_:]{0,12}", fullmatch=True)
# long strings: 1-, 2-, 3- and 4-byte characters, so lengths need 2- and 3-byte varints
long_text = st.builds(
    lambda ch, n: ch * n,
    st.sampled_from(["a", "\u00e9", "\u20ac", "\U0001f600"]),
    st.one_of(st.integers(30, 140), st.integers(4090, 4200), st.integers(16380, 16400)),
)
astral = st.text(st.characters(min_codepoint=0x10000, max_codepoint=0x10FFFF), min_size=1, max_size=8)
label_value = st.one_of(
    st.text(min_size=1, max_size=20),
    astral,
    long_text,
    st.sampled_from(["a\0b", "\0", "x" * 127, "x" * 128, "y" * 16383, "y" * 16384]),
)


@st.composite
def valid_set(draw: st.DrawFn, max_labels: int = 12) -> List[Tuple[str, str]]:
    names = draw(st.lists(label_name.filter(lambda n: n != "__name__"), max_size=max_labels, unique=True))
    if draw(st.integers(0, 9)) == 0:
        names.append("n" * draw(st.sampled_from([127, 128, 16384])))
    pairs = [(n, draw(label_value)) for n in names if n not in ("__name__",)]
    pairs = list(dict(pairs).items())
    pairs.insert(draw(st.integers(0, len(pairs))), ("__name__", draw(metric_name)))
    return pairs


odd_string = st.one_of(
    st.sampled_from(["", "0a", "a-b", "\u00e9", "a b", "__name__", "a\0b", "\ud800", ":x", "x:y"]),
    label_name,
    metric_name,
    st.text(max_size=6),
)


@st.composite
def any_set(draw: st.DrawFn) -> List[Tuple[Any, Any]]:
    if draw(st.booleans()):
        pairs: List[Tuple[Any, Any]] = draw(valid_set())
    else:
        pairs = draw(st.lists(st.tuples(odd_string, odd_string), max_size=6))
    if pairs and draw(st.integers(0, 5)) == 0:  # break one label
        i = draw(st.integers(0, len(pairs) - 1))
        bad = draw(st.one_of(odd_string, st.sampled_from([None, 3, b"up", 1.5])))
        pairs[i] = (bad, pairs[i][1]) if draw(st.booleans()) else (pairs[i][0], bad)
    if pairs and draw(st.integers(0, 5)) == 0:  # duplicate a name
        pairs.append((pairs[0][0], "dup"))
    return pairs


special_values = st.sampled_from(
    [0.0, -0.0, math.nan, -math.nan, math.inf, -math.inf, STALE_NAN, 5e-324, 1.7976931348623157e308, 1.0]
)
sample_value = st.one_of(
    special_values,
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(0, (1 << 64) - 1).map(lambda b: struct.unpack("<d", struct.pack("<Q", b))[0]),
)
timestamp = st.one_of(
    st.sampled_from([0, 1, -1, INT64_MIN, INT64_MAX, 127, 128, 1 << 62, -(1 << 62), 1_700_000_000_000]),
    st.integers(INT64_MIN, INT64_MAX),
    st.integers(-1000, 1000),
)
field_bytes = st.one_of(
    st.just(b""),
    st.binary(max_size=40),
    st.builds(lambda n: b"\x0a" * n, st.sampled_from([127, 128, 16383, 16384])),
)


@st.composite
def request_args(draw: st.DrawFn, ordered: bool = True) -> Tuple[Any, ...]:
    n = draw(st.integers(0, 8))
    labels = []
    for _ in range(n):
        if draw(st.booleans()):
            labels.append(_pyproto.encode_label_sets(*_flat([draw(valid_set(max_labels=4))]))[0])
        else:
            labels.append(draw(field_bytes))
    counts = [draw(st.sampled_from([0, 1, 1, 2, 3, 5, 20])) for _ in range(n)]
    stamps: List[int] = []
    for c in counts:
        if ordered:
            stamps += sorted(draw(st.lists(timestamp, min_size=c, max_size=c, unique=True)))
        else:
            stamps += draw(st.lists(timestamp, min_size=c, max_size=c))
    values = [draw(sample_value) for _ in stamps]
    extras = [draw(field_bytes) if draw(st.integers(0, 3)) == 0 else b"" for _ in range(n)]
    metadata = draw(st.one_of(st.just(b""), st.binary(max_size=50)))
    return labels, counts, array("d", values), array("q", stamps), extras, metadata


# -------------------------------------------------------------- label sets


@SETTINGS
@given(st.lists(valid_set(), max_size=6))
def test_valid_label_sets_identical(sets: List[List[Tuple[str, str]]]) -> None:
    outcome = _same("encode_label_sets", *_flat(sets))
    assert outcome[0] == "ok", outcome
    assert len(outcome[1]) == len(sets)


@SETTINGS
@given(st.lists(any_set(), max_size=5))
def test_any_label_sets_same_bytes_or_error(sets: List[List[Tuple[Any, Any]]]) -> None:
    _same("encode_label_sets", *_flat(sets))


def _columns_outcome(sets: List[List[Tuple[Any, Any]]]) -> None:
    strings, counts = _flat(sets)
    expected = _outcome(_pyproto.encode_label_sets, strings, counts)
    for kind in ("none", "tiny", "grown"):
        with _scratch(kind):
            got = _outcome(_native.encode_label_columns, strings[0::2], strings[1::2], counts)
        assert got == expected, (kind, got, expected)


@SETTINGS
@given(st.lists(st.one_of(valid_set(), any_set()), max_size=5))
def test_label_columns_same_as_interleaved(sets: List[List[Tuple[Any, Any]]]) -> None:
    _columns_outcome(sets)


def test_label_columns_odd() -> None:
    _columns_outcome([])
    _columns_outcome([[("__name__", "a\0b")], [("__name__", "up")]])
    with pytest.raises(ValueError):
        _native.encode_label_columns(["__name__"], [], [1])


@settings(max_examples=60, deadline=None)
@given(valid_set(max_labels=60), st.randoms(use_true_random=False))
def test_many_labels_sorted_like_python(pairs: List[Tuple[str, str]], rnd: Any) -> None:
    rnd.shuffle(pairs)  # big sets take the merge sort
    extra = [("__name__", "m")] + [(f"l{i:03d}", "v") for i in rnd.sample(range(300), 40)]
    outcome = _same("encode_label_sets", *_flat([pairs, extra, pairs[::-1]]))
    assert outcome[0] == "ok"


def test_label_set_errors_word_for_word() -> None:
    cases = [
        [("job", "a")],  # no __name__
        [("__name__", "up"), ("", "x")],
        [("__name__", "up"), ("a-b", "x")],
        [("__name__", "up"), ("job", "")],
        [("__name__", "up"), ("job", "a"), ("job", "b")],
        [("__name__", "1up")],
        [("__name__", "up"), ("\u00e9", "x")],
        [("__name__", "up"), ("job", "\ud800")],
        [("__name__", "up"), ("job", None)],
        [("__name__", "up"), (b"job", "a")],
        [],
    ]
    good = [("__name__", "up"), ("job", "a\0b")]
    for bad in cases:
        outcome = _same("encode_label_sets", *_flat([good, good, bad, good]))
        assert outcome[0] == "SeriesError" and outcome[1] == 2, (bad, outcome)


def test_varint_boundaries() -> None:
    """Label, name and value lengths on each side of the 1/2/3-byte varint steps."""
    sizes = [1, 60, 119, 120, 121, 122, 123, 124, 125, 126, 127, 128, 129, 16370, 16376, 16377, 16378, 16383, 16384]
    sets = [[("__name__", "m"), ("n" * a, "v" * b)] for a in sizes[:13] for b in sizes]
    sets += [[("__name__", "m"), ("ab", "\u00e9" * b)] for b in sizes]
    sets += [[("__name__", "m"), ("n" * a, "v")] for a in sizes]
    assert _same("encode_label_sets", *_flat(sets))[0] == "ok"


def test_label_sets_odd_arguments() -> None:
    strings, counts = _flat([[("__name__", "up")], [("__name__", "b"), ("x", "y")]])
    for args in [
        (strings, [1]),  # fewer counts than sets: the rest is ignored by Python
        (strings, [1, 2, 1]),
        (strings, [3, -1]),
        (strings, [1, 1 << 70]),
        (strings, (1, 2)),
        (strings, array("q", counts)),
        (strings[:-1], counts),
        ([], []),
        ([], [0]),
        (strings, [1, "2"]),
    ]:
        _same("encode_label_sets", *args)


# ----------------------------------------------------------------- requests


@SETTINGS
@given(request_args(), st.booleans())
def test_requests_identical(args: Tuple[Any, ...], compress: bool) -> None:
    outcome = _same("encode_request", *args, compress)
    assert outcome[0] == "ok", outcome


@SETTINGS
@given(request_args(ordered=False), st.booleans())
def test_unordered_timestamps_same_error(args: Tuple[Any, ...], compress: bool) -> None:
    _same("encode_request", *args, compress)


def test_timestamp_errors_word_for_word() -> None:
    labels = [b"\x0a\x00", b"", b"x"]
    cases = [([2, 2, 1], [1, 2, 3, 3, 5], 1), ([2, 1, 2], [1, 2, 9, 4, 4], 2), ([2, 2, 1], [5, 4, 1, 2, 3], 0)]
    for counts, stamps, series in cases:
        outcome = _same(
            "encode_request", labels, counts, array("d", [1.0] * 5), array("q", stamps), [b""] * 3, b"", False
        )
        assert outcome[0] == "SeriesError" and outcome[1] == series, outcome
    # the first sample of a series may go back in time
    outcome = _same("encode_request", labels, [2, 2, 1], array("d", [0.0] * 5), array("q", [5, 6, 1, 2, 0]), [b""] * 3, b"", True)
    assert outcome[0] == "ok"


def test_request_odd_arguments() -> None:
    labels, extras = [b"\x0a\x02ab", b""], [b"", b"\x1a\x00"]
    v, t = array("d", [1.5, 2.5, 3.5]), array("q", [1, 2, 3])
    for args in [
        (labels, [1, 5], v, t, extras, b""),  # more samples than values
        (labels, [1, -1], v, t, extras, b""),
        (labels, [1], v, t, extras, b""),
        (labels, [1, 2], v, t, extras[:1], b""),
        (labels, [1, 2], [1.5, 2, 3.5], [1, 2, 3], extras, b"m"),  # lists, an int value
        (labels, [1, 2], v, [1, 2, 1 << 64], extras, b""),
        (labels, [1, 2], v, array("q", [1, 2]), extras, b""),
        (labels, [1, 2], array("f", [1.5, 2.5, 3.5]), t, extras, b""),
        (labels, (1, 2), v, t, extras, bytearray(b"meta")),
        ([bytearray(b"\x0a\x00"), memoryview(b"\x0a\x01x")], [1, 2], v, t, extras, b""),
        ([memoryview(array("q", [7]))], [1], v, t, [b""], b""),
        (labels, [1, 2], v, t, [b"", "text"], b""),
        (labels, [1, 300], v, t, extras, b""),
        ([], [], array("d"), array("q"), [], b""),
        ([], [], array("d"), array("q"), [], b"\x1a\x00"),
    ]:
        for compress in (False, True):
            _same("encode_request", *args, compress)


def test_long_series_and_fields() -> None:
    n = 300  # samples per series: counts over 255 take the int64 path
    labels = [b"\x0a" * 20000, b"\x0a\x03abc"]
    counts = [n, 2]
    stamps = array("q", list(range(-n // 2, n - n // 2)) + [INT64_MIN, INT64_MAX])
    values = array("d", [float(i) for i in range(n)] + [STALE_NAN, -0.0])
    extras = [b"", b"\x1a" * 17000]
    for compress in (False, True):
        assert _same("encode_request", labels, counts, values, stamps, extras, b"\x1a\x02\x08\x01", compress)[0] == "ok"


def test_special_sample_encodings() -> None:
    """Spot checks against hand-encoded samples (zero bits and zero timestamps are left out)."""
    cases = [
        (0.0, 0, b"\x12\x00"),
        (-0.0, 0, b"\x12\x09\x09" + struct.pack("<d", -0.0)),
        (0.0, -1, b"\x12\x0b\x10" + b"\xff" * 9 + b"\x01"),
        (1.0, 1, b"\x12\x0b\x09" + struct.pack("<d", 1.0) + b"\x10\x01"),
    ]
    for value, ts, sample in cases:
        got = _native.encode_request([b""], [1], array("d", [value]), array("q", [ts]), [b""], b"", False)
        assert got == b"\x0a" + bytes([len(sample)]) + sample
    stale = _native.encode_request([b""], [1], array("d", [STALE_NAN]), array("q", [0]), [b""], b"", False)
    assert stale[-8:] == struct.pack("<Q", 0x7FF0000000000002) and _bits(STALE_NAN) == 0x7FF0000000000002


# ------------------------------------------------------ the codec, threads


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(valid_set(max_labels=5), st.booleans(), st.integers(0, 3)), max_size=8), st.booleans())
def test_encode_with_identical(rows: List[Tuple[List[Tuple[str, str]], bool, int]], compress: bool) -> None:
    from promwrite.codec import encode_with

    def request() -> WriteRequest:
        series = []
        for pairs, cached, n in rows:
            labels = LabelSet(pairs) if cached else dict(pairs)
            series.append(TimeSeries(labels, [Sample(i * 0.5, timestamp_ms=1000 + i) for i in range(n)]))
        return WriteRequest(series)

    expected = encode_with(_pyproto.KERNELS, request(), compress)
    req = request()
    assert encode_with(_native.KERNELS, req, compress) == expected
    assert encode_with(_native.KERNELS, req, compress) == expected  # LabelSet caches filled


def test_threads_share_nothing() -> None:
    """Concurrent calls (cffi releases the GIL in C) each use their own scratch."""
    jobs = []
    for t in range(8):
        sets = [[("__name__", f"m{t}"), ("i", str(i) * (1 + i % 50 + t * 30))] for i in range(200 + 50 * t)]
        strings, counts = _flat(sets)
        fields = _pyproto.encode_label_sets(strings, counts)
        n = len(fields)
        args = (fields, [1] * n, array("d", [t + 0.5] * n), array("q", range(n)), [b""] * n, b"", bool(t & 1))
        jobs.append(((strings, counts), fields, args, _pyproto.encode_request(*args)))
    failures: List[str] = []

    def run(job: Tuple[Any, ...]) -> None:
        label_args, fields, args, expected = job
        for _ in range(30):
            if _native.encode_label_sets(*label_args) != fields or _native.encode_request(*args) != expected:
                failures.append("mismatch")
                return

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not failures


def test_kernels_object() -> None:
    assert _native.KERNELS.name == "native"
    assert _native.KERNELS.encode_label_sets is _native.encode_label_sets
    assert _native.KERNELS.encode_request is _native.encode_request
