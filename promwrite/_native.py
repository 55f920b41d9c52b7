"""The native backend: kernels from the C accelerator (``promwrite._cext``).

Importing this module raises ImportError when the accelerator is not built,
which makes `_backend` fall back to the pure-Python kernels. Every function
here gives exactly the bytes and errors of its pure-Python twin.
"""

from __future__ import annotations

from typing import Union

from ._cext import ffi, lib
from ._pysnappy import too_long
from .errors import SnappyError

Buffer = Union[bytes, bytearray, memoryview]


def _entry(name: str):  # -> the C function `name` of the accelerator
    """A C entry point; ImportError (so: the Python backend) when the built accelerator predates it."""
    try:
        return getattr(lib, name)
    except AttributeError:
        raise ImportError(
            f"promwrite._cext is out of date (no {name}); rebuild it: pip install . (or python csrc/cffi_build.py)"
        ) from None


# ---------------------------------------------------------------- snappy ---
# csrc/snappy.c; twin of promwrite/_pysnappy.py.

_uninitialized = ffi.new_allocator(should_clear_after_alloc=False)


def _snappy_source(data: Buffer):  # -> cdata uint8_t[]
    try:
        return ffi.from_buffer("uint8_t[]", data)
    except (TypeError, ValueError, BufferError):  # e.g. a non-contiguous memoryview
        return ffi.from_buffer("uint8_t[]", bytes(data))


def _snappy_error(code: int) -> SnappyError:
    return SnappyError(ffi.string(lib.pw_snappy_strerror(code)).decode())


def compress(data: Buffer) -> bytes:
    """Snappy-compress `data` (block format) in C; the bytes _pysnappy emits."""
    src = _snappy_source(data)
    n = len(src)
    bound = lib.pw_snappy_max_compressed_length(n)
    if bound == 0:
        raise _snappy_error(lib.PW_SNAPPY_ETOOBIG)
    dst = _uninitialized("uint8_t[]", bound)
    written = lib.pw_snappy_compress(src, n, dst)
    if written == 0:
        raise MemoryError(ffi.string(lib.pw_snappy_strerror(lib.PW_SNAPPY_ENOMEM)).decode())
    return ffi.buffer(dst, written)[:]


def decompress(data: Buffer, max_length: int) -> bytes:
    """Decode a snappy block in C; SnappyError if corrupt, truncated, or over max_length."""
    src = _snappy_source(data)
    n = len(src)
    declared = ffi.new("uint64_t *")
    rc = lib.pw_snappy_uncompressed_length(src, n, declared)
    if rc != 0:
        raise _snappy_error(rc)
    total = declared[0]
    if total > max_length:
        raise too_long(total, max_length)
    if total == 0:
        dst = ffi.NULL
    else:
        dst = _uninitialized("uint8_t[]", total)
    rc = lib.pw_snappy_decompress(src, n, dst, total)
    if rc != 0:
        raise _snappy_error(rc)
    return ffi.buffer(dst, total)[:] if total else b""


# -------------------------------------------------------------- protobuf ---
# csrc/pbenc.c; twins of encode_labels / encode_request in _pyproto.py.
# The wrappers cross into C once per call, after a few bulk conversions (join,
# array, from_buffer). Whatever C does not take (a broken label set, odd
# arguments) goes to the Python kernel, which raises its exact error. Every
# size and count C is given is that of a buffer made or viewed here (bytes,
# array, from_buffer cdata), never a caller's len(), which an object may fake.
#
# Memory: each thread lends C a scratch bytearray, grown to what the last
# call wanted (up to _SCRATCH_MAX), so that big requests do not fault in fresh
# pages on every call; results are copied out of it into new bytes.

import threading as _threading  # noqa: E402
from array import array as _array  # noqa: E402
from typing import List as _List, Optional as _Optional, Sequence as _Sequence, Tuple as _Tuple  # noqa: E402

