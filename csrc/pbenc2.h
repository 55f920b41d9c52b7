/* Protobuf encoding of io.prometheus.write.v2.Request (remote write 2.0).
 *
 * Twins of encode_symbols_v2 / encode_request_v2 in promwrite/_pyproto.py,
 * which are the reference: for every input both give identical bytes, and on
 * any input these refuse (a negative PW_PB_E* code from pbenc.h) the Python
 * wrapper re-runs the Python kernel to raise its exact error. They never
 * abort: every length read from the caller is checked against the buffer it
 * describes, and every size computed is checked for size_t overflow before
 * anything is allocated or written.
 *
 * Memory as in pbenc.h: the caller may lend a scratch buffer (NULL, 0 for
 * none); info[PW_PB2_WANTED] says how large a scratch would have held every
 * temporary and the result, and *out lies in the scratch unless
 * info[PW_PB2_OWNED] is 1: then it was malloc'd, free it with pw_pb_free.
 */
#ifndef PW_PBENC2_H
#define PW_PBENC2_H

#include <stddef.h>
#include <stdint.h>

#include "pbenc.h"

/* cffi:begin */
enum {                      /* slots of the info array (PW_PB2_INFO_LEN size_t) */
    PW_PB2_LEN = 0,         /* bytes of the result at *out */
    PW_PB2_SYMBOLS_LEN = 1, /* pw_encode_symbols_v2: bytes of the symbols fields */
    PW_PB2_REFS_LEN = 2,    /* pw_encode_symbols_v2: bytes of the labels_refs fields */
    PW_PB2_ERR_SERIES = 3,
    PW_PB2_ERR_SAMPLE = 4,
    PW_PB2_WANTED = 5,
    PW_PB2_OWNED = 6,
    PW_PB2_INFO_LEN = 7
};

/* The symbols table and label references of a Request.
 *
 * labels[0..labels_len) holds n_sets label sets, set i the next
 * label_lens[i] bytes (they must cover labels_len exactly, else ESPLIT), each
 * a sequence of prometheus.Label fields exactly as pw_encode_label_sets
 * writes them: 0x0a len (0x0a len name 0x12 len value), nothing else, every
 * length inside its field and varints of at most 10 bytes (else ESPLIT).
 * strings[0..strings_len) holds n_strings more strings, string k the next
 * string_lens[k] bytes (covering strings_len exactly, else ESPLIT).
 *
 * Interns "" first, then every label name and value in order, then the
 * strings, each distinct byte string once (index = order of first use). On
 * success *out holds, one after the other: the `repeated string symbols = 4`
 * fields (info[PW_PB2_SYMBOLS_LEN] bytes); per set its `labels_refs = 1`
 * packed field (nothing for an empty set; info[PW_PB2_REFS_LEN] bytes in
 * all); each set's field length as an int64 (n_sets); each string's index as
 * an int64 (n_strings); int64s in native byte order, unaligned.
 * info[PW_PB2_LEN] is the total. */
int pw_encode_symbols_v2(const uint8_t *labels, size_t labels_len, const int64_t *label_lens, size_t n_sets,
                         const uint8_t *strings, size_t strings_len, const int64_t *string_lens,
                         size_t n_strings,
                         uint8_t *scratch, size_t scratch_len,
                         uint8_t **out, size_t *info);

/* Encodes a Request: symbols[0..symbols_len) verbatim (the symbols fields),
 * then n_series `TimeSeries timeseries = 5` fields. Series i: its labels_refs
 * field refs[o .. o + ref_lens[i]) (the lengths must cover refs_len exactly,
 * else ESPLIT), counts[i] samples taken in order from values (IEEE doubles)
 * and timestamps (int64), each with start_timestamp = starts[i] (int64; NULL:
 * none) when that is not 0, then its extra fields extras[...extra_lens[i])
 * (extra_lens NULL: none, extras_len must be 0). Arrays of 8-byte items are
 * in native byte order at any alignment. The counts must add up to at most
 * n_values and n_timestamps, else ECOUNTS. Timestamps must be strictly
 * increasing within a series, else EORDER (series info[PW_PB2_ERR_SERIES],
 * sample info[PW_PB2_ERR_SAMPLE]). With compress non-zero the message is
 * snappy-compressed (pw_snappy_compress). On success *out holds
 * info[PW_PB2_LEN] bytes. */
int pw_encode_request_v2(const uint8_t *symbols, size_t symbols_len,
                         const uint8_t *refs, size_t refs_len, const int64_t *ref_lens,
                         const int64_t *counts, size_t n_series,
                         const void *values, size_t n_values,
                         const void *timestamps, size_t n_timestamps,
                         const void *starts,
                         const uint8_t *extras, size_t extras_len, const int64_t *extra_lens,
                         int compress,
                         uint8_t *scratch, size_t scratch_len,
                         uint8_t **out, size_t *info);
/* cffi:end */

#endif
