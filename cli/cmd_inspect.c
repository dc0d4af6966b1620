/* lodectl inspect: offline readers of on-disk state (no daemon, no cluster, no secret).
 *
 *   lodectl inspect node-dir PATH [--verify] [--records] [--json]
 *
 * Exit status: 0 consistent, 1 corruption or inconsistency found (each reported with its
 * volume and offset), 2 usage, 3 the path cannot be read.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/inspect.h"
#include "cli/output.h"
#include "common/id.h"

static const char *type_name(uint16_t t)
{
    switch (t) {
    case NODE_REC_CHUNK:
        return "chunk";
    case NODE_REC_TOMBSTONE:
        return "tombstone";
    case NODE_REC_SEAL:
        return "seal";
    }
    return "?";
}

/* The superblock's cluster name, safe to print even when it is not NUL-terminated. */
static void sb_cluster(const struct inspect_report *r, char *out, size_t size)
{
    size_t n = strnlen(r->sb.cluster, sizeof(r->sb.cluster));
    snprintf(out, size, "%.*s", (int)n, r->sb.cluster);
}

/* The name came from disk: control bytes are shown as \xNN, as the tables do. */
static void print_escaped(const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f)
            printf("\\x%02x", c);
        else
            putchar(c);
    }
}

static void json_problem(struct cli_json *j, const struct inspect_problem *p)
{
    cli_json_object_begin(j);
    cli_json_key(j, "severity");
    cli_json_string(j, p->error ? "error" : "warning");
    cli_json_key(j, "volume");
    if (p->volume >= 0)
        cli_json_int(j, p->volume);
    else
        cli_json_null(j);
    cli_json_key(j, "offset");
    if (p->offset >= 0)
        cli_json_int(j, p->offset);
    else
        cli_json_null(j);
    cli_json_key(j, "message");
    cli_json_string(j, p->msg);
    cli_json_object_end(j);
}

