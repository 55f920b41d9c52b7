"""Snappy: round trips, interop with Google's snappy (cramjam), identical bytes
from both backends, every tag kind, corrupt input, limits, compression ratio."""

from __future__ import annotations

import functools
import random
import struct
import time
from typing import Callable, List, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promwrite import _backend, _pysnappy, snappy
from promwrite._pysnappy import varint
from promwrite.errors import SnappyError

from .conftest import examples

cramjam = pytest.importorskip("cramjam")

BACKENDS = {k.name: k for k in _backend.available()}
NATIVE = BACKENDS.get("native")
needs_native = pytest.mark.skipif(NATIVE is None, reason="C accelerator not built")
PY = BACKENDS["python"]

LIMIT = 1 << 30
# The kernels fixture holds no state, so sharing it across examples is fine.
SUPPRESS = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]


def google_compress(data: bytes) -> bytes:
    return bytes(cramjam.snappy.compress_raw(data))


def google_decompress(data: bytes) -> bytes:
    return bytes(cramjam.snappy.decompress_raw(data))


# --- inputs -----------------------------------------------------------------

# Repetitive data, so that copies of every length and distance occur: pieces
# drawn from a small pool (some long, some tiny) plus runs of one byte.
_piece = st.one_of(
    st.binary(min_size=1, max_size=8),
    st.binary(min_size=20, max_size=120),
    st.builds(lambda b, n: b * n, st.binary(min_size=1, max_size=3), st.integers(1, 300)),
)


@st.composite
def repetitive(draw: st.DrawFn, max_pieces: int = 200) -> bytes:
    pool = draw(st.lists(_piece, min_size=1, max_size=12))
    picks = draw(st.lists(st.integers(0, len(pool) - 1), max_size=max_pieces))
    return b"".join(pool[i] for i in picks)


data_strategy = st.one_of(st.binary(max_size=3000), repetitive())


@functools.lru_cache(maxsize=None)
def structured_inputs() -> Tuple[bytes, ...]:
    """Deterministic inputs that cross block boundaries and exercise every path."""
    rng = random.Random(7)
    text = b"".join(rng.choice([b"alpha ", b"beta ", b"gamma\n", b"delta=", b"%d," % rng.randrange(99)]) for _ in range(60000))
    return (
        b"",
        b"a",
        b"abc",
        b"abcd",
        b"abcdabcd",
        b"a" * 100,
        b"a" * 65536,
        b"a" * 65537,
        b"ab" * 100000,
        bytes(range(256)) * 600,  # offsets 256, many blocks
        rng.randbytes(200000),  # incompressible: the skip heuristic
        rng.randbytes(30000) * 3,  # long matches at distance 30000
        text,
        text[: 65536 + 3],
        realistic_payload(2000),
    )


