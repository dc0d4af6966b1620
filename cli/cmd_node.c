/* lodectl node: data nodes as lode-meta's cluster map records them (`list`), and one node's
 * own view of itself (`status`, NODE_HEALTH asked of the node directly). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/output.h"
#include "common/id.h"
#include "common/meta_client.h"
#include "common/rpc_sync.h"

#define MAP_OPTIONAL_TIMEOUT_MS 2000

/* ---- formatting ---- */

/* "1.5 GiB"; exact below 1 KiB. */
static void fmt_bytes(uint64_t v, char *out, size_t size)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double d = (double)v;
    unsigned u = 0;
    while (d >= 1024.0 && u + 1 < sizeof(units) / sizeof(units[0])) {
        d /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(out, size, "%" PRIu64 " B", v);
    else
        snprintf(out, size, "%.1f %s", d, units[u]);
}

/* "37%", rounded down; "<1%" when something but less than 1% is used, so that a node
 * holding one chunk never reads 0% next to a non-zero byte count; "-" without a capacity. */
static const char *pct(uint64_t used, uint64_t cap, char *out, size_t size)
{
    if (cap == 0)
        snprintf(out, size, "-");
    else if (used >= cap)
        snprintf(out, size, "100%%");
    else if (used && (long double)used * 100 < cap)
        snprintf(out, size, "<1%%");
    else
        snprintf(out, size, "%u%%", (unsigned)((long double)used * 100 / cap));
    return out;
}

/* "1d2h", "3h4m", "5m6s", "7s", "250ms". */
static void fmt_duration(int64_t ms, char *out, size_t size)
{
    if (ms < 0)
        ms = 0;
    int64_t s = ms / 1000;
    if (s == 0)
        snprintf(out, size, "%" PRId64 "ms", ms);
    else if (s < 60)
        snprintf(out, size, "%" PRId64 "s", s);
    else if (s < 3600)
        snprintf(out, size, "%" PRId64 "m%" PRId64 "s", s / 60, s % 60);
    else if (s < 86400)
        snprintf(out, size, "%" PRId64 "h%" PRId64 "m", s / 3600, s % 3600 / 60);
    else
        snprintf(out, size, "%" PRId64 "d%" PRId64 "h", s / 86400, s % 86400 / 3600);
}

static const char *state_name(Lode__NodeState s)
{
    switch (s) {
    case LODE__NODE_STATE__NODE_UP:
        return "up";
    case LODE__NODE_STATE__NODE_SUSPECT:
        return "suspect";
    case LODE__NODE_STATE__NODE_DOWN:
        return "down";
    case LODE__NODE_STATE__NODE_DRAINING:
        return "draining";
    case LODE__NODE_STATE__NODE_REMOVED:
        return "removed";
    default:
        return "unknown";
    }
}

/* Hex of a 16-byte uuid, or "-" when it is not 16 bytes. */
static void fmt_uuid(ProtobufCBinaryData b, char out[CMN_ID_HEX_SIZE])
{
    struct cmn_id id;
    if (cmn_id_from_bytes(b.data, b.len, &id) != 0)
        snprintf(out, CMN_ID_HEX_SIZE, "-");
    else
        cmn_id_to_hex(&id, out);
}

/* ---- the cluster map ---- */

static Lode__ClusterMap *get_map(struct cli_ctx *ctx, const char *what, int *rc)
{
    Lode__Empty req = LODE__EMPTY__INIT;
    return (Lode__ClusterMap *)cli_fetch(ctx, CMN_RPC_CLUSTER_MAP_GET, &req.base, what,
                                         &lode__cluster_map__descriptor, rc);
}

static int cmp_nid(const void *a, const void *b)
{
    const Lode__NodeInfo *x = *(Lode__NodeInfo *const *)a, *y = *(Lode__NodeInfo *const *)b;
    return x->nid < y->nid ? -1 : x->nid > y->nid;
}