static void print_json(const struct inspect_report *r, bool records)
{
    char hex[CMN_ID_HEX_SIZE], cluster[NODE_CLUSTER_NAME_MAX + 1];
    struct cli_json j;
    cli_json_init(&j, stdout);
    cli_json_object_begin(&j);
    cli_json_key(&j, "path");
    cli_json_string(&j, r->path);
    cli_json_key(&j, "consistent");
    cli_json_bool(&j, r->errors == 0);
    cli_json_key(&j, "verified");
    cli_json_bool(&j, r->verify);
    cli_json_key(&j, "superblock");
    if (!r->sb_present) {
        cli_json_null(&j);
    } else {
        struct cmn_id id;
        cli_json_object_begin(&j);
        cli_json_key(&j, "ok");
        cli_json_bool(&j, r->sb_ok);
        cli_json_key(&j, "checksum_ok");
        cli_json_bool(&j, r->sb_checksum_ok);
        cli_json_key(&j, "format");
        cli_json_uint(&j, r->sb.format);
        cli_json_key(&j, "block_size");
        cli_json_uint(&j, r->sb.block_size);
        memcpy(id.b, r->sb.node_uuid, sizeof(id.b));
        cmn_id_to_hex(&id, hex);
        cli_json_key(&j, "node_uuid");
        cli_json_string(&j, hex);
        memcpy(id.b, r->sb.disk_uuid, sizeof(id.b));
        cmn_id_to_hex(&id, hex);
        cli_json_key(&j, "disk_uuid");
        cli_json_string(&j, hex);
        sb_cluster(r, cluster, sizeof(cluster));
        cli_json_key(&j, "cluster");
        cli_json_string(&j, cluster);
        cli_json_key(&j, "created_ms");
        cli_json_int(&j, (int64_t)r->sb.created_ms);
        cli_json_key(&j, "volume_size");
        cli_json_uint(&j, r->sb.volume_size);
        cli_json_object_end(&j);
    }
    cli_json_key(&j, "lock_pid");
    if (r->lock_pid > 0)
        cli_json_int(&j, r->lock_pid);
    else
        cli_json_null(&j);
    cli_json_key(&j, "volumes");
    cli_json_array_begin(&j);
    for (size_t i = 0; i < r->n_volumes; i++) {
        const struct inspect_volume *v = &r->volumes[i];
        cli_json_object_begin(&j);
        cli_json_key(&j, "id");
        cli_json_uint(&j, v->id);
        cli_json_key(&j, "file");
        cli_json_string(&j, v->name);
        cli_json_key(&j, "header_ok");
        cli_json_bool(&j, v->header_ok);
        cli_json_key(&j, "size");
        cli_json_uint(&j, v->header_ok ? v->size : v->file_size);
        cli_json_key(&j, "sealed");
        cli_json_bool(&j, v->sealed);
        cli_json_key(&j, "records");
        cli_json_uint(&j, v->records);
        cli_json_key(&j, "chunks");
        cli_json_uint(&j, v->chunks);
        cli_json_key(&j, "tombstones");
        cli_json_uint(&j, v->tombstones);
        cli_json_key(&j, "live");
        cli_json_uint(&j, v->live);
        cli_json_key(&j, "dead");
        cli_json_uint(&j, v->dead);
        cli_json_key(&j, "live_bytes");
        cli_json_uint(&j, v->live_bytes);
        cli_json_key(&j, "dead_bytes");
        cli_json_uint(&j, v->dead_bytes);
        cli_json_key(&j, "end");
        cli_json_uint(&j, v->end);
        cli_json_key(&j, "first_bad_offset");
        if (v->first_bad >= 0)
            cli_json_int(&j, v->first_bad);
        else
            cli_json_null(&j);
        cli_json_object_end(&j);
    }
    cli_json_array_end(&j);
    if (records) {
        cli_json_key(&j, "records");
        cli_json_array_begin(&j);
        for (size_t i = 0; i < r->n_records; i++) {
            const struct inspect_record *rec = &r->records[i];
            cli_json_object_begin(&j);
            cli_json_key(&j, "volume");
            cli_json_uint(&j, rec->volume);
            cli_json_key(&j, "offset");
            cli_json_uint(&j, rec->offset);
            cli_json_key(&j, "type");
            cli_json_string(&j, type_name(rec->type));
            cli_json_key(&j, "chunk_id");
            cmn_id_to_hex(&rec->id, hex);
            cli_json_string(&j, hex);
            cli_json_key(&j, "length");
            cli_json_uint(&j, rec->length);
            cli_json_key(&j, "xxh3");
            cli_json_uint(&j, rec->hash);
            cli_json_key(&j, "seq");
            cli_json_uint(&j, rec->seq);
            cli_json_key(&j, "created_ms");
            cli_json_int(&j, rec->created_ms);
            cli_json_key(&j, "state");
            cli_json_string(&j, inspect_state_name(rec->state));
            cli_json_key(&j, "corrupt");
            cli_json_bool(&j, rec->corrupt);
            cli_json_object_end(&j);
        }
        cli_json_array_end(&j);
    }
    cli_json_key(&j, "summary");
    cli_json_object_begin(&j);
    cli_json_key(&j, "volumes");
    cli_json_uint(&j, r->n_volumes);
    cli_json_key(&j, "live_chunks");
    cli_json_uint(&j, r->live_chunks);
    cli_json_key(&j, "live_data_bytes");
    cli_json_uint(&j, r->live_data_bytes);
    cli_json_key(&j, "verified_chunks");
    cli_json_uint(&j, r->verified_chunks);
    cli_json_key(&j, "verified_bytes");
    cli_json_uint(&j, r->verified_bytes);
    cli_json_key(&j, "corrupt_chunks");
    cli_json_uint(&j, r->corrupt_chunks);
    cli_json_key(&j, "errors");
    cli_json_uint(&j, r->errors);
    cli_json_key(&j, "warnings");
    cli_json_uint(&j, r->warnings);
    cli_json_object_end(&j);
    cli_json_key(&j, "problems");
    cli_json_array_begin(&j);
    for (size_t i = 0; i < r->n_problems; i++)
        json_problem(&j, &r->problems[i]);
    cli_json_array_end(&j);
    cli_json_object_end(&j);
    cli_json_finish(&j);
}

