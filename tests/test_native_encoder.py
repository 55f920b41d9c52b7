"""The C kernels (promwrite._native) against their reference, promwrite._pyproto.

For any input, both give identical bytes, or raise the same exception with
the same message. Each native call is run three ways (no scratch, a tiny
misaligned scratch, the grown per-thread scratch) so that every placement of
the C temporaries and results is exercised.

Label kernels: `_native.encode_labels` (names and values as two "\\0"-joined
texts) and its private fallback `_native._encode_interleaved` (code-point
lengths, taken when a string holds "\\0") are both held to
`_pyproto.encode_labels`.
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

from promwrite import _pyproto, names as name_rules
from promwrite.errors import SeriesError
from promwrite.model import STALE_NAN, LabelSet, Sample, TimeSeries, WriteRequest

from .conftest import examples

REQUIRE_NATIVE = os.environ.get("PROMWRITE_REQUIRE_NATIVE") == "1"
try:
    from promwrite import _native
except ImportError as exc:  # pragma: no cover - depends on the build
    if REQUIRE_NATIVE:
        raise
    pytest.skip(f"the C accelerator is not available ({exc})", allow_module_level=True)

from promwrite._cext import ffi  # noqa: E402

from .snappy_check import assert_decompresses_to  # noqa: E402

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
SETTINGS = settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])


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


def _same_as(reference: Callable[..., Any], native: Callable[..., Any], *args: Any) -> Tuple[Any, ...]:
    """`reference`'s outcome, asserted equal to `native`'s under every kind of scratch."""
    expected = _outcome(reference, *args)
    for kind in ("none", "tiny", "grown", "grown"):
        with _scratch(kind):
            got = _outcome(native, *args)
        assert got == expected, (kind, got, expected)
    return expected


def _same(name: str, *args: Any) -> Tuple[Any, ...]:
    """Python's outcome of kernel `name`, asserted equal to the native one's.

    A compressed request (encode_request with `compress` true) is compared as
    what it decompresses to: the backends' snappy bytes may differ."""
    if name == "encode_request" and args[-1] is True:
        return _same_as(_plain(_pyproto.encode_request), _plain(_native.encode_request), *args)
    return _same_as(getattr(_pyproto, name), getattr(_native, name), *args)


def _plain(kernel: Callable[..., bytes]) -> Callable[..., bytes]:
    """`kernel`, its snappy output checked readable by every decompressor and returned decompressed."""

    def run(*args: Any) -> bytes:
        payload = kernel(*args)
        raw = _pyproto.KERNELS.decompress(payload, 1 << 30)
        assert_decompresses_to(payload, raw)
        return raw

    return run


@contextmanager
def name_validation(scheme: str) -> Iterator[None]:
    """Runs the block under promwrite.names' `scheme`, then restores the one before."""
    saved = name_rules.name_validation()
    name_rules.set_name_validation(scheme)
    try:
        yield
    finally:
        name_rules.set_name_validation(saved)


def _same_labels_in(scheme: str, label_names: List[Any], values: List[Any], counts: Any) -> Tuple[Any, ...]:
    """encode_labels' outcome under name rules `scheme`, the same from Python, native, and native's fallback."""
    with name_validation(scheme):
        expected = _same("encode_labels", label_names, values, counts)
        assert _same_as(_pyproto.encode_labels, _native._encode_interleaved, label_names, values, counts) == expected
    return expected


def _same_labels(label_names: List[Any], values: List[Any], counts: Any) -> Tuple[Any, ...]:
    """The legacy rules' outcome, held identical across backends; also under the UTF-8 rules (once,
    as test_utf8_* try every path), which take what the legacy rules take, with the same bytes.
    """
    legacy = _same_labels_in("legacy", label_names, values, counts)
    with name_validation("utf-8"):
        utf8 = _outcome(_pyproto.encode_labels, label_names, values, counts)
        assert _outcome(_native.encode_labels, label_names, values, counts) == utf8
    if legacy[0] == "ok":
        assert utf8 == legacy
    return legacy


