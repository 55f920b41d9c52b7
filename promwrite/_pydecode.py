"""The pure-Python decode kernels: a request's wire bytes to flat columns.

Twins of csrc/pbdec.c, step for step (see there and `_backend.Kernels`): the
same walk, the same counts against the limits at the same points, the same
errors. `promwrite.decoder` builds the model objects from the columns.
"""

from __future__ import annotations

import re
from array import array
from typing import Dict, Iterator, List, NamedTuple, Sequence, Tuple

from .errors import DecodeError, DecodeLimitError

# Indices of the limits (and counts) a kernel takes, as PW_LIM_* in csrc/pbdec.h.
SERIES, LABELS, SAMPLES, EXEMPLARS, HISTOGRAMS, BUCKETS, METADATA, COST = range(8)
LIMIT_NAMES = ("series", "labels", "samples", "exemplars", "histograms", "buckets", "metadata", "expansion")
_NOUNS = ("series", "label references", "samples", "exemplars", "histograms", "histogram buckets", "metadata entries")

# What the expansion limit counts per element, as COST_* in csrc/pbdec.c (see there):
# estimated bytes of the Python objects it becomes, raised to bound its decoding time.
COST_SERIES = 480
COST_LABEL_REF = 8
COST_PAIR = 80
COST_STRING = 64
COST_SAMPLE = 136
COST_EXEMPLAR = 320
COST_HISTOGRAM = 1000
COST_SPAN = 128
COST_BUCKET = 16
COST_METADATA = 160

# Error codes, as PW_DEC_E* in csrc/pbdec.h.
ENOMEM, ETRUNC_VARINT, EVARINT_64, EFIELD_0, ETRUNC_FIXED, ECLAIMS = -1, -2, -3, -4, -5, -6
EWIRE_TYPE, EUTF8, EPACKED_DOUBLES, EREF, EODD_REFS, ELIMIT = -7, -8, -9, -10, -11, -12
_WHAT = ("a series", "an exemplar", "metadata")
_FIXED = {
    ETRUNC_VARINT: "truncated varint",
    EVARINT_64: "varint over 64 bits",
    EFIELD_0: "field number 0",
    ETRUNC_FIXED: "truncated fixed-size field",
    EUTF8: "invalid UTF-8 in a string field",
    EPACKED_DOUBLES: "packed doubles of a length not a multiple of 8",
}


def error(code: int, a: int = 0, b: int = 0, c: int = 0) -> Exception:
    """The exception for a kernel's error code and its values (both kernels word errors here)."""
    if code in _FIXED:
        return DecodeError(_FIXED[code])
    if code == ECLAIMS:
        return DecodeError(f"field {a} claims {b} bytes, {c} are left")
    if code == EWIRE_TYPE:
        return DecodeError(f"unsupported wire type {a} (field {b})")
    if code == EREF:
        return DecodeError(f"{_WHAT[a]} refers to symbol {b}, but there are {c}")
    if code == EODD_REFS:
        return DecodeError(f"{_WHAT[a]} has an odd number of label references ({b})")
    if code == ELIMIT and a == COST:
        return DecodeLimitError(
            f"the request would take more than {b:,} bytes of memory decoded (see DecodeLimits.max_expansion)"
        )
    if code == ELIMIT:
        return DecodeLimitError(f"the request holds more than {b:,} {_NOUNS[a]} (DecodeLimits.max_{LIMIT_NAMES[a]})")
    if code == ENOMEM:
        return MemoryError("promwrite: out of memory decoding a request")
    return DecodeError(f"decoder error {code}")