from . import _pyproto, names as _names  # noqa: E402
from .model import cmodel as _cmodel  # noqa: E402  # promwrite._cmodel, or None
from .errors import SeriesError  # noqa: E402

_SCRATCH_MAX = 16 << 20  # bytes of scratch a thread may keep between calls

_pb_encode_label_sets = lib.pw_encode_label_sets
_pb_encode_label_columns = lib.pw_encode_label_columns
_pb_encode_request = lib.pw_encode_request
_pb_free = lib.pw_pb_free
_new = ffi.new
_from_buffer = ffi.from_buffer
_buffer = ffi.buffer
_NULL = ffi.NULL
_PB_ESPLIT = lib.PW_PB_ESPLIT
_PB_EORDER = lib.PW_PB_EORDER
_PB_ETOOBIG = lib.PW_PB_ETOOBIG
_PB_ENOMEM = lib.PW_PB_ENOMEM
_LEN = lib.PW_PB_LEN
_FMT_LEN = lib.PW_PB_FMT_LEN
_ERR_SERIES = lib.PW_PB_ERR_SERIES
_ERR_SAMPLE = lib.PW_PB_ERR_SAMPLE
_WANTED = lib.PW_PB_WANTED
_OWNED = lib.PW_PB_OWNED
_INFO = f"size_t[{lib.PW_PB_INFO_LEN}]"
_SLOTS = (_INFO, _WANTED, _OWNED)
_REQUEST = (_SLOTS, (_ERR_SERIES, _ERR_SAMPLE), _LEN)
_NO_SCRATCH = (_NULL, 0)
_local = _threading.local()
_snappy_compress = compress  # encode_request's parameter `compress` hides it


def _take_scratch():  # -> (cdata uint8_t[] or NULL, its length)
    """This thread's scratch, marked in use (a nested call, e.g. from a signal handler, gets none)."""
    local = _local
    scratch = getattr(local, "scratch", _NO_SCRATCH)
    local.scratch = _NO_SCRATCH
    return scratch


def _give_back(scratch, wanted: int) -> None:
    if scratch[1] < wanted <= _SCRATCH_MAX:
        wanted += wanted >> 3  # some room for a slightly bigger request next time
        scratch = (_from_buffer("uint8_t[]", bytearray(wanted)), wanted)
    _local.scratch = scratch


def _int64s(seq: _Sequence[int]):  # -> cdata int64_t[]; OverflowError/TypeError unless all in [0, 2**63)
    if type(seq) is _array and seq.typecode == "q":  # already packed (C rejects negatives)
        return _from_buffer("int64_t[]", seq)
    return _from_buffer("int64_t[]", _array("Q", seq))  # 'Q' converts faster than 'q'; C rejects >= 2**63


def _run(kernel, args, slots, read):  # -> (0, read(result, info)) or (rc, info)
    """Calls kernel(*args, scratch, scratch_len, out, info) with this thread's scratch.

    `slots` is (info's cdata type, its WANTED slot, its OWNED slot). On rc 0,
    `read` copies the result out before a malloc'd one is freed.
    """
    info_type, wanted, owned = slots
    out = _new("uint8_t **")
    info = _new(info_type)
    scratch = _take_scratch()
    try:
        rc = kernel(*args, *scratch, out, info)
        if rc:
            return rc, info
        p = out[0]
        try:
            return 0, read(p, info)
        finally:
            if info[owned]:
                _pb_free(p)
    finally:
        _give_back(scratch, info[wanted])


def _as_bytes(data):  # -> bytes, or cdata over the buffer
    return data if type(data) is bytes else _from_buffer("uint8_t[]", data)


def _series_columns(extras, counts, values, timestamps):
    """What both request kernels take per series and sample, converted in bulk.

    (extras joined, their lengths or NULL, counts, values and timestamps as
    arrays, cdata over those two); TypeError, ValueError or OverflowError for
    what C does not take.
    """
    etext = b"".join(extras) if extras is not None else b""
    elens = _int64s(list(map(len, extras))) if etext else _NULL
    cnt = _int64s(counts)
    if type(values) is not _array or values.typecode != "d":
        values = _array("d", values)
    if type(timestamps) is not _array or timestamps.typecode != "q":
        timestamps = _array("q", timestamps)
    return etext, elens, cnt, values, timestamps, _from_buffer(values), _from_buffer(timestamps)