def _bits(value: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", value))[0]


def _flat(sets: List[List[Tuple[Any, Any]]]) -> Tuple[List[Any], List[Any], List[int]]:
    """encode_labels' arguments for label sets given as (name, value) pairs."""
    names = [name for pairs in sets for name, _ in pairs]
    values = [value for pairs in sets for _, value in pairs]
    return names, values, [len(p) for p in sets]


def _cut(text: bytes, lengths: Any) -> List[bytes]:
    """encode_labels' (text, lengths) cut back into per-set label fields."""
    out, pos = [], 0
    for n in lengths:
        out.append(text[pos : pos + n])
        pos += n
    assert pos == len(text), (pos, len(text))
    return out


def _fields(sets: List[List[Tuple[str, str]]]) -> List[bytes]:
    """The encoded label fields of valid sets, one bytes per set (Python kernel)."""
    return _cut(*_pyproto.encode_labels(*_flat(sets)))


def _labels_result(per_set: List[bytes]) -> Tuple[bytes, Any]:
    """encode_labels' return value for the given per-set label fields."""
    return b"".join(per_set), array("q", map(len, per_set))


def _joined(fields: List[Any], as_array: bool = False) -> Tuple[bytes, Any]:
    """encode_request's (label_text, label_lengths) for per-series label fields."""
    lengths = [len(f) for f in fields]
    return b"".join(fields), array("q", lengths) if as_array else lengths


@contextmanager
def _spy_interleaved() -> Iterator[List[int]]:
    """Counts the calls encode_labels makes to its interleaved fallback."""
    calls: List[int] = []
    real = _native._encode_interleaved

    def spy(*args: Any) -> Any:
        calls.append(1)
        return real(*args)

    _native._encode_interleaved = spy  # type: ignore[assignment]
    try:
        yield calls
    finally:
        _native._encode_interleaved = real  # type: ignore[assignment]


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
            labels.append(_fields([draw(valid_set(max_labels=4))])[0])
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
    extras: Any = [draw(field_bytes) if draw(st.integers(0, 3)) == 0 else b"" for _ in range(n)]
    if not any(extras) and draw(st.booleans()):
        extras = None  # no series has extras
    metadata = draw(st.one_of(st.just(b""), st.binary(max_size=50)))
    label_text, label_lengths = _joined(labels, as_array=draw(st.booleans()))
    return label_text, label_lengths, counts, array("d", values), array("q", stamps), extras, metadata


# -------------------------------------------------------------- label sets


@SETTINGS
@given(st.lists(valid_set(), max_size=6))
def test_valid_label_sets_identical(sets: List[List[Tuple[str, str]]]) -> None:
    outcome = _same_labels(*_flat(sets))
    assert outcome[0] == "ok", outcome
    text, lengths = outcome[1]
    assert isinstance(text, bytes) and isinstance(lengths, array) and lengths.typecode == "q"  # (Python's: a LabelText)
    assert len(lengths) == len(sets)
    # each set's length cuts out exactly what that set encodes to on its own
    assert _cut(text, lengths) == [_pyproto.encode_labels(*_flat([pairs]))[0] for pairs in sets]


@SETTINGS
@given(st.lists(any_set(), max_size=5))
def test_any_label_sets_same_bytes_or_error(sets: List[List[Tuple[Any, Any]]]) -> None:
    _same_labels(*_flat(sets))


@SETTINGS
@given(st.lists(st.one_of(valid_set(), any_set()), max_size=5))
def test_label_columns_same_as_interleaved(sets: List[List[Tuple[Any, Any]]]) -> None:
    """The columns path and the interleaved fallback agree with each other and with Python."""
    names, values, counts = _flat(sets)
    columns = _same("encode_labels", names, values, counts)
    with _scratch("grown"):
        assert _outcome(_native._encode_interleaved, names, values, counts) == columns


def test_nul_strings_take_the_interleaved_path() -> None:
    """A "\\0" in a name or value makes encode_labels hand over to _encode_interleaved."""
    plain = [[("__name__", "up"), ("job", "a")]]
    for sets in [
        [[("__name__", "a\0b")], [("__name__", "up")]],  # invalid metric name: an error worded by Python
        [[("__name__", "up"), ("job", "a\0b")], [("__name__", "up")]],
        [[("__name__", "up"), ("job", "\0")]],
        [[("__name__", "up"), ("j\0b", "x")]],  # invalid name
        [[("__name__", "up"), ("job", "\0" * 200 + "\u00e9\U0001f600")]] * 3,
    ]:
        with _spy_interleaved() as calls:
            _same("encode_labels", *_flat(sets))
        assert calls, sets
    with _spy_interleaved() as calls:
        assert _same("encode_labels", *_flat(plain))[0] == "ok"
    assert not calls  # no "\0": the columns path alone
    outcome = _same_labels(*_flat([[("__name__", "up"), ("job", "a\0b")]]))
    assert outcome == ("ok", _labels_result([b"\x0a\x0e\x0a\x08__name__\x12\x02up\x0a\x0a\x0a\x03job\x12\x03a\x00b"]))


def test_label_columns_odd() -> None:
    assert _same_labels([], [], []) == ("ok", _labels_result([]))
    _same_labels(*_flat([[("__name__", "a\0b")], [("__name__", "up")]]))
    for args in [(["__name__"], [], [1]), (["__name__", "job"], ["up"], [2]), ([], ["up"], [1])]:
        for fn in (_pyproto.encode_labels, _native.encode_labels):
            with pytest.raises(ValueError):
                fn(*args)


def test_label_columns_length_mismatch_same_message() -> None:
    _same("encode_labels", ["__name__"], [], [1])


@settings(max_examples=examples(60), deadline=None)
@given(valid_set(max_labels=60), st.randoms(use_true_random=False))
def test_many_labels_sorted_like_python(pairs: List[Tuple[str, str]], rnd: Any) -> None:
    rnd.shuffle(pairs)  # big sets take the merge sort
    extra = [("__name__", "m")] + [(f"l{i:03d}", "v") for i in rnd.sample(range(300), 40)]
    outcome = _same_labels(*_flat([pairs, extra, pairs[::-1]]))
    assert outcome[0] == "ok"


def test_label_set_errors_word_for_word() -> None:
    cases = [
        [("job", "a")],  # no __name__
        [("__name__", "up"), ("", "x")],
        [("__name__", "up"), ("a-b", "x")],
        [("__name__", "up"), ("job", "")],
        [("__name__", "up"), ("job", "a"), ("job", "b")],
        [("__name__", "up"), ("job", "ab"), ("job", "ab")],  # a label seen valid, twice
        [("job", "ab"), ("job", "ab")],
        [("__name__", "1up")],
        [("__name__", "up"), ("\u00e9", "x")],
        [("__name__", "up"), ("job", "\ud800")],
        [("__name__", "up"), ("job", None)],
        [("__name__", "up"), (b"job", "a")],
        [],
    ]
    # with a "\0" in the good sets (interleaved fallback) and without (columns path)
    for good in ([("__name__", "up"), ("job", "a\0b")], [("__name__", "up"), ("job", "ab")]):
        for bad in cases:
            outcome = _same_labels(*_flat([good, good, bad, good]))
            assert outcome[0] == "SeriesError" and outcome[1] == 2, (good, bad, outcome)


utf8_name = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)