static void print_superblock(const struct inspect_report *r)
{
    char hex[CMN_ID_HEX_SIZE], when[40], cluster[NODE_CLUSTER_NAME_MAX + 1];
    struct cmn_id id;
    if (!r->sb_present) {
        printf("superblock: missing\n");
        return;
    }
    printf("superblock: %s\n",
           r->sb_ok ? "ok" : r->sb_checksum_ok ? "INVALID" : "CHECKSUM MISMATCH");
    printf("  format:       %" PRIu32 "\n", r->sb.format);
    printf("  block size:   %" PRIu32 "\n", r->sb.block_size);
    memcpy(id.b, r->sb.node_uuid, sizeof(id.b));
    cmn_id_to_hex(&id, hex);
    printf("  node uuid:    %s\n", hex);
    memcpy(id.b, r->sb.disk_uuid, sizeof(id.b));
    cmn_id_to_hex(&id, hex);
    printf("  disk uuid:    %s\n", hex);
    sb_cluster(r, cluster, sizeof(cluster));
    printf("  cluster:      ");
    print_escaped(cluster);
    printf("\n");
    cli_format_time((int64_t)r->sb.created_ms, when, sizeof(when));
    printf("  created:      %s\n", when);
    printf("  volume size:  %" PRIu64 "\n", r->sb.volume_size);
}