class Decoded(NamedTuple):
    """A request as flat columns (the vectors of csrc/pbdec.h's pw_decoded; strings decoded)."""

    strings: List[str]
    pairs: "array[int]"  # name id, value id of each distinct label pair
    label_refs: "array[int]"  # pair ids of every series' labels
    series_labels: "array[int]"  # labels per series
    series_samples: "array[int]"  # samples per series
    values: "array[float]"
    stamps: "array[int]"
    starts: "array[int]"  # 2.0: each sample's start timestamp
    exemplars: "array[int]"  # rows: series, label count, value bits, timestamp
    exemplar_refs: "array[int]"
    histograms: "array[int]"  # rows: series, start, end in the input
    metadata: "array[int]"  # rows: 1.0 kind, name, help, unit; 2.0 series, kind, help, unit
    unsorted: "array[int]"  # each series whose label names do not strictly increase


_Field = Tuple[int, int, int, int]  # field, wire type, value (varint or fixed bits), end of a length-delimited field


def varint_at(buf: bytes, pos: int, end: int) -> Tuple[int, int]:
    """The varint at buf[pos] and the position after it."""
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise error(ETRUNC_VARINT)
        byte = buf[pos]
        pos += 1
        if shift == 63 and byte > 1:
            raise error(EVARINT_64)
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def field_at(buf: bytes, pos: int, end: int) -> Tuple[int, int, int, int, int]:
    """The field at buf[pos] (pos < end) as `fields` gives it, and the position after it."""
    key = buf[pos]
    if key < 0x80:  # one-byte keys and lengths (nearly all) read inline
        pos += 1
    else:
        key, pos = varint_at(buf, pos, end)
    if key < 8:
        raise error(EFIELD_0)
    wt = key & 7
    if wt == 2:
        if pos < end and buf[pos] < 0x80:
            size = buf[pos]
            pos += 1
        else:
            size, pos = varint_at(buf, pos, end)
        if size > end - pos:
            raise error(ECLAIMS, key >> 3, size, end - pos)
        return key >> 3, 2, pos, pos + size, pos + size
    if wt == 0:
        val, pos = varint_at(buf, pos, end)
        return key >> 3, 0, val, pos, pos
    if wt == 1 or wt == 5:
        size = 8 if wt == 1 else 4
        if end - pos < size:
            raise error(ETRUNC_FIXED)
        return key >> 3, wt, int.from_bytes(buf[pos : pos + size], "little"), pos + size, pos + size
    raise error(EWIRE_TYPE, wt, key >> 3)


_ENDS_VARINT = bytes(range(0x80, 0x100))  # deleted, these leave one byte per varint
_LONG_VARINT = re.compile(rb"[\x80-\xff]{9}")


def packed_varints(buf: bytes, pos: int, end: int) -> int:
    """How many varints buf[pos:end] packs, each checked."""
    packed = buf[pos:end]
    if packed[-1:] < b"\x80" and not _LONG_VARINT.search(packed):  # all well formed: count their last bytes
        return len(packed.translate(None, _ENDS_VARINT))
    n = 0
    while pos < end:
        _, pos = varint_at(buf, pos, end)
        n += 1
    return n


def fields(buf: bytes, pos: int, end: int) -> Iterator[_Field]:
    """(field, wire type, value, end) of each field in buf[pos:end]; for a
    length-delimited field, value is where its bytes start."""
    while pos < end:
        key = buf[pos]
        size = buf[pos + 1] if pos + 1 < end else 0x80
        if 8 <= key < 0x80 and key & 7 == 2 and size < 0x80 and size <= end - pos - 2:
            pos += 2 + size  # field_at() inline: a one-byte key and length (nearly every field)
            yield key >> 3, 2, pos - size, pos
        else:
            field, wt, val, stop, pos = field_at(buf, pos, end)
            yield field, wt, val, stop


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


