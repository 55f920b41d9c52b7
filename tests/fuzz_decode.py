"""Coverage-guided fuzzing of the decoder with atheris (not collected by pytest).

    pip install atheris
    python tests/fuzz_decode.py -max_total_time=60 [-timeout=10] [-rss_limit_mb=4096] [corpus_dir]

The first byte of an input picks a mode, the rest is the data: bit 1 picks
the protocol (0: 1.0, 1: 2.0), bit 0 what the data is:

0  a serialized request. Each backend's decode kernel gives equal columns or
   the same error (DecodeError, DecodeLimitError), with generous and with
   tight limits; `decode` on each backend gives equal requests or the same
   error, and the same twice. A decoded request is printable, equal to
   itself, and re-encodes with each backend either to the same bytes or to
   the same SeriesError/ValueError (the encoder checks what the decoder took
   as is); for 1.0 those bytes decode back to an equal request. The data is
   then snappy-compressed and `decode_payload` must give what `decode` gave.
1  a remote-write body (snappy). `decode_payload` on each backend raises only
   SnappyError or DecodeError, and all backends give the same request or the
   same error, which is what decoding the decompressed bytes gives.

tests/test_fuzz.py runs this for a few seconds (seed corpus included); a
finding is written to crash-<sha1> (see -artifact_prefix) and can be replayed
with `python tests/fuzz_decode.py crash-<sha1>`.
"""

from __future__ import annotations

import pathlib
import sys
from typing import Any, List, Tuple

import atheris

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))  # run from a checkout

with atheris.instrument_imports(include=["promwrite"]):
    import promwrite  # noqa: F401 - the whole package, instrumented
    from promwrite import _backend, _pysnappy
    from promwrite.codec import encode_with
    from promwrite.decoder import DecodeLimits, decode_payload_with, decode_with
    from promwrite.errors import DecodeError, SeriesError, SnappyError

LIMIT = 1 << 20  # decode_payload's max_length: what a server would allow, kept small here
BACKENDS = _backend.available()  # python first, then native when built
TIGHT = DecodeLimits(max_series=3, max_labels=7, max_samples=5, max_exemplars=2, max_histograms=2,
                     max_buckets=9, max_metadata=2, max_expansion=1)  # fmt: skip


def _columns(kernels: Any, data: bytes, protocol: str, limits: DecodeLimits) -> Tuple[str, Any]:
    kernel = kernels.decode_v1 if protocol == "1.0" else kernels.decode_v2
    try:
        cols = kernel(data, limits.kernel_limits(len(data)), 99)
    except DecodeError as exc:
        return "error", f"{type(exc).__name__}: {exc}"
    return "ok", cols._replace(values=cols.values.tobytes())


def _decoded(kernels: Any, data: bytes, protocol: str) -> Tuple[str, Any]:
    try:
        return "ok", decode_with(kernels, data, protocol)
    except DecodeError as exc:
        return "error", f"{type(exc).__name__}: {exc}"


def _payload(kernels: Any, data: bytes, protocol: str) -> Tuple[str, Any]:
    try:
        return "ok", decode_payload_with(kernels, data, LIMIT, protocol)
    except (SnappyError, DecodeError) as exc:
        return "error", f"{type(exc).__name__}: {exc}"


def _all_same(results: List[Tuple[str, Any]], what: str) -> Tuple[str, Any]:
    for kernels, other in zip(BACKENDS[1:], results[1:]):
        assert other == results[0], f"{what}: python gives {results[0][1]!r:.200}, {kernels.name} {other[1]!r:.200}"
    return results[0]


def _check_request(data: bytes, protocol: str, request: Any) -> None:
    assert request == request, "a decoded request is not equal to itself"
    repr(request)
    assert decode_with(BACKENDS[0], data, protocol) == request, "decode is not deterministic"
    encoded = []
    for kernels in BACKENDS:
        try:
            encoded.append(("ok", encode_with(kernels, request, compress=False, protocol=protocol)))
        except (SeriesError, ValueError) as exc:  # the encoder's checks (not TypeError & co)
            encoded.append(("error", f"{type(exc).__name__}: {exc}"))
    _all_same(encoded, "encode")
    if encoded[0][0] == "ok" and protocol == "1.0":
        assert decode_with(BACKENDS[0], encoded[0][1], protocol) == request, "decode(encode(decode(data))) != decode(data)"


def check_protobuf(data: bytes, protocol: str) -> None:
    for limits in (DecodeLimits(), TIGHT):
        _all_same([_columns(k, data, protocol, limits) for k in BACKENDS], "kernel columns")
    first = _all_same([_decoded(k, data, protocol) for k in BACKENDS], "decode")
    if first[0] == "ok":
        _check_request(data, protocol, first[1])
    payload = _pysnappy.compress(data)
    for kernels in BACKENDS:
        assert _payload(kernels, payload, protocol) == first, f"decode_payload over {kernels.name} != decode"


def check_payload(data: bytes, protocol: str) -> None:
    first = _all_same([_payload(k, data, protocol) for k in BACKENDS], "decode_payload")
    try:
        raw = _pysnappy.decompress(data, LIMIT)
    except SnappyError:
        assert first[0] == "error" and first[1].startswith(("SnappyError", "DecodeLimitError")), first
        return
    assert first == _decoded(BACKENDS[0], raw, protocol), "decode_payload != decode(decompress)"


def TestOneInput(raw: bytes) -> None:  # noqa: N802 - atheris' name
    if not raw:
        return
    mode, data = raw[0], raw[1:]
    protocol = "2.0" if mode & 2 else "1.0"
    if mode & 1:
        check_payload(data, protocol)
    else:
        check_protobuf(data, protocol)


def main() -> None:
    print(f"fuzz_decode: backends {[k.name for k in BACKENDS]}", flush=True)
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
