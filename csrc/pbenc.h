/* Protobuf encoding of prometheus.WriteRequest: promwrite's native kernels.
 *
 * Twins of encode_label_sets / encode_request in promwrite/_pyproto.py, which
 * are the reference: for every valid input both give identical bytes. On any
 * input they do not take (a broken label set, inconsistent counts), these
 * return a negative PW_PB_E* code and the Python wrapper (promwrite/_native.py)
 * re-runs the Python kernel to raise its exact error. They never abort: every
 * length read from the caller is checked against the buffer it describes, and
 * every size computed is checked for size_t overflow before anything is
 * allocated or written.
 *
 * Memory: the caller may lend a scratch buffer (scratch, scratch_len; NULL, 0
 * for none). Temporaries and the result are placed in it when they fit, else
 * malloc'd. info[PW_PB_WANTED] says how large a scratch would have held them
 * all (to grow it for next time), and the result *out lies in the scratch
 * unless info[PW_PB_OWNED] is 1: then it was malloc'd and the caller frees it
 * with pw_pb_free. *out is a valid pointer whenever the call succeeds.
 */
#ifndef PW_PBENC_H
#define PW_PBENC_H

#include <stddef.h>
#include <stdint.h>

/* cffi:begin */
enum {
    PW_PB_OK = 0,
    PW_PB_EINVALID = -1,  /* label set info[PW_PB_ERR_SERIES] breaks a rule (name, duplicate,
                             value, __name__) */
    PW_PB_ESPLIT = -2,    /* the text does not split into the declared strings (a separator in a
                             string, lengths past the end or short of it) */
    PW_PB_ECOUNTS = -3,   /* a count is negative, or the counts do not add up to the strings or
                             the samples */
    PW_PB_EORDER = -4,    /* in series info[PW_PB_ERR_SERIES], sample info[PW_PB_ERR_SAMPLE] (an
                             index into values/timestamps) is not after the one before */
    PW_PB_ETOOBIG = -5,   /* a size does not fit a size_t, or the output is over snappy's limit */
    PW_PB_ENOMEM = -6
};

enum {                    /* slots of the info array (PW_PB_INFO_LEN size_t) */
    PW_PB_LEN = 0,        /* bytes of the result at *out */
    PW_PB_FMT_LEN = 1,    /* label kernels: bytes of the int64 set lengths after them */
    PW_PB_ERR_SERIES = 2,
    PW_PB_ERR_SAMPLE = 3,
    PW_PB_WANTED = 4,     /* scratch bytes that would have avoided every malloc */
    PW_PB_OWNED = 5,      /* 1: *out was malloc'd, free it with pw_pb_free */
    PW_PB_INFO_LEN = 6
};

/* Encodes label sets: per set, its `Label` fields of a prometheus.TimeSeries,
 * sorted by name, the set validated as _pyproto._label_set_problem does.
 *
 * text[0..text_len) holds the n_strings strings name0, value0, name1, ... as
 * UTF-8, split one of two ways:
 *   lengths == NULL: separated by single '\0' bytes (Python "\0".join); a
 *                    string containing '\0' breaks the count: ESPLIT.
 *   lengths != NULL: concatenated, lengths[k] the length of string k in code
 *                    points (Python len), converted to bytes by UTF-8 lead
 *                    bytes; they must cover the text exactly, else ESPLIT.
 * Set i has counts[i] labels (2 * counts[i] strings); the counts must add up
 * to n_strings / 2, else ECOUNTS.
 * On success *out holds all sets' encodings one after the other
 * (info[PW_PB_LEN] bytes) and then each set's length as an int64 in native
 * byte order, unaligned (info[PW_PB_FMT_LEN] = 8 * n_sets bytes): the
 * request encoder takes the joined text and these lengths as they are.
 * Names follow the legacy rules, or with utf8_names non-zero may be any
 * non-empty text (promwrite.names' "utf-8" mode).
 * EINVALID names the first invalid set in info[PW_PB_ERR_SERIES]. */
int pw_encode_label_sets(const uint8_t *text, size_t text_len,
                         const int64_t *lengths, size_t n_strings,
                         const int64_t *counts, size_t n_sets, int utf8_names,
                         uint8_t *scratch, size_t scratch_len,
                         uint8_t **out, size_t *info);

/* pw_encode_label_sets with names and values in two texts, each holding
 * n_labels strings separated by single '\0' bytes (Python "\0".join of the
 * names, of the values): label k of the request is (name k, value k). A
 * string containing '\0' breaks the count: ESPLIT. Output and errors as
 * above; the counts must add up to n_labels. */
int pw_encode_label_columns(const uint8_t *names, size_t names_len,
                            const uint8_t *values, size_t values_len, size_t n_labels,
                            const int64_t *counts, size_t n_sets, int utf8_names,
                            uint8_t *scratch, size_t scratch_len,
                            uint8_t **out, size_t *info);

/* Encodes a prometheus.WriteRequest of n_series series, then snappy-compresses
 * it (pw_snappy_compress) when compress is non-zero.
 *
 * Series i: label fields labels[o .. o + label_lens[i]) (o the sum of the
 * lengths before; they must cover labels_len exactly, else ESPLIT), then
 * counts[i] samples taken in order from values (IEEE doubles) and timestamps
 * (int64), both in native byte order at any alignment, then its extra fields
 * extras[...extra_lens[i]) likewise (extra_lens NULL: none, extras_len must
 * be 0). The counts must add up to at most n_values and n_timestamps, else
 * ECOUNTS. metadata[0..metadata_len) ends the message. Timestamps must be
 * strictly increasing within a series, else EORDER. On success *out holds
 * info[PW_PB_LEN] bytes. */
int pw_encode_request(const uint8_t *labels, size_t labels_len, const int64_t *label_lens,
                      const int64_t *counts, size_t n_series,
                      const void *values, size_t n_values,
                      const void *timestamps, size_t n_timestamps,
                      const uint8_t *extras, size_t extras_len, const int64_t *extra_lens,
                      const uint8_t *metadata, size_t metadata_len,
                      int compress,
                      uint8_t *scratch, size_t scratch_len,
                      uint8_t **out, size_t *info);

/* Frees a result that info[PW_PB_OWNED] says was malloc'd (NULL is fine). */
void pw_pb_free(void *p);
/* cffi:end */

#endif