class _Walk:
    """One decode: the columns being filled, the string and pair tables, the counts."""

    def __init__(self, buf: bytes, limits: Sequence[int]) -> None:
        self.buf = buf
        self.limits = list(limits)
        self.counts = [0] * 8
        self.strings: List[str] = []
        self.string_ids: Dict[bytes, int] = {}
        self.pair_ids: Dict[Tuple[int, int], int] = {}
        self.label_reads: Dict[bytes, int] = {}  # a label's bytes -> its pair id
        self.metadata_reads: Dict[bytes, Tuple[int, ...]] = {}  # 1.0 metadata's bytes -> its row
        self.out = Decoded(self.strings, *([] for _ in range(12)))  # lists (values as bits) until done()

    def done(self) -> Decoded:
        values = array("d")
        values.frombytes(array("q", self.out.values).tobytes())
        return Decoded(self.strings, *(values if column is self.out.values else array("q", column)
                                       for column in self.out[1:]))  # fmt: skip

    def charge(self, what: int, n: int, cost: int) -> None:
        counts, limits = self.counts, self.limits
        if what >= 0:
            if n > limits[what] - counts[what]:
                raise error(ELIMIT, what, limits[what])
            counts[what] += n
        if cost > limits[COST] - counts[COST]:
            raise error(ELIMIT, COST, limits[COST])
        counts[COST] += cost

    def add_string(self, start: int, end: int) -> int:
        try:
            text = str(self.buf[start:end], "utf-8")
        except UnicodeDecodeError:
            raise error(EUTF8) from None
        top = 0 if text.isascii() else ord(max(text))
        width = 1 if top < 0x100 else 2 if top < 0x10000 else 4
        self.charge(-1, 0, COST_STRING + width * len(text))
        self.strings.append(text)
        return len(self.strings) - 1

    def intern_string(self, start: int, end: int) -> int:
        if start == end:
            return 0
        raw = self.buf[start:end]
        found = self.string_ids.get(raw)
        if found is None:
            found = self.string_ids[raw] = self.add_string(start, end)
        return found

    def intern_pair(self, name: int, value: int) -> int:
        key = (name, value)
        found = self.pair_ids.get(key)
        if found is None:
            self.charge(-1, 0, COST_PAIR)
            found = self.pair_ids[key] = len(self.pair_ids)
            self.out.pairs.extend(key)
        return found

    def note_order(self, series: int, count: int) -> None:
        refs, pairs, strings = self.out.label_refs, self.out.pairs, self.strings
        for k in range(len(refs) - count + 1, len(refs)):
            if strings[pairs[2 * refs[k - 1]]] >= strings[pairs[2 * refs[k]]]:
                self.out.unsorted.append(series)
                return

    def check_histogram(self, pos: int, end: int) -> None:
        buf, counts, limits = self.buf, self.counts, self.limits
        while pos < end:
            field, wt, val, stop, pos = field_at(buf, pos, end)
            if field == 11 or field == 8:  # a span
                if wt != 2:
                    continue
                if val != stop:
                    for _ in fields(buf, val, stop):
                        pass
                n, cost = 1, COST_SPAN
            elif field == 9 or field == 12:  # deltas
                n = 1 if wt == 0 else 0
                if wt == 2:
                    n = packed_varints(buf, val, stop)
                cost = n * COST_BUCKET
            elif field in (10, 13, 16):  # counts, custom values
                n = 1 if wt == 1 else 0
                if wt == 2:
                    if (stop - val) % 8:
                        raise error(EPACKED_DOUBLES)
                    n = (stop - val) // 8
                cost = n * COST_BUCKET
            else:
                continue
            if n <= limits[BUCKETS] - counts[BUCKETS] and cost <= limits[COST] - counts[COST]:
                counts[BUCKETS] += n  # charge() inline: a histogram may hold many spans
                counts[COST] += cost
            else:
                self.charge(BUCKETS, n, cost)

    def read_sample(self, pos: int, end: int, v2: bool) -> None:
        """Counts a sample and reads its value bits, timestamp and (2.0) start timestamp."""
        counts, limits = self.counts, self.limits
        if counts[SAMPLES] < limits[SAMPLES] and COST_SAMPLE <= limits[COST] - counts[COST]:
            counts[SAMPLES] += 1  # charge() inline: a request may hold many samples
            counts[COST] += COST_SAMPLE
        else:
            self.charge(SAMPLES, 1, COST_SAMPLE)
        buf = self.buf
        value = ts = start = 0
        stop = pos  # an empty sample: all zero
        if pos < end and buf[pos] == 0x09 and end - pos > 10 and buf[pos + 9] == 0x10:
            ts, stop = varint_at(buf, pos + 10, end)  # the usual sample: value, then timestamp
            value = int.from_bytes(buf[pos + 1 : pos + 9], "little")
        if stop != end:
            value = ts = 0
            for field, wt, val, _ in fields(buf, pos, end):
                if field == 1 and wt == 1:
                    value = val
                elif field == 2 and wt == 0:
                    ts = val
                elif v2 and field == 3 and wt == 0:
                    start = val
        out = self.out
        out.values.append(value - (1 << 64) if value >= 1 << 63 else value)  # bits, read as doubles when done
        out.stamps.append(ts - (1 << 64) if ts >= 1 << 63 else ts)  # _signed() inline: per sample
        if v2:
            out.starts.append(_signed(start))


