/* The offline reader of lode-node data directories behind `lodectl inspect node-dir`
 * (cli/inspect.c; format in node/layout.h and docs/disk-format.md).
 *
 * inspect_node_dir() reads one directory without the daemon and without writing or locking
 * anything, and fills a report: the superblock, each volume, each record, and every problem
 * found (errors: corruption or inconsistency; warnings: states a crash explains). It never
 * repairs. Single-threaded; no global state.
 */
#ifndef LODE_CLI_INSPECT_H
#define LODE_CLI_INSPECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/id.h"
#include "node/layout.h"

enum inspect_state {
    INSPECT_LIVE,       /* a chunk record the node's index would hold */
    INSPECT_DEAD,       /* an older copy of a chunk (left by compaction) */
    INSPECT_DELETED,    /* a chunk record with a later tombstone */
    INSPECT_TOMBSTONE,
    INSPECT_SEAL,
};

struct inspect_record {
    uint32_t volume;
    uint64_t offset;            /* of the record header in the volume file */
    uint16_t type;              /* enum node_record_type */
    struct cmn_id id;
    uint64_t length, hash, seq;
    int64_t created_ms;
    uint32_t n_sums;
    enum inspect_state state;
    bool corrupt;               /* a damaged header copy, or --verify found data or sums wrong */
};

struct inspect_volume {
    uint32_t id;
    char name[32];              /* file name in DIR/volumes */
    uint64_t file_size;
    bool header_ok;
    uint64_t size;              /* from the header */
    int64_t created_ms;
    bool sealed;
    uint64_t records, chunks, tombstones;
    uint64_t live, dead;        /* chunk records (dead includes deleted) */
    uint64_t live_bytes, dead_bytes; /* on-disk record sizes */
    uint64_t end;               /* offset after the last valid record */
    int64_t first_bad;          /* offset of the first error, -1 = none */
};

struct inspect_problem {
    bool error;                 /* false: a warning (does not make the directory inconsistent) */
    int64_t volume;             /* -1: not about one volume */
    int64_t offset;             /* -1: not about one offset */
    char msg[384];
};

struct inspect_report {
    const char *path;           /* borrowed from the caller */
    bool verify;
    char fatal[512];            /* why the directory could not be read at all */
    bool sb_present, sb_ok, sb_checksum_ok;
    struct node_superblock sb;  /* as read (even when damaged) */
    uint32_t block_size;        /* 0 when the superblock gives none usable */
    long lock_pid;              /* process holding DIR/LOCK per /proc/locks, 0 = none seen */
    struct inspect_volume *volumes;
    size_t n_volumes;
    struct inspect_record *records; /* in volume, offset order */
    size_t n_records, cap_records;
    struct inspect_problem *problems;
    size_t n_problems, cap_problems;
    unsigned errors, warnings;
    uint64_t live_chunks, live_data_bytes, corrupt_chunks;
    uint64_t verified_chunks, verified_bytes;
};

/* Reads `path` (with verify: every chunk's data too) into *r, which the caller frees with
 * inspect_report_free() whatever the result. Returns 0 when the directory could be read
 * (problems are in the report), or -errno when the path itself cannot be opened or read
 * (r->fatal says what). */
int inspect_node_dir(const char *path, bool verify, struct inspect_report *r);
void inspect_report_free(struct inspect_report *r);

const char *inspect_state_name(enum inspect_state s);

#endif