static void json_node(struct cli_json *j, const Lode__NodeInfo *n)
{
    char uuid[CMN_ID_HEX_SIZE], when[40];
    fmt_uuid(n->uuid, uuid);
    cli_json_object_begin(j);
    cli_json_key(j, "nid");
    cli_json_uint(j, n->nid);
    cli_json_key(j, "uuid");
    cli_json_string(j, uuid);
    cli_json_key(j, "address");
    cli_json_string(j, n->address);
    cli_json_key(j, "data_address");
    cli_json_string(j, n->data_address);
    cli_json_key(j, "failure_domain");
    cli_json_string(j, n->failure_domain);
    cli_json_key(j, "state");
    cli_json_string(j, state_name(n->state));
    cli_json_key(j, "capacity_bytes");
    cli_json_uint(j, n->capacity_bytes);
    cli_json_key(j, "used_bytes");
    cli_json_uint(j, n->used_bytes);
    cli_json_key(j, "registered_ms");
    cli_json_int(j, n->registered_ms);
    cli_json_key(j, "state_changed_ms");
    cli_json_int(j, n->state_changed_ms);
    cli_json_key(j, "state_changed");
    cli_format_time(n->state_changed_ms, when, sizeof(when));
    cli_json_string(j, when);
    cli_json_key(j, "last_heartbeat_ms");
    cli_json_int(j, n->last_heartbeat_ms);
    cli_json_object_end(j);
}

static int node_list(struct cli_ctx *ctx, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    int rc;
    Lode__ClusterMap *m = get_map(ctx, "node list", &rc);
    if (!m)
        return rc;
    if (m->n_nodes > 1)
        qsort(m->nodes, m->n_nodes, sizeof(m->nodes[0]), cmp_nid);

    if (ctx->json) {
        struct cli_json j;
        cli_json_init(&j, stdout);
        cli_json_object_begin(&j);
        cli_json_key(&j, "epoch");
        cli_json_uint(&j, m->epoch);
        cli_json_key(&j, "nodes");
        cli_json_array_begin(&j);
        for (size_t i = 0; i < m->n_nodes; i++)
            json_node(&j, m->nodes[i]);
        cli_json_array_end(&j);
        cli_json_object_end(&j);
        cli_json_finish(&j);
    } else {
        static const char *const hdr[] = {"NID",      "UUID", "ADDRESS", "FAILURE-DOMAIN", "STATE",
                                          "CAPACITY", "USED", "STATE-CHANGED"};
        struct cli_table *t = cli_table_create(8, hdr);
        cli_table_align_right(t, 0);
        cli_table_align_right(t, 5);
        cli_table_align_right(t, 6);
        char uuid[CMN_ID_HEX_SIZE], cap[32], used[32], when[40], p[8];
        for (size_t i = 0; i < m->n_nodes; i++) {
            const Lode__NodeInfo *n = m->nodes[i];
            fmt_uuid(n->uuid, uuid);
            fmt_bytes(n->capacity_bytes, cap, sizeof(cap));
            fmt_bytes(n->used_bytes, used, sizeof(used));
            cli_format_time(n->state_changed_ms, when, sizeof(when));
            cli_table_row(t);
            cli_table_cell(t, "%" PRIu32, n->nid);
            /* Eight digits tell a handful of nodes apart; --json has the whole uuid. */
            cli_table_cell(t, "%.8s", uuid);
            cli_table_cell(t, "%s", n->address[0] ? n->address : "-");
            cli_table_cell(t, "%s", n->failure_domain[0] ? n->failure_domain : "-");
            cli_table_cell(t, "%s", state_name(n->state));
            cli_table_cell(t, "%s", cap);
            cli_table_cell(t, "%s (%s)", used, pct(n->used_bytes, n->capacity_bytes, p, sizeof(p)));
            cli_table_cell(t, "%s", when);
        }
        cli_table_print(t, stdout);
        cli_table_destroy(t);
        printf("epoch: %" PRIu64 ", %zu node%s\n", m->epoch, m->n_nodes,
               m->n_nodes == 1 ? "" : "s");
    }
    lode__cluster_map__free_unpacked(m, NULL);
    return CLI_EXIT_OK;
}

