"""Decode: a remote-write body (snappy + protobuf) to every label and sample read in Python.

Contenders, on the W1 and W2 bodies of bench/test_encode.py (as protobuf+cramjam
writes them): promwrite's `decode_payload` on each backend (the C decoder, its
Python twin), and cramjam + the official protobuf library. Each run reads
every label's name and value and every sample's value and timestamp, the way
each library's objects offer them (attributes). Checked equal before timing.
Run: ``.venv/bin/python -m pytest bench/ --benchmark-only``.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Tuple

import cramjam
import pytest

from promwrite import _backend
from promwrite.decoder import decode_payload_with

from test_encode import W1, W2, Series, _record, protobuf_cramjam  # bench/test_encode.py (bench/ is on sys.path under pytest)
from tests.prompb_ref import PB

Read = List[Tuple[List[Tuple[str, str]], List[Tuple[float, int]]]]


def read_protobuf(wire: bytes) -> Read:
    request = PB["WriteRequest"].FromString(bytes(cramjam.snappy.decompress_raw(wire)))
    return [
        ([(lb.name, lb.value) for lb in ts.labels], [(s.value, s.timestamp) for s in ts.samples])
        for ts in request.timeseries
    ]


def read_promwrite(kernels: Any) -> Callable[[bytes], Read]:
    def run(wire: bytes) -> Read:
        request = decode_payload_with(kernels, wire, None, "1.0")
        return [
            ([(lb.name, lb.value) for lb in ts.labels], [(s.value, s.timestamp_ms) for s in ts.samples])
            for ts in request.timeseries
        ]

    return run


CONTENDERS: Dict[str, Callable[[bytes], Read]] = {
    "protobuf+cramjam": read_protobuf,
    **{f"promwrite {k.name}": read_promwrite(k) for k in _backend.available()},
}


@pytest.mark.parametrize("contender", list(CONTENDERS))
@pytest.mark.parametrize("name, data", [("W1", W1), ("W2", W2)])
def test_decode(benchmark: Any, contender: str, name: str, data: List[Series]) -> None:
    wire = protobuf_cramjam(data)
    run = CONTENDERS[contender]
    expected = [(sorted(labels.items()), samples) for labels, samples in data]
    assert run(wire) == expected
    benchmark.group = f"decode {name}: body to every label and sample read"
    _record(benchmark, contender, sum(len(s) for _, s in data), len(wire))
    benchmark.pedantic(run, args=(wire,), rounds=5 if "python" in contender else 15, warmup_rounds=1)
