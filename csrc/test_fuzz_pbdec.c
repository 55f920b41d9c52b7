/* libFuzzer target for csrc/pbdec.c (not part of the extension: test_ prefix).
 *
 *   clang -std=c99 -g -O1 -fsanitize=fuzzer,address,undefined \
 *         -fno-sanitize-recover=all csrc/test_fuzz_pbdec.c csrc/pbdec.c -o fuzz_pbdec
 *   ./fuzz_pbdec -max_total_time=60 [corpus_dir]
 *
 * The input is decoded as a 1.0 and as a 2.0 request from an exact-size copy,
 * with generous limits and with limits taken from its first bytes; whatever
 * comes back must hold the invariants of test_pbdec_check.h.
 */
#include "pbdec.h"

#include <stdint.h>
#include <string.h>

#include "test_pbdec_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int64_t limits[PW_LIM_N];
    decode_checked(data, size, PBDEC_LIMITS_BIG);
    for (int i = 0; i < PW_LIM_N; i++)
        limits[i] = size > (size_t)i ? (int64_t)data[i] * (i == PW_LIM_COST ? 64 : 1) : 0;
    decode_checked(data, size, limits);
    return 0;
}