/* ---- one node's health ---- */

static bool all_digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

static void print_health(const Lode__NodeHealthResponse *h, const Lode__NodeInfo *mapped)
{
    char uuid[CMN_ID_HEX_SIZE], a[32], b[32], up[32], p[8];
    fmt_uuid(h->uuid, uuid);
    if (h->nid)
        printf("node %" PRIu32 " (uuid %s)\n", h->nid, uuid);
    else
        printf("node not yet registered (uuid %s)\n", uuid);
    printf("  cluster:         %s\n", h->cluster);
    printf("  address:         %s\n", h->address[0] ? h->address : "-");
    if (mapped && mapped->data_address[0] && strcmp(mapped->data_address, h->address) != 0)
        printf("  data address:    %s\n", mapped->data_address);
    printf("  failure domain:  %s\n", h->failure_domain[0] ? h->failure_domain : "-");
    if (mapped)
        printf("  state in meta:   %s\n", state_name(mapped->state));
    printf("  meta:            %s\n", h->meta_state[0] ? h->meta_state : "-");
    printf("  version:         %s\n", h->version[0] ? h->version : "-");
    fmt_duration(h->uptime_ms, up, sizeof(up));
    printf("  uptime:          %s\n", up);
    fmt_bytes(h->capacity_bytes, a, sizeof(a));
    fmt_bytes(h->used_bytes, b, sizeof(b));
    printf("  capacity:        %s (%" PRIu64 " bytes)\n", a, h->capacity_bytes);
    printf("  used:            %s (%" PRIu64 " bytes, %s)\n", b, h->used_bytes,
           pct(h->used_bytes, h->capacity_bytes, p, sizeof(p)));
    printf("  chunks:          %" PRIu64 "\n", h->chunks);
    printf("  corrupt chunks:  %" PRIu64 "\n", h->corrupt_chunks);
    if (h->damaged_records)
        printf("  damaged records: %" PRIu64 " (unidentifiable: both header copies destroyed)\n",
               h->damaged_records);
    fmt_bytes(h->scrubbed_bytes, a, sizeof(a));
    printf("  scrubbed:        %s\n", a);
    printf("\n");

    static const char *const hdr[] = {"DISK",    "PATH",   "IO",   "CAPACITY",
                                      "USED",    "VOLUMES", "CHUNKS", "NOTE"};
    struct cli_table *t = cli_table_create(8, hdr);
    cli_table_align_right(t, 0);
    cli_table_align_right(t, 3);
    cli_table_align_right(t, 4);
    cli_table_align_right(t, 5);
    cli_table_align_right(t, 6);
    for (size_t i = 0; i < h->n_disks; i++) {
        const Lode__DiskHealth *d = h->disks[i];
        fmt_bytes(d->capacity_bytes, a, sizeof(a));
        fmt_bytes(d->used_bytes, b, sizeof(b));
        cli_table_row(t);
        cli_table_cell(t, "%zu", i);
        cli_table_cell(t, "%s", d->path);
        cli_table_cell(t, "%s", d->io_backend[0] ? d->io_backend : "-");
        cli_table_cell(t, "%s", a);
        cli_table_cell(t, "%s (%s)", b, pct(d->used_bytes, d->capacity_bytes, p, sizeof(p)));
        cli_table_cell(t, "%" PRIu32, d->volumes);
        cli_table_cell(t, "%" PRIu64, d->chunks);
        cli_table_cell(t, "%s%s%s", d->full ? "FULL" : "", d->full && d->note[0] ? "; " : "",
                       d->note);
    }
    cli_table_print(t, stdout);
    cli_table_destroy(t);
}