def realistic_payload(series: int = 10_000, seed: int = 20240101) -> bytes:
    """A remote-write WriteRequest of node-exporter-like series, one sample each
    (hand-serialized protobuf; deterministic)."""
    rng = random.Random(seed)

    def field(num: int, payload: bytes) -> bytes:
        return varint(num << 3 | 2) + varint(len(payload)) + payload

    def combos(dims: List[Tuple[str, List[str]]]) -> List[List[Tuple[str, str]]]:
        out: List[List[Tuple[str, str]]] = [[]]
        for name, values in dims:
            out = [c + [(name, v)] for c in out for v in values]
        return out

    disks = [("device", ["sda", "sdb", "nvme0n1"])]
    nics = [("device", ["eth0", "eth1", "lo", "docker0", "veth1a2b3c"])]
    metrics = [
        ("node_cpu_seconds_total", [("cpu", [str(i) for i in range(16)]), ("mode", ["idle", "user", "system", "iowait", "irq", "softirq", "steal", "nice"])]),
        ("node_network_receive_bytes_total", nics),
        ("node_network_transmit_bytes_total", nics),
        ("node_filesystem_avail_bytes", [("device", ["/dev/sda1", "/dev/sdb1", "tmpfs"]), ("fstype", ["ext4", "xfs", "tmpfs"]), ("mountpoint", ["/", "/data", "/run"])]),
        ("node_disk_io_time_seconds_total", disks),
        ("node_disk_read_bytes_total", disks),
        ("node_memory_MemAvailable_bytes", []),
        ("node_load1", []),
    ]
    out = bytearray()
    count = 0
    host = 0
    while True:
        instance = f"ip-10-{host // 250}-{host % 250}-{rng.randrange(256)}.ec2.internal:9100"
        host += 1
        for name, dims in metrics:
            for combo in combos(dims):
                labels = sorted([("__name__", name), ("instance", instance), ("job", "node"), ("region", "eu-west-1")] + combo)
                body = b"".join(field(1, field(1, k.encode()) + field(2, v.encode())) for k, v in labels)
                value = float(rng.randrange(1 << 40)) if rng.random() < 0.5 else rng.random() * 1e6
                sample = b"\x09" + struct.pack("<d", value) + b"\x10" + varint(1_700_000_000_000 + rng.randrange(15000))
                out += field(1, body + field(2, sample))
                count += 1
                if count == series:
                    return bytes(out)


def outcome(fn: Callable[[], bytes]) -> Tuple[str, object]:
    try:
        return "ok", fn()
    except SnappyError as exc:
        return "error", str(exc)


# --- round trips and interop ---------------------------------------------------


@settings(max_examples=examples(300), deadline=None, suppress_health_check=SUPPRESS)
@given(data=data_strategy)
def test_round_trip(kernels, data):
    packed = kernels.compress(data)
    assert len(packed) <= _pysnappy.max_compressed_length(len(data))
    assert kernels.decompress(packed, len(data)) == data


@settings(max_examples=examples(200), deadline=None, suppress_health_check=SUPPRESS)
@given(data=data_strategy)
def test_google_reads_ours_and_we_read_googles(kernels, data):
    assert google_decompress(kernels.compress(data)) == data
    assert kernels.decompress(google_compress(data), LIMIT) == data


@pytest.mark.parametrize("index", range(len(structured_inputs())))
def test_structured_round_trip(kernels, index):
    data = structured_inputs()[index]
    packed = kernels.compress(data)
    assert google_decompress(packed) == data
    assert kernels.decompress(packed, LIMIT) == data
    assert kernels.decompress(google_compress(data), LIMIT) == data


def test_compression_ratio_realistic_payload(kernels):
    """Within 10% of Google's snappy on many similar series."""
    data = realistic_payload()
    ours = len(kernels.compress(data))
    google = len(google_compress(data))
    assert ours <= 1.10 * google, (ours, google)
    assert ours < len(data) / 4


def test_incompressible_input_barely_grows(kernels):
    data = random.Random(3).randbytes(1 << 20)
    assert len(kernels.compress(data)) <= len(data) + 64


# --- both backends emit the same bytes -------------------------------------------


@needs_native
@settings(max_examples=examples(500), deadline=None, suppress_health_check=SUPPRESS)
@given(data=data_strategy)
def test_backends_compress_identically(data):
    assert NATIVE.compress(data) == PY.compress(data)


@needs_native
@pytest.mark.parametrize("index", range(len(structured_inputs())))
def test_backends_compress_structured_identically(index):
    data = structured_inputs()[index]
    assert NATIVE.compress(data) == PY.compress(data)


@needs_native
def test_backends_compress_realistic_identically():
    data = realistic_payload() * 2  # ~3.3 MB, many blocks
    assert NATIVE.compress(data) == PY.compress(data)


@needs_native
@settings(max_examples=examples(500), deadline=None)
@given(data=st.binary(max_size=200), cut=st.integers(0, 400))
def test_backends_agree_on_arbitrary_input(data, cut):
    """Same bytes or the same error message, for garbage and for truncations."""
    # cut < 200: a truncated valid stream; else the random bytes themselves.
    stream = PY.compress(data)[:cut] if cut < 200 else data
    assert outcome(lambda: NATIVE.decompress(stream, LIMIT)) == outcome(lambda: PY.decompress(stream, LIMIT))


