"""promwrite.names: legacy name rules by default, UTF-8 names opt-in, on both backends and both protocols."""

from __future__ import annotations

from typing import Iterator

import pytest

import promwrite
from promwrite import LabelSet, Sample, SeriesError, TimeSeries, WriteRequest, decode
from promwrite.codec import encode_with
from promwrite.names import is_valid_label_name, is_valid_metric_name, name_validation, set_name_validation

from .conftest import BACKENDS
from .prompb_ref import to_pb

UTF8_SERIES = [
    TimeSeries({"__name__": "up", "job": "a"}, [Sample(1.0, timestamp_ms=1000)]),
    TimeSeries({"__name__": "http.requests", "host.name": "edge-01", "Zürich ü": "x", "日本": "語"},
               [Sample(2.0, timestamp_ms=1000)]),
]


@pytest.fixture
def utf8_names() -> Iterator[None]:
    """UTF-8 name rules for one test, then the legacy default again."""
    set_name_validation("utf-8")
    try:
        yield
    finally:
        set_name_validation("legacy")


def test_default_and_api() -> None:
    assert promwrite.set_name_validation is set_name_validation and promwrite.name_validation is name_validation
    assert name_validation() == "legacy"
    assert is_valid_metric_name("a:b_c") and not is_valid_metric_name("a.b") and not is_valid_label_name("a:b")
    with pytest.raises(ValueError, match="'legacy' or 'utf-8', not 'utf8'"):
        set_name_validation("utf8")


def test_utf8_mode_checks(utf8_names: None) -> None:
    assert is_valid_metric_name("a.b") and is_valid_label_name("ü x") and not is_valid_label_name("")


@pytest.mark.parametrize("protocol", ["1.0", "2.0"])
def test_legacy_mode_refuses_utf8_names_naming_the_series(kernels, protocol: str) -> None:
    with pytest.raises(SeriesError, match=r"series 1 .*is invalid .*set_name_validation\('utf-8'\) allows") as info:
        encode_with(kernels, WriteRequest(UTF8_SERIES), compress=False, protocol=protocol)
    assert info.value.index == 1


@pytest.mark.parametrize("protocol", ["1.0", "2.0"])
def test_utf8_mode_sends_names_as_they_are(kernels, utf8_names: None, protocol: str) -> None:
    request = WriteRequest(UTF8_SERIES)
    data = encode_with(kernels, request, compress=False, protocol=protocol)
    assert decode(data, protocol).timeseries == UTF8_SERIES
    assert all(encode_with(other, request, compress=False, protocol=protocol) == data for other in BACKENDS)
    if protocol == "1.0":
        assert data == to_pb(request).SerializeToString()


def test_utf8_mode_still_refuses_empty_names(kernels, utf8_names: None) -> None:
    for labels, problem in [({"__name__": "a.b", "": "x"}, "empty name"), ({"__name__": ""}, "empty value"),
                            ({"x.y": "1"}, "no __name__")]:
        with pytest.raises(SeriesError, match=problem):
            encode_with(kernels, WriteRequest([TimeSeries(labels, [(1.0, 1)])]), compress=False)


@pytest.mark.parametrize("protocol", ["1.0", "2.0"])
def test_a_label_set_sent_under_utf8_rules_is_checked_again_under_legacy(kernels, protocol: str) -> None:
    """A LabelSet keeps its encoding for later writes; one holding names only "utf-8" allows must be checked again."""
    utf8_only, plain = LabelSet(UTF8_SERIES[1].labels), LabelSet({"__name__": "up", "job": "a"})
    request = WriteRequest([TimeSeries(plain, [(1.0, 1000)]), TimeSeries(utf8_only, [(2.0, 1000)])])
    set_name_validation("utf-8")
    try:
        encode_with(kernels, request, compress=False, protocol=protocol)
    finally:
        set_name_validation("legacy")
    with pytest.raises(SeriesError, match=r"series 1 .*is invalid") as info:
        encode_with(kernels, request, compress=False, protocol=protocol)
    assert info.value.index == 1
    assert plain._pb is not None or protocol == "2.0"  # valid under both rules: kept (1.0 keeps label encodings)
