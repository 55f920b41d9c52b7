"""Coverage-guided fuzzing of `promwrite.codec.decode` with atheris (not collected by pytest).

    pip install atheris
    python tests/fuzz_decode.py -max_total_time=60 [-timeout=10] [-rss_limit_mb=4096] [corpus_dir]

The first byte of an input picks a mode, the rest is the data:

even  the data is a serialized WriteRequest. `decode` may raise DecodeError
      and nothing else, and gives the same result twice. A decoded request is
      printable, equal to itself, and re-encodes with each backend either to
      the same bytes (which decode back to an equal request) or to the same
      SeriesError/ValueError (the encoder checks what the decoder took as is).
      The data is then snappy-compressed and `decode_payload` over each
      backend's decompress must give what `decode` gave.
odd   the data is a remote-write body (snappy). `decode_payload`, run over
      each backend's decompress, raises only SnappyError or DecodeError, and
      all backends give the same request or the same error.

tests/test_fuzz.py runs this for a few seconds (seed corpus included); a
finding is written to crash-<sha1> (see -artifact_prefix) and can be replayed
with `python tests/fuzz_decode.py crash-<sha1>`.
"""

from __future__ import annotations

import pathlib
import sys
from typing import Callable, List, Tuple

import atheris

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))  # run from a checkout

with atheris.instrument_imports(include=["promwrite"]):
    import promwrite  # noqa: F401 - the whole package, instrumented
    from promwrite import _backend, _pysnappy, codec, snappy
    from promwrite.codec import decode, decode_payload, encode_with
    from promwrite.errors import DecodeError, SeriesError, SnappyError

LIMIT = 1 << 20  # decode_payload's max_length: what a server would allow, kept small here

BACKENDS = _backend.available()  # python first, then native when built
DECOMPRESS: List[Tuple[str, Callable[[bytes, int], bytes]]] = [(k.name, k.decompress) for k in BACKENDS]


def _decoded(data: bytes):
    try:
        return "ok", decode(data)
    except DecodeError as exc:
        return "error", f"DecodeError: {exc}"


def _payload(data: bytes, name: str, decompress: Callable[[bytes, int], bytes]):
    """decode_payload(data) with snappy.decompress served by one backend."""
    saved = snappy._decompress
    snappy._decompress = decompress
    try:
        return "ok", decode_payload(data, LIMIT)
    except (SnappyError, DecodeError) as exc:
        return "error", f"{type(exc).__name__}: {exc}"
    finally:
        snappy._decompress = saved


def _same(a, b) -> bool:
    return a[0] == b[0] and a[1] == b[1]


def _check_request(data: bytes, request) -> None:
    assert request == request, "a decoded request is not equal to itself"
    repr(request)
    again = decode(data)
    assert again == request, "decode is not deterministic"
    encoded = []
    for kernels in BACKENDS:
        try:
            encoded.append(("ok", encode_with(kernels, request, compress=False)))
        except (SeriesError, ValueError) as exc:  # the encoder's checks (not TypeError & co)
            encoded.append(("error", f"{type(exc).__name__}: {exc}"))
    for (name, _), other in zip(DECOMPRESS[1:], encoded[1:]):
        assert other == encoded[0], f"encode differs: python {encoded[0][0]}, {name} {other[0]}"
    if encoded[0][0] == "ok":
        back = codec.decode(encoded[0][1])
        assert back == request, "decode(encode(decode(data))) != decode(data)"


def check_protobuf(data: bytes) -> None:
    first = _decoded(data)
    if first[0] == "ok":
        _check_request(data, first[1])
    payload = _pysnappy.compress(data)
    for name, decompress in DECOMPRESS:
        via = _payload(payload, name, decompress)
        assert _same(via, first), f"decode_payload over {name} gives {via[0]}, decode gives {first[0]}"


def check_payload(data: bytes) -> None:
    results = [(name, _payload(data, name, decompress)) for name, decompress in DECOMPRESS]
    _, first = results[0]
    for name, other in results[1:]:
        assert _same(other, first), f"decode_payload: python gives {first[1]!r:.200}, {name} {other[1]!r:.200}"
    try:
        raw = _pysnappy.decompress(data, LIMIT)
    except SnappyError:
        assert first[0] == "error" and first[1].startswith("SnappyError")
        return
    assert _same(first, _decoded(raw)), "decode_payload != decode(decompress)"


def TestOneInput(raw: bytes) -> None:  # noqa: N802 - atheris' name
    if not raw:
        return
    mode, data = raw[0], raw[1:]
    if mode & 1:
        check_payload(data)
    else:
        check_protobuf(data)


def main() -> None:
    print(f"fuzz_decode: backends {[k.name for k in BACKENDS]}", flush=True)
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