def _joined(p, info) -> _Tuple[bytes, "_array[int]"]:
    """A label kernel's result as (all sets' bytes, each set's length)."""
    n = info[_LEN]
    lengths = _array("q")
    lengths.frombytes(_buffer(p + n, info[_FMT_LEN]))
    return _buffer(p, n)[:], lengths


def _labels_done(rc: int, result):  # -> the result, or None for the caller's fallback
    if rc == 0:
        return result
    if rc == _PB_ENOMEM:
        raise MemoryError("promwrite: out of memory encoding labels")
    return None


def _request(kernel, cargs, proto, timestamps, args, python_kernel, native_kernel) -> bytes:
    """Runs a request kernel: its bytes, or what its rc calls for.

    `proto` is (the info slots for `_run`, the ERR_SERIES and ERR_SAMPLE slots,
    the LEN slot); `args` are the wrapper's arguments, `compress` last: the
    Python kernel takes them for whatever C refuses, and a request over
    snappy's limit is encoded plain by `native_kernel` and then compressed.
    """
    slots, (series_slot, sample_slot), len_slot = proto
    rc, result = _run(kernel, cargs, slots, lambda p, info: _buffer(p, info[len_slot])[:])
    if rc == 0:
        return result
    if rc == _PB_EORDER:
        j = result[sample_slot]
        problem = f"sample timestamps must increase: {timestamps[j]} comes after {timestamps[j - 1]}"
        raise SeriesError(result[series_slot], problem)
    if rc == _PB_ENOMEM:
        raise MemoryError("promwrite: out of memory encoding a request")
    if rc == _PB_ETOOBIG and args[-1]:  # compress, over snappy's limit: its own error
        return _snappy_compress(native_kernel(*args[:-1], False))
    return python_kernel(*args)


def _utf8_names() -> int:
    """The C label kernels' flag: 1 when any UTF-8 name is valid (promwrite.names)."""
    return int(_names.name_validation() == _names.UTF8)


def _encode_interleaved(names: _List[str], values: _List[str], counts: _Sequence[int]) -> _Tuple[bytes, "_array[int]"]:
    """`encode_labels` for strings that hold "\\0": C splits them by code-point lengths."""
    strings = [x for pair in zip(names, values) for x in pair]
    try:
        text = "".join(strings).encode("utf-8")
        lengths = _int64s(list(map(len, strings)))
        cnt = _int64s(counts)
    except (TypeError, ValueError, OverflowError):  # a non-str, a surrogate, an odd count
        return _pyproto.encode_labels(names, values, counts)
    args = (text, len(text), lengths, len(lengths), cnt, len(cnt), _utf8_names())
    result = _labels_done(*_run(_pb_encode_label_sets, args, _SLOTS, _joined))
    if result is not None:
        return result
    return _pyproto.encode_labels(names, values, counts)  # raises its SeriesError


def encode_labels(names: _List[str], values: _List[str], counts: _Sequence[int]) -> _Tuple[bytes, "_array[int]"]:
    """Encoded, sorted, validated label fields per set, in C (see `_backend.Kernels`).

    Names and values cross as two "\\0"-joined texts; a string holding "\\0"
    goes the slower way of code-point lengths, and whatever C refuses goes to
    the Python kernel, which words the error.
    """
    if type(names) is not list or type(values) is not list or len(names) != len(values):
        return _pyproto.encode_labels(names, values, counts)  # its ValueError, or its way with odd sequences
    try:
        ntext = "\0".join(names).encode("utf-8")
        vtext = "\0".join(values).encode("utf-8")
        cnt = _int64s(counts)
    except (TypeError, ValueError, OverflowError):
        return _pyproto.encode_labels(names, values, counts)
    args = (ntext, len(ntext), vtext, len(vtext), len(names), cnt, len(cnt), _utf8_names())
    result = _labels_done(*_run(_pb_encode_label_columns, args, _SLOTS, _joined))
    if result is not None:
        return result
    return _encode_interleaved(names, values, counts)