static void print_text(const struct inspect_report *r, bool records)
{
    char hex[CMN_ID_HEX_SIZE];
    printf("node-dir %s\n", r->path);
    print_superblock(r);
    if (r->lock_pid > 0)
        printf("lock: held by process %ld (a running node: its active volume may change "
               "while it is read)\n", r->lock_pid);
    else
        printf("lock: not held\n");

    printf("\n");
    static const char *const vh[] = {"VOLUME", "SIZE", "SEALED", "RECORDS", "CHUNKS", "TOMBSTONES",
                                     "LIVE", "DEAD", "LIVE-BYTES", "DEAD-BYTES", "FIRST-BAD"};
    struct cli_table *t = cli_table_create(11, vh);
    for (unsigned c = 0; c < 11; c++)
        if (c != 2)
            cli_table_align_right(t, c);
    for (size_t i = 0; i < r->n_volumes; i++) {
        const struct inspect_volume *v = &r->volumes[i];
        cli_table_row(t);
        cli_table_cell(t, "%" PRIu32, v->id);
        cli_table_cell(t, "%" PRIu64, v->header_ok ? v->size : v->file_size);
        cli_table_cell(t, "%s", !v->header_ok ? "?" : v->sealed ? "yes" : "no");
        cli_table_cell(t, "%" PRIu64, v->records);
        cli_table_cell(t, "%" PRIu64, v->chunks);
        cli_table_cell(t, "%" PRIu64, v->tombstones);
        cli_table_cell(t, "%" PRIu64, v->live);
        cli_table_cell(t, "%" PRIu64, v->dead);
        cli_table_cell(t, "%" PRIu64, v->live_bytes);
        cli_table_cell(t, "%" PRIu64, v->dead_bytes);
        if (v->first_bad >= 0)
            cli_table_cell(t, "%" PRId64, v->first_bad);
        else
            cli_table_cell(t, "-");
    }
    cli_table_print(t, stdout);
    cli_table_destroy(t);

    if (records) {
        printf("\n");
        static const char *const rh[] = {"VOLUME", "OFFSET", "TYPE", "CHUNK-ID", "LENGTH",
                                         "XXH3",   "SEQ",    "STATE"};
        t = cli_table_create(8, rh);
        cli_table_align_right(t, 0);
        cli_table_align_right(t, 1);
        cli_table_align_right(t, 4);
        cli_table_align_right(t, 6);
        for (size_t i = 0; i < r->n_records; i++) {
            const struct inspect_record *rec = &r->records[i];
            cmn_id_to_hex(&rec->id, hex);
            cli_table_row(t);
            cli_table_cell(t, "%" PRIu32, rec->volume);
            cli_table_cell(t, "%" PRIu64, rec->offset);
            cli_table_cell(t, "%s", type_name(rec->type));
            cli_table_cell(t, "%s", rec->type == NODE_REC_SEAL ? "-" : hex);
            cli_table_cell(t, "%" PRIu64, rec->length);
            if (rec->type == NODE_REC_CHUNK)
                cli_table_cell(t, "%016" PRIx64, rec->hash);
            else
                cli_table_cell(t, "-");
            cli_table_cell(t, "%" PRIu64, rec->seq);
            cli_table_cell(t, "%s%s", inspect_state_name(rec->state),
                           rec->corrupt ? ",CORRUPT" : "");
        }
        cli_table_print(t, stdout);
        cli_table_destroy(t);
    }

    if (r->n_problems) {
        printf("\nproblems:\n");
        for (size_t i = 0; i < r->n_problems; i++) {
            const struct inspect_problem *p = &r->problems[i];
            printf("  %s: ", p->error ? "error" : "warning");
            if (p->volume >= 0 && p->offset >= 0)
                printf("volume %08" PRId64 " offset %" PRId64 ": ", p->volume, p->offset);
            else if (p->volume >= 0)
                printf("volume %08" PRId64 ": ", p->volume);
            printf("%s\n", p->msg);
        }
    }
    printf("\nsummary: %zu volume%s, %" PRIu64 " live chunk%s (%" PRIu64 " bytes)", r->n_volumes,
           r->n_volumes == 1 ? "" : "s", r->live_chunks, r->live_chunks == 1 ? "" : "s",
           r->live_data_bytes);
    if (r->verify)
        printf(", %" PRIu64 " chunk%s verified (%" PRIu64 " corrupt)", r->verified_chunks,
               r->verified_chunks == 1 ? "" : "s", r->corrupt_chunks);
    else
        printf(", data not verified (--verify reads it)");
    printf("; %u error%s, %u warning%s: %s\n", r->errors, r->errors == 1 ? "" : "s", r->warnings,
           r->warnings == 1 ? "" : "s", r->errors ? "INCONSISTENT" : "consistent");
}

static int inspect_node_dir_cmd(struct cli_ctx *ctx, int argc, char **argv)
{
    (void)argc;
    struct inspect_report r;
    bool records = cli_flag(ctx, "--records");
    int rc = inspect_node_dir(argv[0], cli_flag(ctx, "--verify"), &r);
    if (rc != 0) {
        cli_errorf("inspect node-dir: %s", r.fatal[0] ? r.fatal : argv[0]);
        inspect_report_free(&r);
        return CLI_EXIT_UNREACHABLE;
    }
    if (ctx->json)
        print_json(&r, records);
    else
        print_text(&r, records);
    if (r.errors)
        cli_errorf("inspect node-dir %s: %u error%s found", argv[0], r.errors,
                   r.errors == 1 ? "" : "s");
    rc = r.errors ? CLI_EXIT_REFUSED : CLI_EXIT_OK;
    inspect_report_free(&r);
    return rc;
}

static const struct cli_verb verbs[] = {
    {"node-dir", "PATH [--verify] [--records]",
     "check a lode-node data directory offline, read-only (--verify: all chunk data too)",
     1, 1, inspect_node_dir_cmd},
    {0},
};

const struct cli_noun cli_noun_inspect = {
    .name = "inspect",
    .help = "Offline inspection of on-disk state: needs no cluster, no address, no secret.",
    .verbs = verbs,
    .flags = CLI_OFFLINE,
};
