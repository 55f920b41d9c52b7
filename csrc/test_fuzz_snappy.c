/* libFuzzer target for csrc/snappy.c (not part of the extension: test_ prefix).
 *
 *   clang -std=c99 -g -O1 -fsanitize=fuzzer,address,undefined \
 *         -fno-sanitize-recover=all csrc/test_fuzz_snappy.c csrc/snappy.c -o fuzz_snappy
 *   ./fuzz_snappy -max_total_time=60 [corpus_dir]
 *
 * The input is decoded (into an exact-size buffer, so any overrun is caught);
 * whatever decodes must compress and decode back to itself. The input is
 * also compressed as is and round tripped.
 */
#include "snappy.h"

#include <stdlib.h>
#include <string.h>

static void round_trip(const uint8_t *data, size_t n)
{
    size_t bound = pw_snappy_max_compressed_length(n), k;
    uint8_t *packed, *back;
    uint64_t total = 0;
    if (bound == 0)
        abort();
    packed = (uint8_t *)malloc(bound);
    back = (uint8_t *)malloc(n ? n : 1);
    if (packed == NULL || back == NULL)
        abort();
    k = pw_snappy_compress(data, n, packed);
    if (k == 0 || k > bound)
        abort();
    if (pw_snappy_uncompressed_length(packed, k, &total) != 0 || total != n)
        abort();
    if (pw_snappy_decompress(packed, k, n ? back : NULL, n) != 0 || (n && memcmp(back, data, n) != 0))
        abort();
    free(packed);
    free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t total = 0;
    int rc = pw_snappy_uncompressed_length(data, size, &total);
    if (rc == 0 && total <= (1u << 22)) {
        uint8_t *dst = (uint8_t *)malloc(total ? (size_t)total : 1);
        if (dst == NULL)
            abort();
        rc = pw_snappy_decompress(data, size, total ? dst : NULL, (size_t)total);
        if (rc > 0 || rc < PW_SNAPPY_ETOOBIG)
            abort();
        if (rc == 0)
            round_trip(dst, (size_t)total);
        free(dst);
    } else if (rc > 0 || rc < PW_SNAPPY_ETOOBIG) {
        abort();
    }
    round_trip(data, size);
    return 0;
}