static void json_health(const Lode__NodeHealthResponse *h, const Lode__NodeInfo *mapped)
{
    char uuid[CMN_ID_HEX_SIZE];
    struct cli_json j;
    fmt_uuid(h->uuid, uuid);
    cli_json_init(&j, stdout);
    cli_json_object_begin(&j);
    cli_json_key(&j, "nid");
    cli_json_uint(&j, h->nid);
    cli_json_key(&j, "uuid");
    cli_json_string(&j, uuid);
    cli_json_key(&j, "cluster");
    cli_json_string(&j, h->cluster);
    cli_json_key(&j, "address");
    cli_json_string(&j, h->address);
    cli_json_key(&j, "data_address");
    cli_json_string(&j, mapped ? mapped->data_address : "");
    cli_json_key(&j, "failure_domain");
    cli_json_string(&j, h->failure_domain);
    cli_json_key(&j, "state");
    if (mapped)
        cli_json_string(&j, state_name(mapped->state));
    else
        cli_json_null(&j);
    cli_json_key(&j, "meta_state");
    cli_json_string(&j, h->meta_state);
    cli_json_key(&j, "version");
    cli_json_string(&j, h->version);
    cli_json_key(&j, "uptime_ms");
    cli_json_int(&j, h->uptime_ms);
    cli_json_key(&j, "capacity_bytes");
    cli_json_uint(&j, h->capacity_bytes);
    cli_json_key(&j, "used_bytes");
    cli_json_uint(&j, h->used_bytes);
    cli_json_key(&j, "chunks");
    cli_json_uint(&j, h->chunks);
    cli_json_key(&j, "corrupt_chunks");
    cli_json_uint(&j, h->corrupt_chunks);
    cli_json_key(&j, "damaged_records");
    cli_json_uint(&j, h->damaged_records);
    cli_json_key(&j, "scrubbed_bytes");
    cli_json_uint(&j, h->scrubbed_bytes);
    cli_json_key(&j, "disks");
    cli_json_array_begin(&j);
    for (size_t i = 0; i < h->n_disks; i++) {
        const Lode__DiskHealth *d = h->disks[i];
        cli_json_object_begin(&j);
        cli_json_key(&j, "path");
        cli_json_string(&j, d->path);
        cli_json_key(&j, "io_backend");
        cli_json_string(&j, d->io_backend);
        cli_json_key(&j, "note");
        cli_json_string(&j, d->note);
        cli_json_key(&j, "capacity_bytes");
        cli_json_uint(&j, d->capacity_bytes);
        cli_json_key(&j, "used_bytes");
        cli_json_uint(&j, d->used_bytes);
        cli_json_key(&j, "volumes");
        cli_json_uint(&j, d->volumes);
        cli_json_key(&j, "chunks");
        cli_json_uint(&j, d->chunks);
        cli_json_key(&j, "full");
        cli_json_bool(&j, d->full);
        cli_json_object_end(&j);
    }
    cli_json_array_end(&j);
    cli_json_object_end(&j);
    cli_json_finish(&j);
}

/* Prints "lodectl: <what>: <reason>" for a failed node call and returns its exit code:
 * 3 when the node could not be reached or did not answer, 1 when it answered no. */
static int node_error(const char *what, int status, const char *message)
{
    const char *text = lode_strerror(status);
    if (!message || !message[0] || strstr(message, text))
        cli_errorf("%s: %s", what, message && message[0] ? message : text);
    else
        cli_errorf("%s: %s: %s", what, text, message);
    return cli_exit_for_status(status);
}

