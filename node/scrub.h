/* The background scrubber: walks the chunk index in id order (node_store_list pages), reads
 * every chunk whole through node_store_get (which verifies every block checksum and the
 * chunk's XXH3) and starts over after a full pass.
 *
 * The rate is a token bucket refilled by a uv timer: at most `rate` bytes per second on
 * average, one read in flight at a time, so scrubbing never competes with clients for more
 * than one queue slot. A chunk that fails verification is recorded as corrupt by the store
 * itself; the registrar reports it to meta.
 *
 * Threading: the node's loop thread.
 */
#ifndef LODE_NODE_SCRUB_H
#define LODE_NODE_SCRUB_H

#include <stdint.h>
#include <uv.h>

#include "node/store.h"

struct cmn_metrics;
struct node_scrub;

struct node_scrub_options {
    uv_loop_t *loop;
    struct node_store *store;
    uint64_t rate;                     /* bytes per second; 0 = never scrub (stays idle) */
    struct cmn_metrics *metrics;       /* optional */
    uint64_t max_chunk_size;           /* the store's; caps the cost of one read (a bogus
                                          length can never stall the bucket); 0 = 8 MiB */
};

struct node_scrub_stats {
    uint64_t bytes;                    /* verified bytes read since start */
    uint64_t chunks;                   /* chunks read since start */
    uint64_t corrupt;                  /* chunks found failing verification (a chunk
                                          already known corrupt is not counted again) */
    uint64_t passes;                   /* complete passes over the index */
};

/* Returns 0 or -ENOMEM. */
int node_scrub_start(const struct node_scrub_options *o, struct node_scrub **out);
void node_scrub_stats(const struct node_scrub *s, struct node_scrub_stats *out);
/* Stops reading; `cb` (may be NULL) runs once the read in flight (if any) has completed and
 * everything is freed, on a later iteration. */
void node_scrub_close(struct node_scrub *s, void (*cb)(void *data), void *data);

#endif