def encode_label_dicts(dicts: _List[dict]) -> _Optional[_Tuple[bytes, "_array[int]"]]:
    """`encode_labels` of label sets given as dicts, read from the dicts in C (see `_backend.Kernels`);
    None when C does not take them: the caller gathers lists for encode_labels, which words any error."""
    texts = _cmodel.label_texts(dicts) if _cmodel is not None else None
    if texts is None:
        return None
    ntext, vtext, n_labels, counts = texts
    cnt = _from_buffer("int64_t[]", counts)
    args = (ntext, len(ntext), vtext, len(vtext), n_labels, cnt, len(cnt), _utf8_names())
    return _labels_done(*_run(_pb_encode_label_columns, args, _SLOTS, _joined))


def encode_request(
    label_text: bytes,
    label_lengths: _Sequence[int],
    counts: _Sequence[int],
    values: _Sequence[float],
    timestamps: _Sequence[int],
    extras: _Optional[_Sequence[bytes]],
    metadata: bytes,
    compress: bool,
) -> bytes:
    """A serialized (and maybe compressed) prometheus.WriteRequest, in C (see `_backend.Kernels`)."""
    args = (label_text, label_lengths, counts, values, timestamps, extras, metadata, compress)
    try:
        llens = _int64s(label_lengths)
        ltext = _as_bytes(label_text)
        etext, elens, cnt, values, timestamps, vals, stamps = _series_columns(extras, counts, values, timestamps)
        meta = _from_buffer(metadata)
        n = len(llens)
        if len(cnt) != n or (extras is not None and len(extras) != n) or (elens is not _NULL and len(elens) != n):
            raise ValueError("lengths differ")
    except (TypeError, ValueError, OverflowError):  # whatever C does not take, Python words
        return _pyproto.encode_request(*args)
    cargs = (
        ltext, len(ltext), llens, cnt, n, vals, len(values), stamps, len(timestamps),
        etext, len(etext), elens, meta, len(meta), 1 if compress else 0,
    )  # fmt: skip
    return _request(_pb_encode_request, cargs, _REQUEST, timestamps, args, _pyproto.encode_request, encode_request)


# ------------------------------------------------------ remote write 2.0 ---
# csrc/pbenc2.c; twins of encode_symbols_v2 / encode_request_v2 in _pyproto.py,
# wrapped as the 1.0 kernels above are (bulk conversions, one crossing, the
# thread's scratch, and the Python kernel for whatever C does not take).

_pb2_encode_symbols = _entry("pw_encode_symbols_v2")  # csrc/pbenc2.c
_pb2_encode_request = _entry("pw_encode_request_v2")
_INFO2 = f"size_t[{lib.PW_PB2_INFO_LEN}]"
_LEN2 = lib.PW_PB2_LEN
_SYMBOLS_LEN2 = lib.PW_PB2_SYMBOLS_LEN
_REFS_LEN2 = lib.PW_PB2_REFS_LEN
_ERR_SERIES2 = lib.PW_PB2_ERR_SERIES
_ERR_SAMPLE2 = lib.PW_PB2_ERR_SAMPLE
_WANTED2 = lib.PW_PB2_WANTED
_OWNED2 = lib.PW_PB2_OWNED
_SLOTS2 = (_INFO2, _WANTED2, _OWNED2)
_REQUEST2 = (_SLOTS2, (_ERR_SERIES2, _ERR_SAMPLE2), _LEN2)