@st.composite
def utf8_set(draw: st.DrawFn) -> List[Tuple[str, str]]:
    """A label set valid under the UTF-8 name rules (dots, spaces, "\\0", any script), often not legacy."""
    pairs = dict(draw(st.lists(st.tuples(utf8_name, label_value), max_size=8)))
    pairs.pop("__name__", None)
    pairs["__name__"] = draw(st.one_of(utf8_name, metric_name))
    return list(pairs.items())


@SETTINGS
@given(st.lists(utf8_set(), max_size=5))
def test_utf8_names_identical_in_utf8_mode(sets: List[List[Tuple[str, str]]]) -> None:
    """Both backends take any non-empty UTF-8 name in "utf-8" mode, byte for byte alike."""
    outcome = _same_labels_in("utf-8", *_flat(sets))
    assert outcome[0] == "ok", outcome
    _same_labels(*_flat(sets))  # and legacy mode refuses the same set with the same words


def test_utf8_mode_known_bytes_and_errors() -> None:
    sets = [[("__name__", "my.metric"), ("label.name", "v"), ("Zürich", "ü")]]
    legacy = _same_labels(*_flat(sets))
    assert legacy[:3] == ("SeriesError", 0, "label name 'Zürich' is invalid (names match [a-zA-Z_][a-zA-Z0-9_]*;"
                          " promwrite.set_name_validation('utf-8') allows any UTF-8 name)")
    expected = (b"\x0a\x0d\x0a\x07Z\xc3\xbcrich\x12\x02\xc3\xbc" b"\x0a\x15\x0a\x08__name__\x12\x09my.metric"
                b"\x0a\x0f\x0a\x0alabel.name\x12\x01v")
    assert _same_labels_in("utf-8", *_flat(sets)) == ("ok", _labels_result([expected]))
    for bad, problem in [
        ([("__name__", "a.b"), ("", "x")], "a label has an empty name"),
        ([("__name__", "")], "label '__name__' has an empty value"),
        ([("__name__", "a.b"), ("x.y", "")], "label 'x.y' has an empty value"),
        ([("x.y", "1")], "no __name__ label"),
        ([("__name__", "a.b"), ("x.y", "1"), ("x.y", "2")], "duplicate label name 'x.y'"),
        ([("__name__", "a.b"), ("x\ud800", "1")], "not valid Unicode"),
    ]:
        outcome = _same_labels_in("utf-8", *_flat([sets[0], bad]))
        assert outcome[:2] == ("SeriesError", 1) and problem in outcome[2], (bad, outcome)


