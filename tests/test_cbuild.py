"""promwrite._cmodel's builders (csrc/cpython/cbuild.c) against decoder's Python build, object graph by object graph.

With model.cmodel built, decoder builds a request's series in C; the Python
build stays for the pure-Python backend. Both must give equal graphs (types,
values, float bits, LabelSet or tuple, every slot) and the C one no more
memory; the builders, callable from Python, must refuse columns they cannot
read rather than read out of bounds.
"""

from __future__ import annotations

import contextlib
import enum
import gc
import os
import struct
import subprocess
import sys
from array import array
from typing import Any, Dict, Iterator

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from promwrite import decoder
from promwrite._pydecode import Decoded
from promwrite.codec import encode_with
from promwrite.model import Label, LabelSet, Sample, TimeSeries, WriteRequest, cmodel

from .conftest import BACKENDS, REQUIRE_NATIVE, examples
from .test_codec import FLOATS, INT64, requests
from .test_codec_v2 import requests_v2

pytestmark = pytest.mark.skipif(cmodel is None and not REQUIRE_NATIVE, reason="promwrite._cmodel is not built")
SLOW = settings(max_examples=examples(300), suppress_health_check=[HealthCheck.too_slow], deadline=None)
UNSET = "<unset slot>"


def graph(obj: Any) -> Any:
    """obj as nested (type, content) tuples: floats by bits, model objects slot by slot."""
    kind = type(obj)
    if isinstance(obj, enum.Enum):
        return kind, obj.value
    if kind is float:
        return kind, struct.pack("<d", obj)
    if isinstance(obj, (list, tuple)):
        return kind, tuple(map(graph, obj))
    slots = [name for cls in kind.__mro__ for name in getattr(cls, "__slots__", ())]
    if slots:
        return kind, tuple((name, graph(getattr(obj, name, UNSET))) for name in slots)
    assert kind in (int, str, type(None)), kind
    return kind, obj


def footprint(obj: Any) -> int:
    """The bytes of the distinct objects obj holds (as graph walks them), obj included."""
    seen: Dict[int, int] = {}
    stack = [obj]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen[id(item)] = sys.getsizeof(item)
        if isinstance(item, (list, tuple)):
            stack.extend(item)
        elif not isinstance(item, enum.Enum):
            stack.extend(getattr(item, name, None) for cls in type(item).__mro__ for name in getattr(cls, "__slots__", ()))
    return sum(seen.values())