# --- hand-built streams: every tag kind ----------------------------------------------


def literal(payload: bytes, extra_bytes: int = 0) -> bytes:
    """A literal element; extra_bytes forces the 1-4 byte length form."""
    n = len(payload) - 1
    if extra_bytes == 0:
        assert n < 60
        return bytes([n << 2]) + payload
    return bytes([(59 + extra_bytes) << 2]) + n.to_bytes(extra_bytes, "little") + payload


def copy1(offset: int, length: int) -> bytes:
    assert 4 <= length <= 11 and offset < 2048
    return bytes([((offset >> 8) << 5) | ((length - 4) << 2) | 1, offset & 0xFF])


def copy2(offset: int, length: int) -> bytes:
    return bytes([((length - 1) << 2) | 2]) + offset.to_bytes(2, "little")


def copy4(offset: int, length: int) -> bytes:
    return bytes([((length - 1) << 2) | 3]) + offset.to_bytes(4, "little")


def stream(total: int, *elements: bytes) -> bytes:
    return varint(total) + b"".join(elements)


BIG = bytes(range(256)) * 280  # 71680 bytes: offsets past 65535

VALID_STREAMS = {
    "empty": (stream(0), b""),
    "literal-short": (stream(3, literal(b"abc")), b"abc"),
    "literal-60": (stream(60, literal(b"x" * 60)), b"x" * 60),
    "literal-1-byte-length": (stream(61, literal(b"y" * 61, 1)), b"y" * 61),
    "literal-2-byte-length": (stream(60000, literal(BIG[:60000], 2)), BIG[:60000]),
    "literal-3-byte-length": (stream(len(BIG), literal(BIG, 3)), BIG),
    "literal-4-byte-length": (stream(5, literal(b"hello", 4)), b"hello"),
    "literal-long-form-small": (stream(1, literal(b"z", 1)), b"z"),
    "two-literals": (stream(4, literal(b"ab"), literal(b"cd")), b"abcd"),
    "copy-1": (stream(12, literal(b"abcd"), copy1(4, 8)), b"abcd" * 3),
    "copy-1-max-offset": (stream(2047 + 11, literal(BIG[:60]), literal(BIG[60:2047], 2), copy1(2047, 11)), BIG[:2047] + BIG[:11]),
    "copy-2": (stream(68, literal(b"abcd"), copy2(4, 64)), b"abcd" * 17),
    "copy-2-len-1": (stream(5, literal(b"abcd"), copy2(3, 1)), b"abcdb"),
    "copy-4": (stream(12, literal(b"abcd"), copy4(4, 8)), b"abcd" * 3),
    "copy-4-far": (stream(len(BIG) + 64, literal(BIG, 3), copy4(len(BIG), 64)), BIG + BIG[:64]),
    "overlap-rle-1": (stream(1 + 64 + 11, literal(b"a"), copy2(1, 64), copy1(1, 11)), b"a" * 76),
    "overlap-xababab": (stream(7, literal(b"xab"), copy1(2, 4)), b"xababab"),
    "overlap-3-in-10": (stream(13, literal(b"abc"), copy2(3, 10)), b"abcabcabcabca"),
    "overlap-copy-4": (stream(2 + 9, literal(b"ab"), copy4(2, 9)), b"ab" * 5 + b"a"),
}


@pytest.mark.parametrize("name", sorted(VALID_STREAMS))
def test_hand_built_streams(kernels, name):
    packed, expected = VALID_STREAMS[name]
    assert kernels.decompress(packed, LIMIT) == expected
    if name != "literal-long-form-small":  # the rust decoder in cramjam balks at
        assert google_decompress(packed) == expected  # this one; Google's C++ takes it


# --- corrupt input ----------------------------------------------------------------------