def test_name_validation_setting() -> None:
    assert name_rules.name_validation() == "legacy"  # the default
    with pytest.raises(ValueError, match="'legacy' or 'utf-8'"):
        name_rules.set_name_validation("UTF8")
    assert name_rules.name_validation() == "legacy"


def test_varint_boundaries() -> None:
    """Label, name and value lengths on each side of the 1/2/3-byte varint steps."""
    sizes = [1, 60, 119, 120, 121, 122, 123, 124, 125, 126, 127, 128, 129, 16370, 16376, 16377, 16378, 16383, 16384]
    sets = [[("__name__", "m"), ("n" * a, "v" * b)] for a in sizes[:13] for b in sizes]
    sets += [[("__name__", "m"), ("ab", "\u00e9" * b)] for b in sizes]
    sets += [[("__name__", "m"), ("n" * a, "v")] for a in sizes]
    assert _same_labels(*_flat(sets))[0] == "ok"
    nul = [[("__name__", "m"), ("ab", "\0" + "v" * (b - 1))] for b in sizes]  # the same through the fallback
    assert _same("encode_labels", *_flat(nul)) == _same_as(_pyproto.encode_labels, _native._encode_interleaved, *_flat(nul))


def test_label_sets_odd_arguments() -> None:
    names, values, counts = _flat([[("__name__", "up")], [("__name__", "b"), ("x", "y")]])
    for args in [
        (names, values, [1]),  # counts not adding up to the labels
        (names, values, [1, 2, 1]),
        (names, values, [3, -1]),
        (names, values, [1, 1 << 70]),
        (names, values, (1, 2)),
        (names, values, array("q", counts)),
        (names, values, [1, 2, 0]),  # an empty last set
        (tuple(names), tuple(values), counts),
        ([], [], []),
        ([], [], [0]),
        (names, values, [1, "2"]),
        (names, values, [1.0, 2]),
    ]:
        _same_labels(*args)


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


@settings(max_examples=examples(150), deadline=None)
@given(request_args(), st.booleans())
def test_extras_none_same_as_empty(args: Tuple[Any, ...], compress: bool) -> None:
    """extras=None and extras=[b""] * n give the same bytes, on both backends."""
    label_text, label_lengths, counts, values, stamps, _, metadata = args
    n = len(label_lengths)
    with_none = _same("encode_request", label_text, label_lengths, counts, values, stamps, None, metadata, compress)
    with_empty = _same("encode_request", label_text, label_lengths, counts, values, stamps, [b""] * n, metadata, compress)
    assert with_none[0] == "ok" and with_none == with_empty


