"""Backend choice: the C accelerator or pure Python, chosen once at import.

A backend is a set of *kernels*: the few bulk operations that dominate the cost
of a write (label encoding, request framing, remote write 2.0's string
interning and framing, snappy) or of a decode (checking and flattening a
request). `codec` and `snappy` hold
the logic around them and call whichever set was chosen here. Both sets produce
byte-identical output; the tests run every codec test against each.

`PROMWRITE_BACKEND` picks: unset or ``auto`` (native when built, else python),
``python`` (force the fallback), ``native`` (a missing accelerator is an
ImportError, for deployments that must not silently run slow). Importing never
warns: `reason` says in a sentence why the backend was chosen, on demand.
"""

from __future__ import annotations

import os
from array import array
from typing import TYPE_CHECKING, List, Optional, Protocol, Sequence, Tuple

if TYPE_CHECKING:
    from ._pydecode import Decoded

__all__ = ["Kernels", "available", "kernels", "name", "reason"]


class Kernels(Protocol):
    """What a backend provides. Every function is bulk: one call per request.

    encode_labels(names, values, counts) -> (bytes, array 'q')
        `names` and `values` are the flat lists of all labels of a request's
        label sets, `counts[i]` the number of labels of set i (label k is
        (names[k], values[k])). Returns the encoded ``repeated Label labels =
        1`` fields of a prometheus.TimeSeries for every set, one after the
        other, and the length of each (each label ``0x0a len <name field>
        <value field>``, sorted by name: by code point, which is UTF-8 byte
        order); encode_request takes both as they are. Raises errors.SeriesError(i,
        problem) for the first set i that is invalid: a name or value not a
        str or not encodable as UTF-8, an empty name, a name not matching
        ``[a-zA-Z_][a-zA-Z0-9_]*``, a duplicate name, an empty value, no
        ``__name__``, a ``__name__`` value not matching
        ``[a-zA-Z_:][a-zA-Z0-9_:]*`` (the two patterns only under the legacy
        rules of `promwrite.names`, read per call; under "utf-8" any
        non-empty name is valid). (The native backend re-runs the Python
        kernel to word the error, so both say the same.)

    encode_label_dicts(dicts) -> (bytes, array 'q') or None  [optional]
        encode_labels of label sets given as a list of dicts, read without
        gathering lists first; None when the backend does not take them (then
        the codec gathers the lists for encode_labels, which words any error).
        Only the native backend has it.
    encode_request(label_text, label_lengths, counts, values, timestamps,
                   extras, metadata, compress) -> bytes
        The serialized prometheus.WriteRequest of len(label_lengths) series.
        Series i has the next label_lengths[i] bytes of `label_text` as its
        label fields (from encode_labels), counts[i] samples taken in order
        from the packed arrays `values` (array 'd') and `timestamps` (array
        'q'), then extras[i] appended verbatim (already encoded exemplar and
        histogram fields; `extras` is None when no series has any). `metadata`
        is appended verbatim after all series (encoded WriteRequest field 3
        entries). Raises errors.SeriesError(i, problem) when the timestamps of
        series i are not strictly increasing. With `compress` true the result
        is a snappy block of those bytes: the C kernel's as `compress` below
        would make it, the Python kernel's its own stream (`_pystream`), which
        any snappy decoder reads to the same bytes.

    encode_symbols_v2(label_text, label_lengths, strings)
            -> (symbols, refs_text, refs_lengths, string_refs)
        Remote write 2.0: interns the strings of a request. `label_text` and
        `label_lengths` are encode_labels' result (each set a sequence of
        prometheus.Label fields exactly as encode_labels writes them, else
        ValueError); `strings` more strings (bytes: exemplar labels, metadata
        help and unit). Indexes "" first, then every label name and value in
        order (name before value), then each of `strings`, each distinct
        string once, in order of first use. Returns the encoded ``repeated
        string symbols = 4`` fields of an io.prometheus.write.v2.Request;
        per set its packed ``labels_refs = 1`` field (nothing for an empty
        set), joined, and the length of each (array 'q'); the index of each
        of `strings` (array 'q').

    encode_request_v2(symbols, refs_text, refs_lengths, counts, values,
                      timestamps, starts, extras, compress) -> bytes
        The serialized io.prometheus.write.v2.Request: `symbols` verbatim,
        then len(refs_lengths) ``TimeSeries timeseries = 5`` fields. Series i
        has the next refs_lengths[i] bytes of `refs_text` (its labels_refs
        field), counts[i] samples from `values`/`timestamps` as in
        encode_request, each with ``start_timestamp = 3`` = starts[i] unless
        that is 0 (`starts`: array 'q' or None), then extras[i] verbatim
        (histogram, exemplar and metadata fields; None when no series has
        any). Timestamp order and `compress` as for encode_request.

    decode_v1(data, limits, seed) -> _pydecode.Decoded
    decode_v2(data, limits, seed) -> _pydecode.Decoded
        A serialized prometheus.WriteRequest (io.prometheus.write.v2.Request)
        checked and flattened: every distinct string once (decoded), every
        distinct label pair once (string ids), per series its label pair ids
        and sample count, samples as arrays, exemplars, histograms (byte
        ranges of checked messages) and metadata as rows, the series whose
        label names are not sorted. `limits` (8 ints, `_pydecode` order:
        series, labels, samples, exemplars, histograms, buckets, metadata,
        estimated bytes of the objects to build) are counted as the walk goes;
        `seed` keys hash tables. Raises DecodeError (DecodeLimitError over a
        limit) worded by `_pydecode.error`: both kernels give equal columns or
        the same error for every input.

    compress(data) -> bytes, decompress(data, max_length) -> bytes
        Snappy block format. decompress raises errors.SnappyError (a
        ValueError) on corrupt or truncated input, and when the declared length
        exceeds max_length, before allocating.
    """

    name: str

    def encode_labels(
        self, names: Sequence[str], values: Sequence[str], counts: Sequence[int]
    ) -> Tuple[bytes, "array[int]"]: ...

    def encode_request(
        self,
        label_text: bytes,
        label_lengths: Sequence[int],
        counts: Sequence[int],
        values: Sequence[float],
        timestamps: Sequence[int],
        extras: Optional[Sequence[bytes]],
        metadata: bytes,
        compress: bool,
    ) -> bytes: ...

    def encode_symbols_v2(
        self, label_text: bytes, label_lengths: Sequence[int], strings: Sequence[bytes]
    ) -> Tuple[bytes, bytes, "array[int]", "array[int]"]: ...

    def encode_request_v2(
        self,
        symbols: bytes,
        refs_text: bytes,
        refs_lengths: Sequence[int],
        counts: Sequence[int],
        values: Sequence[float],
        timestamps: Sequence[int],
        starts: Optional[Sequence[int]],
        extras: Optional[Sequence[bytes]],
        compress: bool,
    ) -> bytes: ...

    def decode_v1(self, data: bytes, limits: Sequence[int], seed: int) -> "Decoded": ...

    def decode_v2(self, data: bytes, limits: Sequence[int], seed: int) -> "Decoded": ...

    def compress(self, data: bytes) -> bytes: ...

    def decompress(self, data: bytes, max_length: int) -> bytes: ...