CORRUPT_STREAMS = {
    "no-input": b"",
    "varint-truncated": b"\x80",
    "varint-6-bytes": b"\x80\x80\x80\x80\x80\x00",
    "varint-over-2**32-1": b"\x80\x80\x80\x80\x10" + b"\x00" * 64,
    "varint-5th-byte-continues": b"\xff\xff\xff\xff\xff",
    "declared-but-empty": stream(1),
    "impossible-expansion": stream(1000, literal(b"a"), copy2(1, 64)),
    "offset-zero-copy-1": stream(12, literal(b"abcd"), copy1(0, 8)),
    "offset-zero-copy-2": stream(12, literal(b"abcd"), copy2(0, 8)),
    "offset-zero-copy-4": stream(12, literal(b"abcd"), copy4(0, 8)),
    "offset-beyond-output": stream(12, literal(b"abcd"), copy1(5, 8)),
    "copy-first": stream(8, copy1(1, 8)),
    "copy-4-offset-huge": stream(12, literal(b"abcd"), copy4(0xFFFFFFFF, 8)),
    "output-over-declared-literal": stream(3, literal(b"abcd")),
    "output-over-declared-copy": stream(10, literal(b"abcd"), copy1(4, 8)),
    "output-under-declared": stream(5, literal(b"abcd")),
    "literal-truncated": stream(4, literal(b"abcd"))[:-1],
    "literal-length-bytes-truncated": varint(5) + bytes([62 << 2, 0x2B]),
    "literal-4-byte-length-huge": varint(5) + bytes([63 << 2]) + b"\xff\xff\xff\xff" + b"hello",
    "copy-1-truncated": stream(12, literal(b"abcd"), copy1(4, 8)[:1]),
    "copy-2-truncated": stream(12, literal(b"abcd"), copy2(4, 8)[:2]),
    "copy-4-truncated": stream(12, literal(b"abcd"), copy4(4, 8)[:4]),
    "trailing-garbage": stream(4, literal(b"abcd"), b"\x00"),
}


@pytest.mark.parametrize("name", sorted(CORRUPT_STREAMS))
def test_corrupt_streams_raise_snappy_error(kernels, name):
    with pytest.raises(SnappyError):
        kernels.decompress(CORRUPT_STREAMS[name], LIMIT)
    with pytest.raises(ValueError):  # SnappyError is a ValueError
        kernels.decompress(CORRUPT_STREAMS[name], LIMIT)


@needs_native
@pytest.mark.parametrize("name", sorted(CORRUPT_STREAMS))
def test_backends_report_the_same_error(name):
    packed = CORRUPT_STREAMS[name]
    assert outcome(lambda: NATIVE.decompress(packed, LIMIT)) == outcome(lambda: PY.decompress(packed, LIMIT))


def test_every_truncation_raises(kernels):
    data = realistic_payload(40)
    packed = kernels.compress(data)
    for cut in range(len(packed)):
        with pytest.raises(SnappyError):
            kernels.decompress(packed[:cut], LIMIT)


def test_mutations_raise_only_snappy_error_and_finish_fast(kernels):
    rng = random.Random(11)
    seeds = [kernels.compress(d) for d in (realistic_payload(30), b"ab" * 500, bytes(range(256)) * 4)]
    seeds += [packed for packed, _ in VALID_STREAMS.values()]
    started = time.perf_counter()
    for _ in range(20000):
        buf = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            action = rng.random()
            if action < 0.6 and buf:
                buf[rng.randrange(len(buf))] = rng.randrange(256)
            elif action < 0.8:
                buf.insert(rng.randrange(len(buf) + 1), rng.randrange(256))
            elif buf:
                del buf[rng.randrange(len(buf)) :]
        try:
            out = kernels.decompress(bytes(buf), 1 << 20)
        except SnappyError:
            continue
        assert len(out) == _pysnappy.uncompressed_length(bytes(buf))
    assert time.perf_counter() - started < 60


# --- limits -----------------------------------------------------------------------------------