def test_extras_none_same_as_empty_fixed() -> None:
    sets = [[("__name__", "up"), ("job", "a")], [("__name__", "b")]]
    for n_series in (0, 1, 2):
        outcome = _same_labels(*_flat(sets[:n_series]))
        assert outcome[0] == "ok", outcome
        text, lengths = outcome[1]  # encode_labels' pair, fed as it is
        counts = [2, 1][:n_series]
        v, t = array("d", [1.5, -0.0, 3.0]), array("q", [0, 7, -5])
        for label_lengths in (lengths, list(lengths)):
            for compress in (False, True):
                for meta in (b"", b"\x1a\x02\x08\x01"):
                    args = (text, label_lengths, counts, v, t)
                    none = _same("encode_request", *args, None, meta, compress)
                    empty = _same("encode_request", *args, [b""] * n_series, meta, compress)
                    assert none[0] == "ok" and none == empty, (n_series, compress)


def test_label_lengths_not_covering_label_text() -> None:
    """ValueError on both backends (native leaves the wording to Python)."""
    text = b"".join(_fields([[("__name__", "up")], [("__name__", "b")]]))  # two 14-byte fields
    v, t = array("d", [1.0, 2.0]), array("q", [1, 2])
    cases = [
        (text, [14, 13]),  # short
        (text, [14, 15]),  # long
        (text, array("q", [14, 13])),
        (text, array("q", [14, 15])),
        (text, [28, 1]),
        (text, [14, 1 << 70]),
        (text, [-1, 14]),
        (b"", [1, 0]),
        (text, [0, 0]),
    ]
    for label_text, label_lengths in cases:
        for extras in (None, [b"", b""]):
            for compress in (False, True):
                args = (label_text, label_lengths, [1, 1], v, t, extras, b"", compress)
                outcome = _same("encode_request", *args)
                assert outcome[0] == "ValueError", (label_lengths, outcome)
                for fn in (_pyproto.encode_request, _native.encode_request):
                    with pytest.raises(ValueError):
                        fn(*args)
    # one length per series: fewer or more lengths than counts
    for label_lengths in ([28], [14, 14, 0]):
        for fn in (_pyproto.encode_request, _native.encode_request):
            with pytest.raises(ValueError):
                fn(text, label_lengths, [1, 1], v, t, None, b"", False)
        _same("encode_request", text, label_lengths, [1, 1], v, t, None, b"", False)


def test_timestamp_errors_word_for_word() -> None:
    text, lengths = _joined([b"\x0a\x00", b"", b"x"])
    cases = [([2, 2, 1], [1, 2, 3, 3, 5], 1), ([2, 1, 2], [1, 2, 9, 4, 4], 2), ([2, 2, 1], [5, 4, 1, 2, 3], 0)]
    for counts, stamps, series in cases:
        for extras in ([b""] * 3, None):
            outcome = _same(
                "encode_request", text, lengths, counts, array("d", [1.0] * 5), array("q", stamps), extras, b"", False
            )
            assert outcome[0] == "SeriesError" and outcome[1] == series, outcome
    # the first sample of a series may go back in time
    for extras in ([b""] * 3, None):
        outcome = _same(
            "encode_request", text, lengths, [2, 2, 1], array("d", [0.0] * 5), array("q", [5, 6, 1, 2, 0]), extras, b"", True
        )
        assert outcome[0] == "ok"