def _load_native() -> Tuple[Optional[Kernels], Optional[ImportError]]:
    try:
        from . import _native
    except ImportError as exc:
        return None, exc
    return _native.KERNELS, None


def _load_python() -> Kernels:
    from . import _pyproto

    return _pyproto.KERNELS


def available() -> List[Kernels]:
    """Every backend that can run here, python first (for tests and benchmarks)."""
    found = [_load_python()]
    native, _ = _load_native()
    if native is not None:
        found.append(native)
    return found


def _why_not_native(error: ImportError) -> str:
    """Why the C accelerator did not import, and how to get it, as one sentence."""
    missing = error.name if isinstance(error, ModuleNotFoundError) else None
    if missing == "_cffi_backend":
        return (
            "the C accelerator is built but cffi, which it needs at run time, is not installed;"
            " for the C backend: pip install cffi (or install promwrite[native])"
        )
    if missing != f"{__package__}._cext":
        return f"the C accelerator did not import ({error})"
    package_dir = os.path.dirname(os.path.abspath(__file__))
    checkout = os.path.dirname(package_dir)
    if os.path.isfile(os.path.join(checkout, "setup.py")) and os.path.isdir(os.path.join(checkout, "csrc")):
        return (
            f"promwrite was imported from the source folder {package_dir}, where no C module is built"
            " (`python -m promwrite` run inside a checkout imports that folder, not the installed package);"
            " for the C backend: run the installed `promwrite` command, or run from another directory,"
            " or build in place with `python setup.py build_ext --inplace`"
        )
    return (
        "the C accelerator was not built when promwrite was installed (no C compiler or no cffi at"
        " build time); for the C backend: install a C compiler, then"
        " pip install --force-reinstall --no-cache-dir 'promwrite[native]'"
    )


def _choose() -> Tuple[Kernels, str]:
    """The backend PROMWRITE_BACKEND asks for, and why it was chosen."""
    policy = os.environ.get("PROMWRITE_BACKEND", "auto").strip().lower() or "auto"
    if policy == "python":
        return _load_python(), "PROMWRITE_BACKEND=python forces the pure-Python backend; unset it for the C accelerator"
    if policy not in ("auto", "native"):
        raise ImportError(f"PROMWRITE_BACKEND={policy!r}: expected 'auto', 'native' or 'python'")
    native, error = _load_native()
    if native is not None:
        return native, "the C accelerator is built and imports"
    assert error is not None
    why = _why_not_native(error)
    if policy == "native":
        raise ImportError(f"PROMWRITE_BACKEND=native requires the C accelerator: {why}")
    return _load_python(), why


#: `kernels` run the codec; `reason` says in a sentence why they were chosen (and, for
#: python, how to get the C accelerator).
kernels, reason = _choose()
name: str = kernels.name