# ---------------------------------------------------------------- 1.0 ---


class _WalkV1(_Walk):
    def label(self, pos: int, end: int, into: List[int]) -> None:
        counts, limits = self.counts, self.limits
        if counts[LABELS] < limits[LABELS] and COST_LABEL_REF <= limits[COST] - counts[COST]:
            counts[LABELS] += 1  # charge() inline: a request may hold many labels
            counts[COST] += COST_LABEL_REF
        else:
            self.charge(LABELS, 1, COST_LABEL_REF)
        raw = self.buf[pos:end]
        found = self.label_reads.get(raw)  # read before: its strings and pair are known, nothing more to charge
        if found is None:
            found = self.label_reads[raw] = self.read_label(pos, end)
        into.append(found)

    def read_label(self, pos: int, end: int) -> int:
        buf = self.buf
        if end - pos >= 4 and buf[pos] == 0x0A and buf[pos + 1] < 0x80:  # the usual: name, then value
            mid = pos + 2 + buf[pos + 1]
            if mid + 2 <= end and buf[mid] == 0x12 and buf[mid + 1] == end - mid - 2 and buf[mid + 1] < 0x80:
                return self.intern_pair(self.intern_string(pos + 2, mid), self.intern_string(mid + 2, end))
        name = value = 0
        for field, wt, val, stop in fields(buf, pos, end):
            if wt == 2 and (field == 1 or field == 2):
                text = self.intern_string(val, stop)
                if field == 1:
                    name = text
                else:
                    value = text
        return self.intern_pair(name, value)

    def exemplar(self, pos: int, end: int, series: int) -> None:
        buf = self.buf
        labels = value = ts = 0
        refs = self.out.exemplar_refs
        while pos < end:
            if buf[pos] == 0x0A and pos + 1 < end and buf[pos + 1] < 0x80 and buf[pos + 1] <= end - pos - 2:
                val = pos + 2  # a label of a one-byte length, as series() reads it
                pos = val + buf[pos + 1]
                self.label(val, pos, refs)
                labels += 1
                continue
            field, wt, val, stop, pos = field_at(buf, pos, end)
            if field == 1 and wt == 2:
                self.label(val, stop, refs)
                labels += 1
            elif field == 2 and wt == 1:
                value = val
            elif field == 3 and wt == 0:
                ts = val
        self.out.exemplars.extend((series, labels, _signed(value), _signed(ts)))

    def series(self, pos: int, end: int) -> None:
        out, buf, refs = self.out, self.buf, self.out.label_refs
        series = len(out.series_labels)
        labels = samples = 0
        while pos < end:
            key = buf[pos]
            if (key == 0x0A or key == 0x12) and pos + 1 < end and buf[pos + 1] < 0x80 and buf[pos + 1] <= end - pos - 2:
                field, val = key >> 3, pos + 2  # a label or sample of a one-byte length: field_at() inline
                stop = pos = val + buf[pos + 1]
            else:
                field, wt, val, stop, pos = field_at(buf, pos, end)
                if wt != 2:
                    continue
            if field == 1:
                self.label(val, stop, refs)
                labels += 1
            elif field == 2:
                self.read_sample(val, stop, False)
                samples += 1
            elif field == 3:
                self.charge(EXEMPLARS, 1, COST_EXEMPLAR)
                self.exemplar(val, stop, series)
            elif field == 4:
                self.charge(HISTOGRAMS, 1, COST_HISTOGRAM)
                self.check_histogram(val, stop)
                out.histograms.extend((series, val, stop))
        if labels > 1:
            self.note_order(series, labels)
        out.series_labels.append(labels)
        out.series_samples.append(samples)

    def metadata(self, pos: int, end: int) -> None:
        raw = self.buf[pos:end]
        found = self.metadata_reads.get(raw)  # read before: its strings are known, nothing more to charge
        if found is None:
            kind = 0
            text = [0, 0, 0]  # family name, help, unit
            for field, wt, val, stop in fields(self.buf, pos, end):
                if field == 1 and wt == 0:
                    kind = val
                elif wt == 2 and field in (2, 4, 5):
                    text[0 if field == 2 else 1 if field == 4 else 2] = self.intern_string(val, stop)
            found = self.metadata_reads[raw] = (_signed(kind), *text)
        self.out.metadata.extend(found)

    def run(self) -> Decoded:
        self.strings.append("")
        buf, counts, limits = self.buf, self.counts, self.limits
        known, rows = self.metadata_reads, self.out.metadata
        for field, wt, val, stop in fields(buf, 0, len(buf)):
            if field == 1 and wt == 2:
                self.charge(SERIES, 1, COST_SERIES)
                self.series(val, stop)
            elif field == 3 and wt == 2:
                found = known.get(buf[val:stop])
                if found is None or counts[METADATA] >= limits[METADATA] or counts[COST] + COST_METADATA > limits[COST]:
                    self.charge(METADATA, 1, COST_METADATA)
                    self.metadata(val, stop)
                else:  # metadata read before, within the limits: inline
                    counts[METADATA] += 1
                    counts[COST] += COST_METADATA
                    rows += found
        return self.done()