static int node_status(struct cli_ctx *ctx, int argc, char **argv)
{
    (void)argc;
    const char *arg = argv[0];
    char what[320];
    Lode__ClusterMap *m = NULL;
    const Lode__NodeInfo *mapped = NULL;
    const char *addr = arg;
    int rc;

    if (all_digits(arg)) {
        unsigned long nid = strtoul(arg, NULL, 10);
        snprintf(what, sizeof(what), "node %s", arg);
        m = get_map(ctx, what, &rc);
        if (!m)
            return rc;
        for (size_t i = 0; i < m->n_nodes && !mapped; i++)
            if (m->nodes[i]->nid == nid)
                mapped = m->nodes[i];
        if (!mapped) {
            cli_errorf("node %s: no such node (see lodectl node list)", arg);
            lode__cluster_map__free_unpacked(m, NULL);
            return CLI_EXIT_REFUSED;
        }
        if (!mapped->address[0]) {
            cli_errorf("node %s: the cluster map has no address for it", arg);
            lode__cluster_map__free_unpacked(m, NULL);
            return CLI_EXIT_REFUSED;
        }
        addr = mapped->address;
        snprintf(what, sizeof(what), "node %s at %s", arg, addr);
    } else {
        if (!strchr(arg, ':')) {
            cli_errorf("node status: '%s' is neither a node id nor a HOST:PORT address", arg);
            return CLI_EXIT_USAGE;
        }
        snprintf(what, sizeof(what), "node at %s", arg);
        /* The map is optional here: with an address it only adds the node's state. */
        if (ctx->meta_addrs && *ctx->meta_addrs) {
            Lode__Empty req = LODE__EMPTY__INIT;
            struct cmn_rpc_result res;
            cmn_rpc_result_init(&res);
            struct cmn_meta_client *mc = cli_client(ctx);
            /* A short wait: meta being down must not delay asking the node itself. */
            uint32_t t = ctx->timeout_ms < MAP_OPTIONAL_TIMEOUT_MS ? ctx->timeout_ms
                                                                   : MAP_OPTIONAL_TIMEOUT_MS;
            if (mc && cmn_meta_client_call(mc, CMN_RPC_CLUSTER_MAP_GET, &req.base, t, &res) == 0)
                m = lode__cluster_map__unpack(NULL, res.body.len, res.body.data);
            cmn_rpc_result_free(&res);
            for (size_t i = 0; m && i < m->n_nodes && !mapped; i++)
                if (strcmp(m->nodes[i]->address, arg) == 0)
                    mapped = m->nodes[i];
        }
    }

    struct cmn_rpc_sync *c = NULL;
    struct cmn_err err;
    cmn_err_clear(&err);
    rc = cmn_rpc_sync_connect(addr, ctx->secret, ctx->secret_len, ctx->timeout_ms, &c, &err);
    if (rc != 0) {
        rc = node_error(what, rc, cmn_err_text(&err));
        goto out;
    }
    Lode__Empty req = LODE__EMPTY__INIT;
    struct cmn_rpc_result res;
    cmn_rpc_result_init(&res);
    rc = cmn_rpc_sync_call(c, CMN_RPC_NODE_HEALTH, 0, &req.base, ctx->timeout_ms, &res);
    if (rc != 0) {
        rc = node_error(what, rc, res.message);
        cmn_rpc_result_free(&res);
        goto out;
    }
    Lode__NodeHealthResponse *h = (Lode__NodeHealthResponse *)cli_unpack(
        &lode__node_health_response__descriptor, &res, what);
    cmn_rpc_result_free(&res);
    if (!h) {
        rc = CLI_EXIT_REFUSED;
        goto out;
    }
    if (ctx->json)
        json_health(h, mapped);
    else
        print_health(h, mapped);
    lode__node_health_response__free_unpacked(h, NULL);
    rc = CLI_EXIT_OK;
out:
    if (c)
        cmn_rpc_sync_close(c);
    if (m)
        lode__cluster_map__free_unpacked(m, NULL);
    return rc;
}

static const struct cli_verb verbs[] = {
    {"list", "", "list the data nodes in the cluster map with their state and usage", 0, 0,
     node_list},
    {"status", "NID|HOST:PORT",
     "ask one node (by nid, or at its address) for its disks, usage and health", 1, 1,
     node_status},
    {0},
};

const struct cli_noun cli_noun_node = {
    .name = "node",
    .help = "Data nodes (lode-node): the cluster map kept by lode-meta, and each node's own "
            "report.\n`status HOST:PORT` needs no --meta.",
    .verbs = verbs,
    .flags = CLI_META_OPTIONAL,
};