def test_request_odd_arguments() -> None:
    text, lengths = _joined([b"\x0a\x02ab", b""])
    extras = [b"", b"\x1a\x00"]
    v, t = array("d", [1.5, 2.5, 3.5]), array("q", [1, 2, 3])
    seven = memoryview(array("q", [7])).cast("B")
    for args in [
        (text, lengths, [1, 5], v, t, extras, b""),  # more samples than values
        (text, lengths, [1, 5], v, t, None, b""),
        (text, lengths, [1, -1], v, t, extras, b""),
        (text, lengths, [1], v, t, extras, b""),
        (text, lengths, [1], v, t, None, b""),
        (text, lengths, [1, 2], v, t, extras[:1], b""),
        (text, lengths, [1, 2], v, t, extras + [b""], b""),
        (text, lengths, [1, 2], [1.5, 2, 3.5], [1, 2, 3], extras, b"m"),  # lists, an int value
        (text, lengths, [1, 2], v, [1, 2, 1 << 64], extras, b""),
        (text, lengths, [1, 2], v, array("q", [1, 2]), extras, b""),
        (text, lengths, [1, 2], array("f", [1.5, 2.5, 3.5]), t, extras, b""),
        (text, lengths, (1, 2), v, t, extras, bytearray(b"meta")),
        (text, tuple(lengths), [1, 2], v, t, extras, b""),
        (text, array("q", lengths), [1, 2], v, t, None, memoryview(b"meta")),
        (b"\x0a\x00\x0a\x01x", [2, 3], [1, 2], v, t, extras, b""),  # fields of several series
        (b"\x0a\x00\x0a\x01x", array("q", [5, 0]), [1, 2], v, t, None, b""),
        (bytes(seven), [8], [1], v, t, [b""], b""),
        (text, [4, -0], [1, 2], v, t, extras, b""),
        (text, [5, -1], [1, 2], v, t, extras, b""),  # a negative length, yet covering the text
        (text, array("q", [5, -1]), [1, 2], v, t, None, b""),
        (text, [4, "0"], [1, 2], v, t, extras, b""),
        (text, [4.0, 0], [1, 2], v, t, extras, b""),
        (text, lengths, [1, 2], v, t, [b"", "text"], b""),
        (text, lengths, [1, 2], v, t, [b"", bytearray(b"\x1a\x00")], b""),
        (text, lengths, [1, 300], v, t, extras, b""),
        (b"", [], [], array("d"), array("q"), [], b""),
        (b"", [], [], array("d"), array("q"), None, b""),
        (b"", [], [], array("d"), array("q"), [], b"\x1a\x00"),
        (b"", array("q"), [], array("d"), array("q"), None, b"\x1a\x00"),
        (b"", [0, 0], [0, 0], array("d"), array("q"), None, b""),
    ]:
        for compress in (False, True):
            _same("encode_request", *args, compress)


@pytest.mark.parametrize(
    "label_text",
    [bytearray(b"\x0a\x00\x0a\x01x"), memoryview(b"\x0a\x00\x0a\x01x"), memoryview(b"..\x0a\x00\x0a\x01x")[2:]],
    ids=["bytearray", "memoryview", "memoryview-slice"],
)
def test_request_buffer_label_text(label_text: Any) -> None:
    v, t = array("d", [1.5, 2.5, 3.5]), array("q", [1, 2, 3])
    outcome = _same("encode_request", label_text, [2, 3], [1, 2], v, t, None, b"", False)
    assert outcome[0] == "ok"


