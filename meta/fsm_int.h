/* Internals shared by the state-machine files (fsm.c, fsm_object.c, fsm_read.c,
 * fsm_snap.c). Not for use outside meta/fsm*.c. */
#ifndef LODE_META_FSM_INT_H
#define LODE_META_FSM_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "meta/fsm.h"
#include "meta/layout.h"
#include "meta/store.h"

/* Largest composite key: bucket NUL key NUL upload_id. */
#define META_KEY_BUF (META_BUCKET_NAME_MAX + 1 + META_NAME_MAX + 1 + META_UPLOAD_ID_MAX + 8)

struct meta_fsm {
    struct meta_store st;
    struct cmn_buf pack;          /* apply thread: a value being written */
    struct cmn_buf scratch;       /* apply thread: bundle rebuilds */
    _Atomic uint64_t list_steps;  /* entries visited by listings (meta_fsm_list_steps) */
};

/* One command being applied inside one write transaction. */
struct meta_op {
    struct meta_fsm *fsm;
    MDB_txn *txn;
    const Lode__Command *cmd;
    struct meta_fsm_result *res;
    int64_t now;
};

static inline MDB_dbi meta_dbi(struct meta_fsm *fsm, enum meta_dbi_id id)
{
    return fsm->st.dbi[id];
}

/* Records a domain failure in op->res (the command becomes a no-op). Returns 0 so that a
 * handler can `return meta_op_fail(...)`. */
int meta_op_fail(struct meta_op *op, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Reads and unpacks a record; *out is freed with protobuf_c_message_free_unpacked(, NULL).
 * Returns 0, -ENOENT, -EIO (undecodable record) or another negative code. */
int meta_get_msg(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen,
                 const ProtobufCMessageDescriptor *desc, void **out);

/* Packs m and stores it under key (apply thread). */
int meta_op_put_msg(struct meta_op *op, enum meta_dbi_id dbi, const void *key, size_t klen,
                    const ProtobufCMessage *m);
/* Deletes key; absent is not an error. */
int meta_op_del(struct meta_op *op, enum meta_dbi_id dbi, const void *key, size_t klen);

/* Returns the counter's value in *v and stores v + 1. */
int meta_op_counter_next(struct meta_op *op, const char *name, uint64_t dflt, uint64_t *v);

/* GC queue: enqueue a chunk, every chunk of a layout, or of an object (layout + parts). */
int meta_op_gc_chunk(struct meta_op *op, const Lode__ChunkRef *chunk, const char *reason);
int meta_op_gc_layout(struct meta_op *op, const Lode__Layout *layout, const char *reason);
int meta_op_gc_object(struct meta_op *op, const Lode__ObjectRecord *rec, const char *reason);

/* Handlers in fsm_object.c: object and multipart commands. */
int meta_op_put_object(struct meta_op *op);
int meta_op_delete_object(struct meta_op *op);
int meta_op_create_upload(struct meta_op *op);
int meta_op_put_part(struct meta_op *op);
int meta_op_complete_upload(struct meta_op *op);
int meta_op_abort_upload(struct meta_op *op);
/* Removes an upload, its index entry and its parts, sending every part's chunks to GC. */
int meta_op_upload_drop(struct meta_op *op, const Lode__UploadRecord *up, const char *reason);

/* Packs a message into out, replacing its contents. Returns 0 or -ENOMEM. */
int meta_pack_to_buf(const ProtobufCMessage *m, struct cmn_buf *out);

#endif
