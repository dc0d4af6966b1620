/* Interface between fuzz targets and tests/fuzz/driver.c (or libFuzzer). */
#ifndef LODE_TESTS_FUZZ_FUZZ_H
#define LODE_TESTS_FUZZ_FUZZ_H

#include <stddef.h>
#include <stdint.h>

struct fuzz_seed {
    const uint8_t *data;
    size_t len;
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Optional: valid inputs for the standalone driver to mutate. */
const struct fuzz_seed *fuzz_seeds(size_t *n);

#endif
