/* Erasure coding of stripes: k data chunks -> m parity chunks, and reconstruction of any
 * missing chunks from any k survivors.
 *
 * The code is systematic Reed-Solomon over GF(2^8) (polynomial 0x11d) with a Cauchy
 * generator: parity row p, data column j has the coefficient 1 / ((k + p) xor j), so every
 * k x k submatrix of the generator is invertible and ANY k of the k + m chunks recover the
 * stripe. Arithmetic runs on ISA-L's vectorised kernels.
 *
 * k = 1 is replication: each parity chunk is an exact copy of the data chunk (the Cauchy row
 * for p >= 1 would scale it instead), so an object stored as 1 + m copies is read from any
 * copy directly, without decoding.
 *
 * Limits: 1 <= k <= GW_EC_MAX_K, 0 <= m <= GW_EC_MAX_M, chunk lengths up to GW_EC_MAX_LEN.
 * Chunk indexes are 0..k-1 for data and k..k+m-1 for parity, as in a stripe's ChunkRef list;
 * sets of indexes are bit masks (bit i = chunk i).
 *
 * Buffers are the caller's. No alignment is required; 64-byte aligned buffers whose length
 * is a multiple of 64 are the fastest. Input and output buffers must not overlap.
 *
 * A short last stripe (see gateway/stripe.h): its chunks are stored at their real length.
 * Coding works on chunks of one length L (the length of data chunk 0, which is also the
 * parity length), so a data chunk shorter than L, and a data chunk of length 0 that is not
 * stored at all, take part as if zero-padded to L: encode with gw_ec_encode_stripe(), and
 * before a reconstruction copy each surviving short chunk into an L-byte buffer with zeroes
 * after its real bytes (a chunk of length 0 is then a present, all-zero chunk, never an
 * erasure). A reconstructed short data chunk carries its real bytes first, zeroes after.
 *
 * The code works byte position by byte position: byte b of the parity depends only on byte
 * b of each data chunk. So a degraded ranged read rebuilds bytes [a, b) of a lost chunk from
 * bytes [a, b) of k survivors (zeroes where a survivor is shorter than b), with `len` = b - a
 * and the buffers pointing at those sub-ranges.
 */
#ifndef LODE_GATEWAY_EC_H
#define LODE_GATEWAY_EC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define GW_EC_MAX_K 16
#define GW_EC_MAX_M 8
#define GW_EC_MAX_N (GW_EC_MAX_K + GW_EC_MAX_M)
/* ISA-L takes lengths as int; chunks are far smaller anyway (gateway/stripe.h). */
#define GW_EC_MAX_LEN ((size_t)1 << 30)

/* An encoder for one (k, m): the generator matrix and ISA-L's expanded encode tables.
 * Immutable once built: any number of threads may use one context at the same time. */
struct gw_ec;

/* Builds a context. Returns 0 and *out (free it with gw_ec_free), -EINVAL with a message
 * when k or m is outside the limits, or -ENOMEM. */
int gw_ec_new(unsigned k, unsigned m, struct gw_ec **out, struct cmn_err *err);

/* Frees a context from gw_ec_new(); NULL is fine. Never pass one from gw_ec_get(). */
void gw_ec_free(struct gw_ec *ec);

/* The process-wide shared context for (k, m), built on first use and kept until the process
 * exits (at most one per (k, m), about 4 KiB each). Thread-safe and lock-free after the first
 * call for a given (k, m). Returns NULL with -EINVAL in err when k or m is outside the
 * limits, or -ENOMEM when building failed (a later call tries again). Never free it. */
const struct gw_ec *gw_ec_get(unsigned k, unsigned m, struct cmn_err *err);

unsigned gw_ec_k(const struct gw_ec *ec);
unsigned gw_ec_m(const struct gw_ec *ec);

/* The generator coefficient of parity chunk p (0 <= p < m) for data chunk j (0 <= j < k):
 * parity p = sum over j of coef(p, j) * data j in GF(2^8). For k = 1 every coefficient is 1
 * (copies). Exposed for tests and inspection tools. */