def test_declared_length_over_limit_refused(kernels):
    packed = kernels.compress(b"x" * 1000)
    assert kernels.decompress(packed, 1000) == b"x" * 1000
    with pytest.raises(SnappyError, match="exceeds the limit of 999"):
        kernels.decompress(packed, 999)


def test_over_limit_refused_before_decoding(kernels):
    # 100 MB declared by a 4.8 MB stream that could really produce it (copy-2
    # elements of 64 bytes each): refused at once, nothing allocated.
    bomb = varint(100_000_000) + literal(b"a") + copy2(1, 64) * 1_600_000
    started = time.perf_counter()
    with pytest.raises(SnappyError, match="exceeds the limit"):
        kernels.decompress(bomb, snappy.DEFAULT_MAX_LENGTH)
    assert time.perf_counter() - started < 0.5


def test_impossible_declared_length_refused(kernels):
    # 2**32-1 declared by a few hundred bytes: corrupt whatever the limit.
    bomb = varint(0xFFFFFFFF) + literal(b"a") + copy2(1, 64) * 64
    for limit in (snappy.DEFAULT_MAX_LENGTH, 1 << 40):
        with pytest.raises(SnappyError, match="larger than this input can expand to"):
            kernels.decompress(bomb, limit)


@pytest.mark.parametrize("copies", [0, 1, 2, 3, 50])
def test_most_expanding_streams_are_not_refused(kernels, copies):
    # The plausibility bound (64 bytes per 3 of input) must admit the densest
    # real streams: copy-2 elements of 64, and a final copy-1 of 11.
    for tail, extra in ((b"", 0), (copy1(1, 11), 11)):
        total = 1 + 64 * copies + extra
        packed = varint(total) + literal(b"a") + copy2(1, 64) * copies + tail
        assert kernels.decompress(packed, LIMIT) == b"a" * total
    assert _pysnappy.max_expansion(2) == 11


def test_max_compressed_length_native_matches():
    if NATIVE is None:
        pytest.skip("C accelerator not built")
    from promwrite._cext import lib

    for n in (0, 1, 6, 65536, 1 << 31, 0xFFFFFFFF):
        assert lib.pw_snappy_max_compressed_length(n) == _pysnappy.max_compressed_length(n)
    assert lib.pw_snappy_max_compressed_length(0x100000000) == 0


# --- the public module ------------------------------------------------------------------------


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview], ids=["bytes", "bytearray", "memoryview"])
def test_public_module_accepts_buffers(kernels, wrap):
    data = b"hello hello hello hello " * 50
    packed = kernels.compress(wrap(data))
    assert packed == kernels.compress(data)
    assert isinstance(packed, bytes)
    out = kernels.decompress(wrap(packed), LIMIT)
    assert out == data and isinstance(out, bytes)


def test_public_module_non_contiguous_memoryview(kernels):
    data = bytes(range(200)) * 10
    view = memoryview(data)[::2]
    assert kernels.compress(view) == kernels.compress(bytes(view))


def test_public_module():
    data = b"remote write " * 100
    assert snappy.decompress(snappy.compress(data)) == data
    assert snappy.decompress(memoryview(snappy.compress(bytearray(data)))) == data
    assert snappy.DEFAULT_MAX_LENGTH == 64 * 1024 * 1024
    assert snappy.SnappyError is SnappyError and issubclass(SnappyError, ValueError)
    with pytest.raises(SnappyError):
        snappy.decompress(varint(snappy.DEFAULT_MAX_LENGTH + 1) + literal(b"a") + copy2(1, 64) * 2_000_000)
    with pytest.raises(SnappyError):
        snappy.decompress(snappy.compress(data), max_length=10)


def test_error_messages_match_c():
    if NATIVE is None:
        pytest.skip("C accelerator not built")
    from promwrite._cext import ffi, lib

    for code, message in _pysnappy.MESSAGES.items():
        assert ffi.string(lib.pw_snappy_strerror(code)).decode() == message