def encode_symbols_v2(
    label_text: bytes, label_lengths: _Sequence[int], strings: _Sequence[bytes]
) -> _Tuple[bytes, bytes, "_array[int]", "_array[int]"]:
    """The symbols table and label references of a v2 Request, in C (see `_backend.Kernels`)."""
    args = (label_text, label_lengths, strings)
    try:
        llens = _int64s(label_lengths)
        ltext = _as_bytes(label_text)
        stext = b"".join(strings)
        slens = _int64s(list(map(len, strings))) if strings else _NULL
    except (TypeError, ValueError, OverflowError):
        return _pyproto.encode_symbols_v2(*args)
    n_sets = len(llens)
    n_strings = len(slens) if slens is not _NULL else 0

    def read(p, info):
        data = _buffer(p, info[_LEN2])
        a = info[_SYMBOLS_LEN2]
        b = a + info[_REFS_LEN2]
        c = b + 8 * n_sets
        lengths = _array("q")
        lengths.frombytes(data[b:c])
        refs = _array("q")
        refs.frombytes(data[c:])
        return data[:a], data[a:b], lengths, refs

    cargs = (ltext, len(ltext), llens, n_sets, stext, len(stext), slens, n_strings)
    rc, result = _run(_pb2_encode_symbols, cargs, _SLOTS2, read)
    if rc == 0:
        return result
    if rc == _PB_ENOMEM:
        raise MemoryError("promwrite: out of memory interning strings")
    return _pyproto.encode_symbols_v2(*args)  # raises its ValueError


def encode_request_v2(
    symbols: bytes,
    refs_text: bytes,
    refs_lengths: _Sequence[int],
    counts: _Sequence[int],
    values: _Sequence[float],
    timestamps: _Sequence[int],
    starts: _Optional[_Sequence[int]],
    extras: _Optional[_Sequence[bytes]],
    compress: bool,
) -> bytes:
    """A serialized (and maybe compressed) io.prometheus.write.v2.Request, in C (see `_backend.Kernels`)."""
    args = (symbols, refs_text, refs_lengths, counts, values, timestamps, starts, extras, compress)
    try:
        rlens = _int64s(refs_lengths)
        rtext = _as_bytes(refs_text)
        stext = _as_bytes(symbols)
        etext, elens, cnt, values, timestamps, vals, stamps = _series_columns(extras, counts, values, timestamps)
        begins = _NULL
        if starts is not None:
            if type(starts) is not _array or starts.typecode != "q":
                starts = _array("q", starts)
            begins = _from_buffer(starts) if len(starts) else _NULL
        n = len(rlens)
        if (len(cnt) != n or (extras is not None and len(extras) != n) or (elens is not _NULL and len(elens) != n)
                or (starts is not None and len(starts) != n)):  # fmt: skip
            raise ValueError("lengths differ")
    except (TypeError, ValueError, OverflowError):  # whatever C does not take, Python words
        return _pyproto.encode_request_v2(*args)
    cargs = (
        stext, len(stext), rtext, len(rtext), rlens, cnt, n, vals, len(values), stamps, len(timestamps),
        begins, etext, len(etext), elens, 1 if compress else 0,
    )  # fmt: skip
    return _request(
        _pb2_encode_request, cargs, _REQUEST2, timestamps, args, _pyproto.encode_request_v2, encode_request_v2
    )


# -------------------------------------------------------------- decoding ---
# csrc/pbdec.c; twins of decode_v1 / decode_v2 in _pydecode.py. C checks the
# wire and fills flat vectors; here they become arrays (one copy each) and the
# distinct strings are decoded from one text (each ends with a NUL) in one or a few calls.

from itertools import chain as _chain  # noqa: E402

from . import _pydecode  # noqa: E402

_dec_v1 = _entry("pw_decode_v1")  # csrc/pbdec.c
_dec_v2 = _entry("pw_decode_v2")
_dec_free = lib.pw_decoded_free
_STRING_ENDS = lib.PW_DEC_STRING_ENDS
_VALUES = lib.PW_DEC_VALUES
_NON_ASCII = lib.PW_DEC_NON_ASCII  # the last vector: the others go to Decoded
_LIM_N = lib.PW_LIM_N