def test_long_series_and_fields() -> None:
    n = 300  # samples per series: counts over 255 take the int64 path
    labels = [b"\x0a" * 20000, b"\x0a\x03abc"]
    counts = [n, 2]
    stamps = array("q", list(range(-n // 2, n - n // 2)) + [INT64_MIN, INT64_MAX])
    values = array("d", [float(i) for i in range(n)] + [STALE_NAN, -0.0])
    for extras in ([b"", b"\x1a" * 17000], None):
        for as_array in (False, True):
            text, lengths = _joined(labels, as_array)
            for compress in (False, True):
                outcome = _same("encode_request", text, lengths, counts, values, stamps, extras, b"\x1a\x02\x08\x01", compress)
                assert outcome[0] == "ok"


def test_special_sample_encodings() -> None:
    """Spot checks against hand-encoded samples (zero bits and zero timestamps are left out)."""
    cases = [
        (0.0, 0, b"\x12\x00"),
        (-0.0, 0, b"\x12\x09\x09" + struct.pack("<d", -0.0)),
        (0.0, -1, b"\x12\x0b\x10" + b"\xff" * 9 + b"\x01"),
        (1.0, 1, b"\x12\x0b\x09" + struct.pack("<d", 1.0) + b"\x10\x01"),
    ]
    for extras in ([b""], None):
        for value, ts, sample in cases:
            got = _native.encode_request(b"", [0], [1], array("d", [value]), array("q", [ts]), extras, b"", False)
            assert got == b"\x0a" + bytes([len(sample)]) + sample
        stale = _native.encode_request(b"", [0], [1], array("d", [STALE_NAN]), array("q", [0]), extras, b"", False)
        assert stale[-8:] == struct.pack("<Q", 0x7FF0000000000002) and _bits(STALE_NAN) == 0x7FF0000000000002


# ------------------------------------------------------ the codec, threads


@settings(max_examples=examples(80), deadline=None)
@given(st.lists(st.tuples(valid_set(max_labels=5), st.booleans(), st.integers(0, 3)), max_size=8), st.booleans())
def test_encode_with_identical(rows: List[Tuple[List[Tuple[str, str]], bool, int]], compress: bool) -> None:
    from promwrite.codec import encode_with

    def request() -> WriteRequest:
        series = []
        for pairs, cached, n in rows:
            labels = LabelSet(pairs) if cached else dict(pairs)
            series.append(TimeSeries(labels, [Sample(i * 0.5, timestamp_ms=1000 + i) for i in range(n)]))
        return WriteRequest(series)

    expected = encode_with(_pyproto.KERNELS, request(), compress=False)
    if compress:
        assert_decompresses_to(encode_with(_pyproto.KERNELS, request(), compress=True), expected)
    req = request()
    for _ in range(2):  # the second time with the LabelSet caches filled
        got = encode_with(_native.KERNELS, req, compress)
        assert (_pyproto.KERNELS.decompress(got, 1 << 30) if compress else got) == expected


def _same_payload(a: bytes, b: bytes) -> bool:
    """Equal requests, compressed or not (snappy bytes compared decompressed)."""
    if a == b:
        return True
    try:
        return _pyproto.KERNELS.decompress(a, 1 << 30) == _pyproto.KERNELS.decompress(b, 1 << 30)
    except ValueError:
        return False


def test_threads_share_nothing() -> None:
    """Concurrent calls (cffi releases the GIL in C) each use their own scratch."""
    jobs = []
    for t in range(8):
        nul = "\0" if t % 3 == 0 else ""  # some threads take the interleaved fallback
        sets = [[("__name__", f"m{t}"), ("i", nul + str(i) * (1 + i % 50 + t * 30))] for i in range(200 + 50 * t)]
        label_args = _flat(sets)
        fields = _pyproto.encode_labels(*label_args)  # (text, lengths)
        text, lengths = fields
        n = len(lengths)
        label_lengths = lengths if t & 2 else list(lengths)  # the pair as it is, or lengths as a list
        extras = None if t & 4 else [b""] * n
        args = (text, label_lengths, [1] * n, array("d", [t + 0.5] * n), array("q", range(n)), extras, b"", bool(t & 1))
        jobs.append((label_args, fields, args, _pyproto.encode_request(*args)))
    failures: List[str] = []

    def run(job: Tuple[Any, ...]) -> None:
        label_args, fields, args, expected = job
        for _ in range(30):
            if _native.encode_labels(*label_args) != fields or not _same_payload(_native.encode_request(*args), expected):
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
    assert _native.KERNELS.encode_labels is _native.encode_labels
    assert _native.KERNELS.encode_request is _native.encode_request
    assert _native.KERNELS.compress is _native.compress
    assert _native.KERNELS.decompress is _native.decompress
    assert _pyproto.KERNELS.name == "python"
    assert _pyproto.KERNELS.encode_labels is _pyproto.encode_labels
    assert _pyproto.KERNELS.encode_request is _pyproto.encode_request
    for gone in ("encode_label_sets", "encode_label_columns"):  # the old seam
        assert not hasattr(_native.KERNELS, gone) and not hasattr(_pyproto.KERNELS, gone)
    assert not hasattr(_native, "encode_label_columns") and not hasattr(_native, "encode_label_sets")