@contextlib.contextmanager
def python_build() -> Iterator[None]:
    """decoder's Python build, as the pure-Python backend (PROMWRITE_BACKEND=python) runs it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(decoder, "cmodel", None)
        yield


def assert_builds_agree(build: Any) -> Any:
    """build() in C and in Python: equal graphs, the C one in no more memory; the C result."""
    in_c = build()
    with python_build():
        in_python = build()
    assert graph(in_c) == graph(in_python)
    assert footprint(in_c) <= footprint(in_python)
    return in_c


@SLOW
@given(requests())
def test_v1_requests_build_as_in_python(req: WriteRequest) -> None:
    for kernels in BACKENDS:
        raw = encode_with(kernels, req, compress=False)
        assert assert_builds_agree(lambda: decoder.decode_with(kernels, raw)) == req


@SLOW
@given(requests_v2())
def test_v2_requests_build_as_in_python(req: WriteRequest) -> None:
    for kernels in BACKENDS:
        raw = encode_with(kernels, req, compress=False, protocol="2.0")
        assert_builds_agree(lambda: decoder.decode_with(kernels, raw, "2.0"))


STAMPS = st.one_of(INT64, st.integers(-10, 300), st.sampled_from([1_700_000_000_000, 1_700_000_015_000]))


@st.composite
def columns(draw: st.DrawFn) -> Decoded:
    """Any well-formed columns (v1 or v2 without histograms, exemplars or metadata), unsorted series included."""
    strings = draw(st.lists(st.text(max_size=4), min_size=1, max_size=6))
    ids = st.integers(0, len(strings) - 1)
    pairs = draw(st.lists(ids, max_size=12).map(lambda found: found[: len(found) // 2 * 2]))
    n_series = draw(st.integers(0, 5))
    label_counts = [draw(st.integers(0, 4)) if pairs else 0 for _ in range(n_series)]
    refs = [draw(st.integers(0, len(pairs) // 2 - 1)) for _ in range(sum(label_counts))]
    unsorted = draw(st.lists(st.integers(0, n_series - 1), max_size=3)) if n_series else []
    sample_counts = [draw(st.integers(0, 4)) for _ in range(n_series)]
    n = sum(sample_counts)
    values, stamps = draw(st.lists(FLOATS, min_size=n, max_size=n)), draw(st.lists(STAMPS, min_size=n, max_size=n))
    starts = draw(st.lists(st.sampled_from([0, 0, 5, -7]), min_size=n, max_size=n))
    return Decoded(strings, array("q", pairs), array("q", refs), array("q", label_counts), array("q", sample_counts),
                   array("d", values), array("q", stamps), array("q", starts), *(array("q") for _ in range(4)),
                   array("q", unsorted))  # fmt: skip


@settings(max_examples=examples(500), deadline=None)
@given(columns())
def test_any_columns_build_as_in_python(cols: Decoded) -> None:
    assert_builds_agree(lambda: decoder._build_v1(b"", cols))
    assert_builds_agree(lambda: decoder._build_v2(b"", cols))
    n = len(cols.series_labels)  # and series of every slot's kind of value, as 2.0's run splitting makes them
    metadata, starts = [cols.strings[i % len(cols.strings)] for i in range(n)], [i or None for i in range(n)]
    assert_builds_agree(lambda: decoder._series(decoder._label_sets(cols), decoder._samples(cols), metadata, starts))


def test_built_objects_are_tracked_by_the_gc_only_where_they_can_hold_a_cycle() -> None:
    cols = Decoded(["__name__", "up", "job", "x"], array("q", [0, 1, 2, 3]), array("q", [0, 1, 0, 1]),
                   array("q", [2, 2]), array("q", [1, 2]), array("d", [-0.0, float("nan"), 2.5]),
                   array("q", [7, 1 << 62, 1 << 62]), *(array("q") for _ in range(5)), array("q", [1]))  # fmt: skip
    first, second = decoder._build_v1(b"", cols).timeseries
    assert type(first._labels) is LabelSet and type(second._labels) is tuple  # series 1 is unsorted
    assert first._labels._pb is None and first._labels._hash is None and first.labels is first._labels.labels
    assert first._labels.labels[0] is second._labels[0] and type(first._labels.labels[0]) is Label
    assert second.samples[1] == Sample(2.5, timestamp_ms=1 << 62) and type(second.samples[1]) is Sample
    assert first.metadata is None and first.start_timestamp_ms is None and first.exemplars == first.histograms == []
    assert first.exemplars is not second.exemplars and first.histograms is not first.exemplars
    assert not any(map(gc.is_tracked, [*first._labels.labels, *first.samples, *second.samples, second._labels]))
    assert all(map(gc.is_tracked, [first, second, first._labels, first.samples, first.exemplars, first.histograms]))
    gc.collect()
    assert repr(first) == "TimeSeries(up{job='x'}, samples=[Sample(-0.0, timestamp_ms=7)])"


def good() -> Decoded:
    return Decoded(["a", "b"], array("q", [0, 1, 1, 0]), array("q", [0, 1, 1]), array("q", [2, 1]), array("q", [1, 1]),
                   array("d", [1.0, 2.0]), array("q", [1, 2]), *(array("q") for _ in range(6)))  # fmt: skip


BAD_LABEL_COLUMNS = [
    ("pairs", array("q", [0, 1, 1]), ValueError, "odd number"),
    ("pairs", array("q", [0, 2, 1, 0]), ValueError, "label pair 0 refers to strings 0 and 2, of 2"),
    ("pairs", array("q", [0, 1, -1, 0]), ValueError, "label pair 1 refers to strings -1 and 0, of 2"),
    ("label_refs", array("q", [0, 2, 1]), ValueError, "series 0 refers to label pair 2, of 2"),
    ("label_refs", array("q", [0, 1, -1]), ValueError, "series 1 refers to label pair -1, of 2"),
    ("label_refs", array("q", [0, 1]), ValueError, "series 1 has 1 labels, of 0 left"),
    ("label_refs", array("q", [0, 1, 1, 1]), ValueError, "the series' labels counts sum to 3, not the 4 there are"),
    ("series_labels", array("q", [-1, 4]), ValueError, "series 0 has -1 labels, of 3 left"),
    ("series_labels", array("q", [1 << 62, 1]), ValueError, "of 3 left"),
    ("unsorted", array("q", [2]), ValueError, "unsorted series 2 is not one of the 2 series"),
    ("unsorted", array("q", [-1]), ValueError, "unsorted series -1"),
    ("strings", ("a",), ValueError, "label pair 0 refers to strings 0 and 1, of 1"),
    ("strings", "ab", TypeError, "strings must be a list, not str"),
    ("pairs", [0, 1, 1, 0], TypeError, "pairs must be an array('q'), not list"),
    ("label_refs", array("d", [0, 1, 1]), TypeError, "label_refs must be an array('q'), not array.array"),
    ("series_labels", array("i", [2, 1]), TypeError, "series_labels must be an array('q')"),
    ("unsorted", b"\0" * 8, TypeError, "unsorted must be an array('q'), not bytes"),
]


def request_series(cols: Decoded, metadata: Any = None) -> Any:
    return cmodel.build_request_series(cols.strings, cols.pairs, cols.label_refs, cols.series_labels, cols.unsorted,
                                       cols.values, cols.stamps, cols.series_samples, metadata)  # fmt: skip


@pytest.mark.parametrize("field, column, error, words", BAD_LABEL_COLUMNS)
def test_label_sets_refuse_columns_they_cannot_read(field: str, column: Any, error: type, words: str) -> None:
    cols = good()._replace(**{field: column})
    with pytest.raises(error) as raised:
        cmodel.build_label_sets(cols.strings, cols.pairs, cols.label_refs, cols.series_labels, cols.unsorted)
    assert words in str(raised.value)
    with pytest.raises(error) as raised:
        request_series(cols)
    assert words in str(raised.value)


BAD_SAMPLE_COLUMNS = [
    ("values", array("d", [1.0]), ValueError, "1 sample values but 2 timestamps"),
    ("stamps", array("q", [1, 2, 3]), ValueError, "2 sample values but 3 timestamps"),
    ("series_samples", array("q", [2, 1]), ValueError, "series 1 has 1 samples, of 0 left"),
    ("series_samples", array("q", [1]), ValueError, "the series' samples counts sum to 1, not the 2 there are"),
    ("series_samples", array("q", [-1, 3]), ValueError, "series 0 has -1 samples, of 2 left"),
    ("values", array("q", [1, 2]), TypeError, "values must be an array('d'), not array.array"),
    ("stamps", array("d", [1.0, 2.0]), TypeError, "stamps must be an array('q')"),
    ("series_samples", None, TypeError, "series_samples must be an array('q'), not NoneType"),
]


@pytest.mark.parametrize("field, column, error, words", BAD_SAMPLE_COLUMNS)
def test_sample_lists_refuse_columns_they_cannot_read(field: str, column: Any, error: type, words: str) -> None:
    cols = good()._replace(**{field: column})
    with pytest.raises(error) as raised:
        cmodel.build_sample_lists(cols.values, cols.stamps, cols.series_samples)
    assert words in str(raised.value)
    with pytest.raises(error) as raised:
        request_series(cols)
    assert words in str(raised.value)


@pytest.mark.parametrize(
    "cols, metadata, error, words",
    [
        (good()._replace(series_samples=array("q", [2])), None, ValueError, "2 series' labels but 1 series' samples"),
        (good(), [None], ValueError, "2 series' labels but 1 series' metadata"),
        (good(), {}, TypeError, "metadata must be a list, not dict"),
        (good()._replace(label_refs=array("q", [0, 1, 9])), None, ValueError, "series 1 refers to label pair 9, of 2"),
    ],
)
def test_request_series_refuse_parts_that_do_not_match(cols: Decoded, metadata: Any, error: type, words: str) -> None:
    with pytest.raises(error) as raised:
        request_series(cols, metadata)
    assert words in str(raised.value)
    with pytest.raises(TypeError, match="build_request_series takes 9 arguments \\(8 given\\)"):
        cmodel.build_request_series(*cols[:5], cols.values, cols.stamps, cols.series_samples)


def test_columns_read_from_any_buffer_of_their_format_and_held_while_read() -> None:
    cols = good()
    unaligned = memoryview(b"\0" + cols.stamps.tobytes())[1:].cast("q")  # items need no alignment
    found = cmodel.build_sample_lists(memoryview(cols.values), unaligned, cols.series_samples)
    assert found == [[(1.0, 1)], [(2.0, 2)]]
    assert cmodel.build_label_sets(["a", "b"], array("q", [0, 1]), array("q"), array("q"), array("q")) == []


@pytest.mark.parametrize(
    "args, error, words",
    [
        (([], [[]], None, None), ValueError, "0 series' labels but 1 series' samples"),
        (([()], [[]], [None, None], None), ValueError, "1 series' labels but 2 series' metadata"),
        (([()], [[]], None, []), ValueError, "1 series' labels but 0 series' starts"),
        (({}, [], None, None), TypeError, "labels must be a list, not dict"),
        (([()], [[]], 5, None), TypeError, "metadata must be a list, not int"),
        (([()], [[]], None), TypeError, "build_series takes 4 arguments (3 given)"),
        (([()], None, None, None), TypeError, "samples must be a list, not NoneType"),
    ],
)
def test_series_refuse_parts_they_cannot_read(args: tuple, error: type, words: str) -> None:
    with pytest.raises(error) as raised:
        cmodel.build_series(*args)
    assert words in str(raised.value)


def test_series_take_tuples_and_store_what_they_are_given() -> None:
    labels, samples = (LabelSet({"a": "b"}),), ([(1.0, 2)],)
    (series,) = cmodel.build_series(labels, samples, ("meta",), (5,))
    assert series._labels is labels[0] and series.samples is samples[0]
    assert (series.metadata, series.start_timestamp_ms, series.exemplars, series.histograms) == ("meta", 5, [], [])
    first, second = request_series(good(), ("m0", "m1"))
    assert (first.metadata, second.metadata, first.start_timestamp_ms) == ("m0", "m1", None)


def test_builders_need_the_model_classes_registered() -> None:
    """With PROMWRITE_BACKEND=python, promwrite registers no class: the builders refuse to run."""
    code = (
        "from array import array\n"
        "from promwrite import _cmodel\n"
        "for call in (lambda: _cmodel.build_label_sets([], array('q'), array('q'), array('q'), array('q')),\n"
        "             lambda: _cmodel.build_sample_lists(array('d'), array('q'), array('q')),\n"
        "             lambda: _cmodel.build_series([], [], None, None),\n"
        "             lambda: _cmodel.build_request_series([], *[array('q')] * 4, array('d'), array('q'), array('q'), None)):\n"
        "    try:\n"
        "        call()\n"
        "    except RuntimeError as exc:\n"
        "        print(exc)\n"
    )
    env = dict(os.environ, PROMWRITE_BACKEND="python")
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [f"promwrite._cmodel: {name} is not registered (importing promwrite does it, unless "
                                       "PROMWRITE_BACKEND=python)"
                                       for name in ("Label", "Sample", "TimeSeries", "TimeSeries")]  # fmt: skip


def test_register_label_set_takes_only_a_slotted_class() -> None:
    class Loose:  # has a __dict__
        pass

    class Slotted:
        __slots__ = ("labels", "_pb")

    class Propertied:
        __slots__ = ("_pb", "_hash")
        labels = property(lambda self: ())

    for cls in (Loose, Slotted, Propertied, int, "LabelSet"):
        with pytest.raises((TypeError, AttributeError)):
            cmodel.register_label_set(cls)
    cmodel.register_label_set(LabelSet)  # still registered: the builders make LabelSets
    assert type(cmodel.build_label_sets(["a"], array("q", [0, 0]), array("q", [0]), array("q", [1]), array("q"))[0]) is LabelSet


def test_samples_of_one_timestamp_share_its_int() -> None:
    """Equal timestamps of one request take one int (W2 repeats 100 across 1,000 series)."""
    stamps = array("q", [1 << 40] * 3 + [(1 << 40) + 15_000] * 3)
    lists = cmodel.build_sample_lists(array("d", range(6)), stamps, array("q", [1] * 6))
    assert len({id(s[0].timestamp_ms) for s in lists}) == 2 and [s[0] for s in lists] == list(zip(range(6), stamps))


def while_collecting(clear: Any, call: Any) -> Any:
    """call() with garbage whose finalizer runs clear() at the first collection, and a collection at every allocation."""

    class Finalized:
        def __del__(self) -> None:
            clear()

    thresholds = gc.get_threshold()
    gc.collect()
    junk = Finalized()
    junk.cycle = junk  # only the collector frees it
    try:
        gc.set_threshold(1)
        del junk
        return call()
    finally:
        gc.set_threshold(*thresholds)
        gc.collect()


def test_lists_changed_while_read_are_refused_not_read_out_of_bounds() -> None:
    """A finalizer run by an allocation may change the lists given: what C reads next, it checks again.
    Where the collection lands depends on the interpreter: inside the build (before 3.12, at an
    allocation: refused, never read out of bounds), before it (refused as any bad column is), or,
    from 3.12, where it runs only between bytecodes, possibly after it (the lists read whole)."""
    labels, samples = [LabelSet({"a": "b"})] * 20, [[]] * 20
    cols = good()
    strings = list(cols.strings)
    for clear, call, whole in ((labels.clear, lambda: cmodel.build_series(labels, samples, None, None), 20),
                               (strings.clear, lambda: request_series(cols._replace(strings=strings)), 2)):
        if sys.version_info < (3, 12):
            with pytest.raises(ValueError, match="changed while it was read|refers to strings|series' labels but"):
                while_collecting(clear, call)
        else:
            with contextlib.suppress(ValueError):
                assert len(while_collecting(clear, call)) == whole
    assert labels == [] and strings == []