def _vector(out, i: int, typecode: str = "q") -> "_array":
    found = _array(typecode)
    n = out.len[i]
    if n:
        found.frombytes(_buffer(out.vec[i], 8 * n))
    return found


def _strings(out) -> _List[str]:
    """The strings of a decode, from its text: each followed by a NUL, in one or a few decodes and splits."""
    if not out.text_len:
        return []
    text = memoryview(_buffer(out.text, out.text_len))
    if out.nul_inside:  # a string holds a NUL too: cut the text at each string's NUL, by code points
        decoded, ends = str(text, "utf-8"), _vector(out, _STRING_ENDS)
        return [decoded[start : end - 1] for start, end in zip(_chain((0,), ends), ends)]
    non_ascii = _vector(out, _NON_ASCII)
    if not non_ascii:  # all ASCII: Latin-1 decodes it faster (the same characters)
        return str(text[:-1], "latin-1").split("\x00")
    if 16 * len(non_ascii) > out.len[_STRING_ENDS]:  # many not ASCII: all in one go
        strings = str(text, "utf-8").split("\x00")
        strings.pop()  # after the last NUL
        return strings
    strings, at = [], 0  # a few not ASCII: the ASCII runs between them as above
    for i in range(0, len(non_ascii), 2):
        start, end = non_ascii[i], non_ascii[i + 1]
        if start > at:
            strings += str(text[at : start - 1], "latin-1").split("\x00")
        strings.append(str(text[start:end], "utf-8"))
        at = end + 1
    if at < len(text):
        strings += str(text[at:-1], "latin-1").split("\x00")
    return strings


def _decode(kernel, python_kernel, data: Buffer, limits: _Sequence[int], seed: int) -> _pydecode.Decoded:
    if type(limits) is not _array or limits.typecode != "q":
        try:
            limits = _array("q", limits)
        except (TypeError, OverflowError):
            return python_kernel(data, limits, seed)
    if len(limits) != _LIM_N:  # C reads exactly that many: whatever else, Python takes
        return python_kernel(data, limits, seed)
    src = _snappy_source(data)
    lim = _from_buffer("int64_t[]", limits)
    out = _new("pw_decoded *")
    try:
        rc = kernel(src, len(src), lim, seed, out)
        if rc:
            raise _pydecode.error(rc, *out.err)
        strings = _strings(out)
        vectors = [_vector(out, i, "d" if i == _VALUES else "q") for i in range(_STRING_ENDS + 1, _NON_ASCII)]
    finally:
        _dec_free(out)
    return _pydecode.Decoded(strings, *vectors)


def decode_v1(data: Buffer, limits: _Sequence[int], seed: int = 0) -> _pydecode.Decoded:
    """A serialized prometheus.WriteRequest as columns, in C (see `_backend.Kernels`)."""
    return _decode(_dec_v1, _pydecode.decode_v1, data, limits, seed)


def decode_v2(data: Buffer, limits: _Sequence[int], seed: int = 0) -> _pydecode.Decoded:
    """A serialized io.prometheus.write.v2.Request as columns, in C (see `_backend.Kernels`)."""
    return _decode(_dec_v2, _pydecode.decode_v2, data, limits, seed)


# --------------------------------------------------------------- KERNELS ---


class _NativeKernels:
    """The C backend's kernels (see `_backend.Kernels`)."""

    name = "native"
    compress = staticmethod(compress)
    decompress = staticmethod(decompress)
    encode_labels = staticmethod(encode_labels)
    encode_label_dicts = staticmethod(encode_label_dicts)
    encode_request = staticmethod(encode_request)
    encode_symbols_v2 = staticmethod(encode_symbols_v2)
    encode_request_v2 = staticmethod(encode_request_v2)
    decode_v1 = staticmethod(decode_v1)
    decode_v2 = staticmethod(decode_v2)

    def __repr__(self) -> str:
        return "<promwrite backend 'native'>"


KERNELS = _NativeKernels()