def decode_v1(data: bytes, limits: Sequence[int], seed: int = 0) -> Decoded:
    """A serialized prometheus.WriteRequest as columns (see `_backend.Kernels`); `seed` is unused here."""
    return _WalkV1(bytes(data), limits).run()


# ---------------------------------------------------------------- 2.0 ---


class _WalkV2(_Walk):
    def read_refs(self, wt: int, val: int, stop: int, refs: List[int]) -> None:
        if wt == 0:
            refs.append(val & 0xFFFFFFFF)
        elif wt == 2:
            buf = self.buf
            packed = buf[val:stop]
            if packed.isascii():  # every reference one byte (symbols below 128: the usual)
                refs += packed
                return
            while val < stop:
                ref, val = varint_at(buf, val, stop)
                refs.append(ref & 0xFFFFFFFF)

    def check_ref(self, what: int, ref: int) -> None:
        if ref >= len(self.strings):
            raise error(EREF, what, ref, len(self.strings))

    def ref_pairs(self, what: int, refs: List[int], into: List[int]) -> None:
        n = len(refs)
        if n % 2:
            raise error(EODD_REFS, what, n)
        counts, limits, pairs = self.counts, self.limits, n // 2
        if (n and max(refs) < len(self.strings) and pairs <= limits[LABELS] - counts[LABELS]
                and pairs * (COST_LABEL_REF + COST_PAIR) <= limits[COST] - counts[COST]):  # fmt: skip
            counts[LABELS] += pairs  # no error possible: the loop below in bulk
            counts[COST] += pairs * COST_LABEL_REF
            keys = list(zip(refs[0::2], refs[1::2]))
            ids = list(map(self.pair_ids.get, keys))
            if None in ids:
                intern = self.intern_pair
                ids = [intern(*key) if found is None else found for key, found in zip(keys, ids)]
            into += ids
            return
        for i in range(0, n, 2):
            self.check_ref(what, refs[i])
            self.check_ref(what, refs[i + 1])
            self.charge(LABELS, 1, COST_LABEL_REF)
            into.append(self.intern_pair(refs[i], refs[i + 1]))

    def exemplar(self, pos: int, end: int, series: int) -> None:
        refs: List[int] = []
        value = ts = 0
        for field, wt, val, stop in fields(self.buf, pos, end):
            if field == 1:
                self.read_refs(wt, val, stop, refs)
            elif field == 2 and wt == 1:
                value = val
            elif field == 3 and wt == 0:
                ts = val
        self.ref_pairs(1, refs, self.out.exemplar_refs)
        self.out.exemplars.extend((series, len(refs) // 2, _signed(value), _signed(ts)))

    def metadata(self, pos: int, end: int, series: int) -> None:
        raw = self.buf[pos:end]
        found = self.metadata_reads.get(raw)  # read before: its references are known good
        if found is None:
            kind = 0
            refs = [0, 0]  # help, unit
            for field, wt, val, _ in fields(self.buf, pos, end):
                if field == 1 and wt == 0:
                    kind = val
                elif field in (3, 4) and wt == 0:
                    refs[field - 3] = val & 0xFFFFFFFF
            self.check_ref(2, refs[0])
            self.check_ref(2, refs[1])
            found = self.metadata_reads[raw] = (_signed(kind), *refs)
        self.out.metadata.extend((series, *found))

    def series(self, pos: int, end: int, series: int) -> None:
        out, buf = self.out, self.buf
        refs: List[int] = []
        samples = 0
        labels_before = len(out.label_refs)
        while pos < end:
            field, wt, val, stop, pos = field_at(buf, pos, end)
            if field == 1:
                self.read_refs(wt, val, stop, refs)
                continue
            if wt != 2:
                continue
            if field == 2:
                self.read_sample(val, stop, True)
                if samples > 0 and out.starts[-1] != out.starts[-2]:
                    self.charge(-1, 0, COST_SERIES)
                samples += 1
            elif field == 3:
                self.charge(HISTOGRAMS, 1, COST_HISTOGRAM + COST_SERIES)
                self.check_histogram(val, stop)
                out.histograms.extend((series, val, stop))
            elif field == 4:
                self.charge(EXEMPLARS, 1, COST_EXEMPLAR)
                self.exemplar(val, stop, series)
            elif field == 5:
                self.charge(METADATA, 1, COST_METADATA)
                self.metadata(val, stop, series)
        self.ref_pairs(0, refs, out.label_refs)
        if len(refs) > 2:
            self.note_order(series, len(refs) // 2)
        out.series_labels.append(len(out.label_refs) - labels_before)
        out.series_samples.append(samples)

    def run(self) -> Decoded:
        buf, counts, limits, strings = self.buf, self.counts, self.limits, self.strings
        spans = []
        for field, wt, val, stop in fields(buf, 0, len(buf)):
            if field == 4 and wt == 2:
                text = buf[val:stop]
                if text.isascii() and COST_STRING + len(text) <= limits[COST] - counts[COST]:
                    counts[COST] += COST_STRING + len(text)  # add_string() inline, for ASCII
                    strings.append(text.decode("ascii"))
                else:
                    self.add_string(val, stop)
            elif field == 5 and wt == 2:
                self.charge(SERIES, 1, COST_SERIES)
                spans.append((val, stop))
        for index, (start, end) in enumerate(spans):
            self.series(start, end, index)
        return self.done()


def decode_v2(data: bytes, limits: Sequence[int], seed: int = 0) -> Decoded:
    """A serialized io.prometheus.write.v2.Request as columns (see `_backend.Kernels`)."""
    return _WalkV2(bytes(data), limits).run()
