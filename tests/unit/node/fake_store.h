/* An in-memory stand-in for the chunk store (node/store.h), for unit tests of the code above
 * it (service, registrar, scrubber). It implements the whole store API with the same
 * contracts: callbacks on the loop, never inside the call; put checks the XXH3; reads of a
 * chunk marked corrupt fail with LODE_ECORRUPT and record it for node_store_corrupt_take.
 * Link it instead of libnode. Extra knobs below.
 */
#ifndef LODE_TESTS_UNIT_NODE_FAKE_STORE_H
#define LODE_TESTS_UNIT_NODE_FAKE_STORE_H

#include <stdint.h>

#include "common/id.h"
#include "node/store.h"

/* Reads of `id` fail verification from now on. Returns 0 or LODE_ENOCHUNK. */
int fake_store_corrupt(struct node_store *st, const struct cmn_id *id);
/* Total bytes the store may hold (puts beyond it: LODE_ENOSPACE). */
void fake_store_set_capacity(struct node_store *st, uint64_t bytes);
/* Every completion is delayed by this many milliseconds (default 0). */
void fake_store_set_delay(struct node_store *st, uint64_t ms);
/* node_store_get calls so far, and bytes returned by them. */
uint64_t fake_store_reads(const struct node_store *st);
uint64_t fake_store_read_bytes(const struct node_store *st);
/* Buffers from node_store_put_buf_alloc not yet freed or stored. */
unsigned fake_store_bufs_out(const struct node_store *st);
/* Puts a chunk directly (no callback); returns 0 or -EEXIST. */
int fake_store_add(struct node_store *st, const struct cmn_id *id, const void *data,
                   size_t len);

#endif
