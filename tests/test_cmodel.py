"""promwrite._cmodel (the model's hot paths in C) against its Python twins, input by input."""

from __future__ import annotations

import gc
import math
import pickle
import struct
from array import array
from collections import deque, namedtuple
from typing import Any, Callable, List

import pytest
from hypothesis import assume, given, settings, strategies as st

from promwrite import STALE_NAN, Label, Sample, TimeSeries
from promwrite.encoding import read_sample_arrays, sample_arrays
from promwrite.errors import SeriesError
from promwrite.model import cmodel

from .conftest import REQUIRE_NATIVE, examples

pytestmark = pytest.mark.skipif(cmodel is None and not REQUIRE_NATIVE, reason="promwrite._cmodel is not built")

INT64 = st.integers(-(1 << 63), (1 << 63) - 1)
ODD_NUMBERS = st.sampled_from([True, 10**400, -(1 << 63) - 1, 1 << 63, "1", None, 1.5j, b"1"])
NUMBERS = st.one_of(st.floats(allow_nan=True), st.integers(-(1 << 70), 1 << 70), ODD_NUMBERS)
Pair = namedtuple("Pair", "value timestamp_ms")


def outcome(build: Callable[[], Any]) -> tuple:
    """What a call gives, comparable across twins: the value (floats by bits) and type, or the error."""
    try:
        result = build()
    except Exception as exc:  # the twins must raise the same
        return ("raises", type(exc), str(exc))
    return ("gives", type(result), struct.pack("<d", result[0]), type(result[0]), result[1], type(result[1]))


def python_new(*args: Any, **kwargs: Any) -> Sample:
    """Sample's Python constructor, the path C hands every call shape it does not take."""
    return Sample.__new__(Sample, *args, **kwargs)


@given(value=NUMBERS, stamp=st.one_of(INT64, NUMBERS))
@settings(max_examples=examples(500), deadline=None)
def test_sample_from_c_is_the_python_constructors(value: Any, stamp: Any) -> None:
    assume(stamp is not None)  # None is "now", which moves between the two calls
    assert outcome(lambda: Sample(value, timestamp_ms=stamp)) == outcome(lambda: python_new(value, timestamp_ms=stamp))
    assert outcome(lambda: Sample(value, stamp)) == outcome(lambda: python_new(value, stamp))


@pytest.mark.parametrize(
    "args, kwargs",
    [((1.5,), {"timestamp_ms": 1, "time": None}), ((1.5,), {"bogus": 1}), ((), {}), ((1.5, None, 3), {}), ((), {"value": 1.5, "timestamp_ms": 4})],
)
def test_sample_other_call_shapes_go_to_python(args: tuple, kwargs: dict) -> None:
    assert outcome(lambda: Sample(*args, **kwargs)) == outcome(lambda: python_new(*args, **kwargs))


def test_c_samples_are_not_tracked_by_the_gc() -> None:
    """A Sample holds a float and an int, never a cycle: the collector need not scan it."""
    sample = Sample(1.5, timestamp_ms=7)
    assert not gc.is_tracked(sample)
    gc.collect()
    assert sample == (1.5, 7) and sample.value == 1.5 and sample.timestamp_ms == 7
    assert math.isnan(Sample(math.nan, timestamp_ms=1).value)
    assert pickle.loads(pickle.dumps(sample)) == sample and repr(Sample(STALE_NAN, timestamp_ms=1)) == "Sample(STALE_NAN, timestamp_ms=1)"

    class Tagged(Sample):  # with a __dict__
        pass

    tagged = Tagged(1.5, timestamp_ms=7)  # a subclass may hold anything: tracked as any object
    tagged.tag = tagged
    assert type(tagged) is Tagged and gc.is_tracked(tagged) and tagged == (1.5, 7)


SAMPLE_LIKE = st.one_of(
    st.builds(lambda v, t: Sample(v, timestamp_ms=t), st.floats(allow_nan=True), INT64),
    st.tuples(st.one_of(st.floats(allow_nan=True), st.integers(-(1 << 70), 1 << 70)), INT64),
    st.tuples(NUMBERS, st.one_of(INT64, NUMBERS)),
    st.builds(lambda v, t: [v, t], st.floats(), INT64),
    st.builds(Pair, st.floats(), INT64),
    st.tuples(st.floats(), INT64, st.just(0)),
    st.just(()),
    st.just(None),
)


@given(st.lists(st.lists(SAMPLE_LIKE, max_size=4), max_size=4))
@settings(max_examples=examples(500), deadline=None)
def test_sample_arrays_read_in_c_as_in_python(per_series: List[list]) -> None:
    series = [TimeSeries({"__name__": "x"}, samples) for samples in per_series]
    try:
        expected = tuple(a.tobytes() for a in read_sample_arrays(per_series))
    except Exception:
        expected = None
    found = cmodel.sample_arrays(per_series)
    if found is not None:  # what C reads, it reads as Python does
        assert found == expected
    try:
        columns = sample_arrays(series, per_series)
    except SeriesError as exc:
        assert expected is None and str(exc).startswith(f"series {exc.index} x{{}}: ")
    else:
        assert tuple(a.tobytes() for a in columns) == expected and all(type(a) is array for a in columns)


@given(st.lists(st.lists(st.tuples(st.one_of(st.floats(allow_nan=True), st.integers(-(1 << 53), 1 << 53)), INT64), max_size=5), max_size=5))
@settings(max_examples=examples(200), deadline=None)
def test_sample_arrays_takes_samples_and_pairs_in_c(pairs: List[list]) -> None:
    """Plain pairs and Sample objects of the usual types never need the Python twin."""
    samples = [[Sample(v, timestamp_ms=t) for v, t in s] for s in pairs]
    for per_series in (pairs, samples):
        assert cmodel.sample_arrays(per_series) == tuple(a.tobytes() for a in read_sample_arrays(per_series))


TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)
ODD_TEXT = st.sampled_from(["a\0b", "\0", "\ud800", "x\udfff", 3, None, b"x"])


@given(st.lists(st.dictionaries(TEXT, TEXT, max_size=5), max_size=5))
@settings(max_examples=examples(500), deadline=None)
def test_label_texts_are_joined_and_encoded_as_python_does(dicts: List[dict]) -> None:
    names = [n for d in dicts for n in d]
    values = [v for d in dicts for v in d.values()]
    found = cmodel.label_texts(dicts)
    if any("\0" in s for s in names + values):
        assert found is None  # the kernels' "\0"-joined texts cannot hold it: the lists path takes it
    else:
        counts = array("q", map(len, dicts)).tobytes()
        assert found == ("\0".join(names).encode(), "\0".join(values).encode(), len(names), counts)


@given(st.lists(st.dictionaries(st.one_of(TEXT, ODD_TEXT), st.one_of(TEXT, ODD_TEXT), max_size=3), min_size=1, max_size=3))
@settings(max_examples=examples(300), deadline=None)
def test_label_texts_leave_what_they_do_not_read_to_python(dicts: List[dict]) -> None:
    strings = [s for d in dicts for pair in d.items() for s in pair]
    readable = all(type(s) is str and "\0" not in s and not any(0xD800 <= ord(c) <= 0xDFFF for c in s) for s in strings)
    assert (cmodel.label_texts(dicts) is not None) == readable
    assert cmodel.label_texts([*dicts, [("__name__", "x")]]) is None
    assert cmodel.label_texts(tuple(dicts)) is None


def test_label_texts_of_every_utf8_length() -> None:
    text = "a\xe9\u20ac\U0001f600\x7f\x80\u07ff\u0800\uffff\U00010000\U0010ffff"
    assert cmodel.label_texts([{text: text[::-1]}, {}]) == (
        text.encode(), text[::-1].encode(), 1, array("q", [1, 0]).tobytes()
    )


def python_series(*args: Any, **kwargs: Any) -> TimeSeries:
    """TimeSeries's Python constructor, the path C hands every call shape it does not take."""
    series = object.__new__(TimeSeries)
    series.__init__(*args, **kwargs)
    return series


def series_state(build: Callable[[], TimeSeries]) -> tuple:
    try:
        ts = build()
    except Exception as exc:  # the twins must raise the same
        return ("raises", type(exc), str(exc))
    slots = ("_labels", "samples", "exemplars", "histograms", "metadata", "start_timestamp_ms")
    return ("gives", type(ts), *((getattr(ts, a), type(getattr(ts, a))) for a in slots))


@pytest.mark.parametrize(
    "args, kwargs",
    [
        (({"__name__": "x"},), {}),
        (({"__name__": "x"}, [(1.0, 2)]), {}),
        (({"__name__": "x"}, ((1.0, 2), Sample(2.0, timestamp_ms=3))), {}),
        (({"__name__": "x"}, deque([(1.0, 2)])), {}),
        (({"__name__": "x"},), {"sample": Sample(1.0, timestamp_ms=1)}),
        (({"__name__": "x"},), {"sample": None}),
        (({"__name__": "x"}, []), {"sample": (1.0, 1)}),
        (({"__name__": "x"},), {"start_timestamp_ms": 5}),
        (({"__name__": "x"},), {"start_timestamp_ms": 0}),
        (({"__name__": "x"}, 5), {}),
        ((), {}),
        ((), {"labels": {"__name__": "x"}, "samples": [(1.0, 2)]}),
        (({"__name__": "x"}, [], [], []), {}),
    ],
)
def test_series_from_c_is_the_python_constructors(args: tuple, kwargs: dict) -> None:
    assert series_state(lambda: TimeSeries(*args, **kwargs)) == series_state(lambda: python_series(*args, **kwargs))


def test_series_lists_are_the_series_own() -> None:
    samples = [(1.0, 2)]
    a, b = TimeSeries({"__name__": "x"}, samples), TimeSeries({"__name__": "x"}, samples)
    a.samples.append((2.0, 3))
    a.exemplars.append(None)
    assert samples == [(1.0, 2)] and b.samples == [(1.0, 2)] and b.exemplars == [] and a.histograms is not b.histograms


@pytest.mark.parametrize(
    "args, kwargs",
    [(("a", "b"), {}), (("a",), {"value": "b"}), ((), {"name": "a", "value": "b"}), (("a",), {}), (("a", "b", "c"), {}), ((1, None), {})],
)
def test_label_from_c_is_the_python_constructors(args: tuple, kwargs: dict) -> None:
    def state(build: Callable[[], Any]) -> tuple:
        try:
            label = build()
        except Exception as exc:
            return ("raises", type(exc), str(exc))
        return ("gives", type(label), tuple(label), label.name, label.value)

    assert state(lambda: Label(*args, **kwargs)) == state(lambda: Label.__new__(Label, *args, **kwargs))


def test_c_labels_of_two_str_are_not_tracked_by_the_gc() -> None:
    assert not gc.is_tracked(Label("job", "api"))
    holder: list = []
    label = Label("job", holder)  # may be part of a cycle: tracked
    holder.append(label)
    assert gc.is_tracked(label)