uint8_t gw_ec_coef(const struct gw_ec *ec, unsigned p, unsigned j);

/* Computes the m parity chunks of one stripe: data[0..k-1] and parity[0..m-1] each point to
 * `len` bytes. Returns 0, or -EINVAL when len > GW_EC_MAX_LEN or a pointer is NULL (nothing
 * written then). With m = 0 it does nothing. Does not allocate. */
int gw_ec_encode(const struct gw_ec *ec, size_t len, const uint8_t *const *data,
                 uint8_t *const *parity);

/* Encodes a stripe held in one buffer with data chunk j at stripe + j * chunk_size, of which
 * the first stripe_len bytes are object data (1 <= stripe_len <= k * chunk_size). Zeroes
 * the bytes from stripe_len to the end of the coded region ((k - 1) * chunk_size + L, with L
 * = min(stripe_len, chunk_size)) so short and absent data chunks encode as zero-padded; the
 * buffer must be at least that long (k * chunk_size always suffices). Writes L bytes to each
 * parity[p]. Returns L (> 0), or -EINVAL when a size or pointer is invalid. */
long gw_ec_encode_stripe(const struct gw_ec *ec, uint8_t *stripe, size_t chunk_size,
                         size_t stripe_len, uint8_t *const *parity);

/* A reconstruction plan: which k survivors to read and the decode tables that turn them
 * into the wanted chunks. Building one inverts a k x k matrix; reuse it for every stripe
 * with the same present/wanted sets (a degraded read of many stripes usually has one
 * pattern). A plain value: caller-owned (stack or embedded), copyable, needs no cleanup,
 * usable from many threads at once. Fields are private. */
struct gw_ec_plan {
    uint8_t k, m, n_src, n_out;
    bool copy;                      /* k = 1: outputs are copies of the source */
    uint32_t present, want;
    uint8_t src[GW_EC_MAX_K];       /* chunk indexes read, ascending */
    uint8_t out[GW_EC_MAX_M];       /* chunk indexes written, ascending */
    uint8_t tables[32 * GW_EC_MAX_K * GW_EC_MAX_M];
};

/* Builds a plan that rebuilds the chunks in `want` from those in `present`. `want` must not
 * be empty, must not intersect `present`, and both must lie within the k + m chunks.
 * Returns 0; LODE_EUNAVAILABLE with a message ("need 4 of 6 chunks, 3 present") when fewer
 * than k chunks are present: the stripe cannot be recovered; -EINVAL on a bad mask; or
 * LODE_EINTERNAL if the submatrix were singular (impossible for a Cauchy code: reported
 * rather than trusted). Only k of the present chunks are read, data chunks first (cheaper).
 * Does not allocate. */
int gw_ec_plan_init(struct gw_ec_plan *plan, const struct gw_ec *ec, uint32_t present,
                    uint32_t want, struct cmn_err *err);

/* Runs a plan over one stripe: chunks[i] (0 <= i < k + m) points to chunk i's `len` bytes;
 * the plan reads chunks[i] for the survivors it chose and overwrites chunks[i] for each
 * wanted i; the other pointers may be NULL. Returns 0, or -EINVAL when len >
 * GW_EC_MAX_LEN or a needed pointer is NULL (nothing written then). */
int gw_ec_plan_run(const struct gw_ec_plan *plan, size_t len, uint8_t *const *chunks);

/* Which chunk indexes a plan reads (a mask of k chunks), so a degraded read fetches only
 * those. */
uint32_t gw_ec_plan_sources(const struct gw_ec_plan *plan);

/* gw_ec_plan_init() then gw_ec_plan_run(), for a one-off reconstruction (the plan lives on
 * this function's stack, about 4.2 KiB). Same arguments and errors. */
int gw_ec_reconstruct(const struct gw_ec *ec, size_t len, uint32_t present, uint32_t want,
                      uint8_t *const *chunks, struct cmn_err *err);

#endif
