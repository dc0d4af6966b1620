/* LMDB environment and ordered-map primitives of the metadata state machine.
 *
 * The store owns one LMDB environment with the named databases of meta/layout.h. On top of
 * raw LMDB it offers an ordered map whose logical keys may be longer than LMDB's 511-byte
 * limit (the "bundle" scheme of layout.h): meta_omap_* get, put, delete and iterate logical
 * keys in byte order, whatever their length.
 *
 * Errors: functions return 0, -ENOENT for "no such key", or a negative code mapped from
 * LMDB by meta_store_errno() (LODE_EMETAFULL when the map or a transaction is full,
 * -EIO for a corrupt page or bundle, -errno for system errors).
 *
 * Threading: one writer (the apply thread); read transactions may be used on any thread
 * (the environment is opened with MDB_NOTLS). Growing the map needs no transaction to be
 * open in the process, so readers hold the store's lock shared for the life of their
 * transaction (meta_store_read_begin/end) and meta_store_grow() takes it exclusively.
 */
#ifndef LODE_META_STORE_H
#define LODE_META_STORE_H

#include <lmdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "meta/layout.h"

struct meta_store {
    MDB_env *env;
    MDB_dbi dbi[META_DBI_COUNT];
    uint64_t map_size;          /* current map size in bytes */
    pthread_rwlock_t grow_lock; /* shared: open read txns; exclusive: resizing the map */
};

/* Creates dir (and missing parents), removes any data.mdb / lock.mdb there, and opens an
 * empty environment with every database of layout.h. map_size 0 = 8 GiB. On failure the
 * store is left closed (meta_store_close is still safe to call). */
int meta_store_open(struct meta_store *st, const char *dir, uint64_t map_size,
                    struct cmn_err *err);
/* Closes the environment. No transaction may be open. Safe on a zeroed or failed store. */
void meta_store_close(struct meta_store *st);

/* Doubles the map size. Call with no transaction open on the calling thread; it waits for
 * readers on other threads to finish. Returns 0 or a negative code. */
int meta_store_grow(struct meta_store *st);
/* Grows (by doubling) until the map is at least `bytes`. */
int meta_store_grow_to(struct meta_store *st, uint64_t bytes);

/* Maps an LMDB return code to the project's error space (0 stays 0). */
int meta_store_errno(int mdb_rc);

/* Write transaction (apply thread only). Returns 0 or a negative code. */
int meta_store_write_begin(struct meta_store *st, MDB_txn **txn);
/* Read transaction: takes the grow lock shared until meta_store_read_end. */
int meta_store_read_begin(struct meta_store *st, MDB_txn **txn);
void meta_store_read_end(struct meta_store *st, MDB_txn *txn);

/* ---- Counters in META_DBI_SYS (u64 BE values). */
int meta_counter_get(struct meta_store *st, MDB_txn *txn, const char *name, uint64_t dflt,
                     uint64_t *out);
int meta_counter_set(struct meta_store *st, MDB_txn *txn, const char *name, uint64_t v);

/* ---- Ordered map with long keys (any database; keys 1..65535+META_KEY_INLINE_MAX bytes).
 *
 * meta_omap_get: *val points into LMDB memory, valid until the transaction ends or its next
 * write. Returns 0, -ENOENT, or a negative code. */
int meta_omap_get(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen, MDB_val *val);
/* Inserts or replaces. `scratch` is caller memory reused across calls (bundle rebuilds). */
int meta_omap_put(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen, const void *val,
                  size_t vlen, struct cmn_buf *scratch);
/* Removes; -ENOENT when absent. */
int meta_omap_del(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen,
                  struct cmn_buf *scratch);

/* Iterator over logical keys in byte order. key/val are valid until the next call on the
 * iterator (key is the iterator's own copy; val points into LMDB memory). */
struct meta_omap_iter {
    MDB_cursor *cur;
    bool valid;                 /* positioned on an entry */
    const uint8_t *key;         /* current logical key */
    size_t klen;
    MDB_val val;                /* current value */
    uint64_t steps;             /* logical entries visited (tests check seeks don't scan) */
    /* internal */
    MDB_val lkey, lval;         /* current LMDB entry */
    const uint8_t *bnext;       /* next bundle element, NULL when not in a bundle */
    size_t bleft;
    struct cmn_buf kbuf;
};

int meta_omap_iter_open(struct meta_omap_iter *it, MDB_txn *txn, MDB_dbi dbi);
void meta_omap_iter_close(struct meta_omap_iter *it);
/* Positions on the first logical key >= key (klen 0: the first key). Returns 0 (check
 * it->valid) or a negative code. */
int meta_omap_seek(struct meta_omap_iter *it, const void *key, size_t klen);
/* Moves to the next logical key. Returns 0 (check it->valid) or a negative code. */
int meta_omap_next(struct meta_omap_iter *it);

/* Checks the structure of a bundle value (used when restoring snapshots). */
bool meta_bundle_valid(const void *val, size_t vlen);

#endif
