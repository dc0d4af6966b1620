/* lodectl meta: the replicated metadata group (status, voters). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/output.h"
#include "common/conf.h"
#include "common/meta_client.h"

#define MAX_ROWS 64
#define STATUS_TIMEOUT_CAP_MS 3000

/* One replica as `meta status` saw it. */
struct row {
    char addr[256];                /* RPC address asked */
    uint64_t id;                   /* from its answer, or from the voter list; 0 = unknown */
    char raft_addr[256];
    int status;                    /* 0 = answered */
    char error[512];
    Lode__MetaStatusResponse *st;  /* its answer */
};

struct status_view {
    struct row rows[MAX_ROWS];
    unsigned n;
    const Lode__MetaStatusResponse *voters_from; /* whose voter list is shown */
    const struct row *leader;      /* replica that says it leads (highest term) */
    uint64_t leader_id;            /* known leader, even if we could not reach it */
    const char *leader_addr;
};

static struct row *row_by_addr(struct status_view *v, const char *addr)
{
    for (unsigned i = 0; i < v->n; i++)
        if (strcmp(v->rows[i].addr, addr) == 0)
            return &v->rows[i];
    return NULL;
}

static struct row *row_by_id(struct status_view *v, uint64_t id)
{
    for (unsigned i = 0; i < v->n; i++)
        if (id && v->rows[i].id == id)
            return &v->rows[i];
    return NULL;
}

static struct row *add_row(struct status_view *v, const char *addr, size_t len)
{
    char a[256];
    while (len && (*addr == ' ' || *addr == '\t'))
        addr++, len--;
    while (len && (addr[len - 1] == ' ' || addr[len - 1] == '\t'))
        len--;
    if (len == 0 || len >= sizeof(a) || v->n == MAX_ROWS)
        return NULL;
    memcpy(a, addr, len);
    a[len] = '\0';
    if (row_by_addr(v, a))
        return NULL;
    struct row *r = &v->rows[v->n++];
    memset(r, 0, sizeof(*r));
    snprintf(r->addr, sizeof(r->addr), "%s", a);
    return r;
}

static void ask(struct cli_ctx *ctx, struct cmn_meta_client *mc, struct row *r)
{
    Lode__Empty req = LODE__EMPTY__INIT;
    struct cmn_rpc_result res;
    uint32_t t = ctx->timeout_ms < STATUS_TIMEOUT_CAP_MS ? ctx->timeout_ms : STATUS_TIMEOUT_CAP_MS;
    cmn_rpc_result_init(&res);
    r->status = cmn_meta_client_call_at(mc, r->addr, CMN_RPC_META_STATUS, 0, &req.base, t, &res);
    if (r->status == 0) {
        r->st = lode__meta_status_response__unpack(NULL, res.body.len, res.body.data);
        if (!r->st) {
            r->status = LODE_EBADMSG;
            snprintf(r->error, sizeof(r->error), "the reply does not decode");
        } else {
            r->id = r->st->id;
            snprintf(r->raft_addr, sizeof(r->raft_addr), "%s", r->st->raft_address);
        }
    } else {
        const char *text = lode_strerror(r->status);
        if (!res.message[0] || strstr(res.message, text))
            snprintf(r->error, sizeof(r->error), "%s", res.message[0] ? res.message : text);
        else
            snprintf(r->error, sizeof(r->error), "%s: %s", text, res.message);
    }
    cmn_rpc_result_free(&res);
}

static int cmp_rows(const void *a, const void *b)
{
    const struct row *x = a, *y = b;
    /* Known ids first, in order; unknown ones after, by address. */
    if ((x->id == 0) != (y->id == 0))
        return x->id == 0 ? 1 : -1;
    if (x->id != y->id)
        return x->id < y->id ? -1 : 1;
    return strcmp(x->addr, y->addr);
}

static void collect(struct cli_ctx *ctx, struct cmn_meta_client *mc, struct status_view *v)
{
    const char *s = ctx->meta_addrs;
    while (*s) {
        const char *e = strchr(s, ',');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        add_row(v, s, len);
        s += len + (e ? 1 : 0);
    }
    for (unsigned i = 0; i < v->n; i++)
        ask(ctx, mc, &v->rows[i]);

    /* The voter list worth believing: the leader's, else the highest term's. */
    const struct row *best = NULL;
    for (unsigned i = 0; i < v->n; i++) {
        const struct row *r = &v->rows[i];
        if (!r->st)
            continue;
        bool leads = strcmp(r->st->role, "leader") == 0;
        if (leads && (!v->leader || r->st->term > v->leader->st->term))
            v->leader = r;
        if (!best || r->st->term > best->st->term)
            best = r;
    }
    if (v->leader)
        best = v->leader;
    if (best)
        v->voters_from = best->st;

    /* Ask the members the --meta list did not name: voters, then non-voters (a replica
     * being added shows up there, and an operator wants to see whether it answers). */
    if (v->voters_from) {
        const Lode__MetaStatusResponse *vs = v->voters_from;
        for (size_t k = 0; k < vs->n_voters + vs->n_others; k++) {
            const Lode__MetaMember *m =
                k < vs->n_voters ? vs->voters[k] : vs->others[k - vs->n_voters];
            struct row *r = row_by_id(v, m->id);
            if (!r)
                r = row_by_addr(v, m->rpc_address);
            if (!r) {
                r = add_row(v, m->rpc_address, strlen(m->rpc_address));
                if (!r)
                    continue;
                ask(ctx, mc, r);
            }
            if (!r->id)
                r->id = m->id;
            if (!r->raft_addr[0])
                snprintf(r->raft_addr, sizeof(r->raft_addr), "%s", m->raft_address);
        }
    }

    /* Sorting moves rows: remember the leader by id. */
    uint64_t leader_row_id = v->leader ? v->leader->id : 0;
    qsort(v->rows, v->n, sizeof(v->rows[0]), cmp_rows);
    v->leader = leader_row_id ? row_by_id(v, leader_row_id) : NULL;
    if (v->leader) {
        v->leader_id = v->leader->id;
        v->leader_addr = v->leader->st->rpc_address[0] ? v->leader->st->rpc_address
                                                        : v->leader->addr;
    } else {
        /* Nobody we reached leads, but a follower may know who does. */
        for (unsigned i = 0; i < v->n; i++) {
            const Lode__MetaStatusResponse *st = v->rows[i].st;
            if (st && st->leader_id && st->leader_address[0]) {
                v->leader_id = st->leader_id;
                v->leader_addr = st->leader_address;
                break;
            }
        }
    }
}

/* Whether the row is a voter by the believed voter list (true when there is no list). */
static bool is_voter(const struct status_view *v, const struct row *r)
{
    const Lode__MetaStatusResponse *vs = v->voters_from;
    if (!vs || !r->id)
        return true;
    for (size_t k = 0; k < vs->n_voters; k++)
        if (vs->voters[k]->id == r->id)
            return true;
    return false;
}

static void print_member(struct cli_json *j, const Lode__MetaMember *m)
{
    cli_json_object_begin(j);
    cli_json_key(j, "id");
    cli_json_uint(j, m->id);
    cli_json_key(j, "raft_address");
    cli_json_string(j, m->raft_address);
    cli_json_key(j, "rpc_address");
    cli_json_string(j, m->rpc_address);
    cli_json_object_end(j);
}

static void print_status_json(const struct status_view *v)
{
    struct cli_json j;
    cli_json_init(&j, stdout);
    cli_json_object_begin(&j);
    cli_json_key(&j, "replicas");
    cli_json_array_begin(&j);
    for (unsigned i = 0; i < v->n; i++) {
        const struct row *r = &v->rows[i];
        cli_json_object_begin(&j);
        cli_json_key(&j, "id");
        if (r->id)
            cli_json_uint(&j, r->id);
        else
            cli_json_null(&j);
        cli_json_key(&j, "raft_address");
        cli_json_string(&j, r->raft_addr[0] ? r->raft_addr : NULL);
        cli_json_key(&j, "rpc_address");
        cli_json_string(&j, r->st && r->st->rpc_address[0] ? r->st->rpc_address : r->addr);
        cli_json_key(&j, "reachable");
        cli_json_bool(&j, r->st != NULL);
        cli_json_key(&j, "voter");
        cli_json_bool(&j, is_voter(v, r));
        cli_json_key(&j, "role");
        cli_json_string(&j, r->st ? r->st->role : "unreachable");
        if (r->st) {
            cli_json_key(&j, "leader_id");
            cli_json_uint(&j, r->st->leader_id);
            cli_json_key(&j, "term");
            cli_json_uint(&j, r->st->term);
            cli_json_key(&j, "commit_index");
            cli_json_uint(&j, r->st->commit_index);
            cli_json_key(&j, "last_applied");
            cli_json_uint(&j, r->st->last_applied);
            cli_json_key(&j, "last_index");
            cli_json_uint(&j, r->st->last_index);
        }
        cli_json_key(&j, "error");
        cli_json_string(&j, r->st ? NULL : r->error);
        cli_json_object_end(&j);
    }
    cli_json_array_end(&j);
    cli_json_key(&j, "voters");
    cli_json_array_begin(&j);
    for (size_t k = 0; v->voters_from && k < v->voters_from->n_voters; k++)
        print_member(&j, v->voters_from->voters[k]);
    cli_json_array_end(&j);
    cli_json_key(&j, "others");
    cli_json_array_begin(&j);
    for (size_t k = 0; v->voters_from && k < v->voters_from->n_others; k++)
        print_member(&j, v->voters_from->others[k]);
    cli_json_array_end(&j);
    cli_json_key(&j, "leader");
    if (v->leader_id) {
        cli_json_object_begin(&j);
        cli_json_key(&j, "id");
        cli_json_uint(&j, v->leader_id);
        cli_json_key(&j, "rpc_address");
        cli_json_string(&j, v->leader_addr);
        cli_json_object_end(&j);
    } else {
        cli_json_null(&j);
    }
    cli_json_object_end(&j);
    cli_json_finish(&j);
}

static void print_status_table(const struct status_view *v)
{
    static const char *const hdr[] = {"ID", "RAFT-ADDRESS", "RPC-ADDRESS", "ROLE",
                                      "TERM", "COMMIT", "APPLIED", "ERROR"};
    bool errors = false;
    for (unsigned i = 0; i < v->n; i++)
        errors |= v->rows[i].st == NULL;
    struct cli_table *t = cli_table_create(errors ? 8 : 7, hdr);
    cli_table_align_right(t, 0);
    for (unsigned c = 4; c < 7; c++)
        cli_table_align_right(t, c);
    for (unsigned i = 0; i < v->n; i++) {
        const struct row *r = &v->rows[i];
        cli_table_row(t);
        if (r->id)
            cli_table_cell(t, "%" PRIu64, r->id);
        else
            cli_table_cell(t, "?");
        cli_table_cell(t, "%s", r->raft_addr[0] ? r->raft_addr : "-");
        cli_table_cell(t, "%s", r->st && r->st->rpc_address[0] ? r->st->rpc_address : r->addr);
        const char *nv = is_voter(v, r) ? "" : " (non-voter)";
        if (r->st) {
            cli_table_cell(t, "%s%s", r->st->role, nv);
            cli_table_cell(t, "%" PRIu64, r->st->term);
            cli_table_cell(t, "%" PRIu64, r->st->commit_index);
            cli_table_cell(t, "%" PRIu64, r->st->last_applied);
            cli_table_cell(t, "%s", "");
        } else {
            cli_table_cell(t, "unreachable%s", nv);
            cli_table_cell(t, "-");
            cli_table_cell(t, "-");
            cli_table_cell(t, "-");
            cli_table_cell(t, "%s", r->error);
        }
    }
    cli_table_print(t, stdout);
    cli_table_destroy(t);
    if (v->leader)
        printf("leader: %" PRIu64 " at %s\n", v->leader_id, v->leader_addr);
    else if (v->leader_id)
        printf("leader: %" PRIu64 " at %s (not reachable from here)\n", v->leader_id,
               v->leader_addr);
    else
        printf("leader: none\n");
}

static int meta_status(struct cli_ctx *ctx, int argc, char **argv)
{
    struct cmn_meta_client *mc = cli_client(ctx);
    if (!mc)
        return CLI_EXIT_USAGE;
    struct status_view *v = calloc(1, sizeof(*v));
    if (!v) {
        cli_errorf("out of memory");
        return CLI_EXIT_REFUSED;
    }
    collect(ctx, mc, v);
    unsigned reachable = 0, auth_failed = 0;
    for (unsigned i = 0; i < v->n; i++) {
        reachable += v->rows[i].st != NULL;
        auth_failed += v->rows[i].status == LODE_EAUTH;
    }
    if (ctx->json)
        print_status_json(v);
    else
        print_status_table(v);

    int rc = CLI_EXIT_OK;
    if (reachable == 0 && auth_failed) {
        cli_errorf("meta status: authentication failed at every replica (wrong cluster secret?)");
        rc = CLI_EXIT_REFUSED;
    } else if (reachable == 0) {
        cli_errorf("meta status: no replica reachable");
        rc = CLI_EXIT_UNREACHABLE;
    } else if (!v->leader_id) {
        cli_errorf("meta status: no leader elected (%u of %u replicas reachable)", reachable,
                   v->n);
        rc = CLI_EXIT_REFUSED;
    }
    for (unsigned i = 0; i < v->n; i++)
        if (v->rows[i].st)
            lode__meta_status_response__free_unpacked(v->rows[i].st, NULL);
    free(v);
    return rc;
}

/* Prints the membership a voter change produced. */
static void print_members(struct cli_ctx *ctx, const Lode__MetaStatusResponse *st,
                          const char *what)
{
    if (ctx->json) {
        struct cli_json j;
        cli_json_init(&j, stdout);
        cli_json_object_begin(&j);
        cli_json_key(&j, "voters");
        cli_json_array_begin(&j);
        for (size_t k = 0; k < st->n_voters; k++)
            print_member(&j, st->voters[k]);
        cli_json_array_end(&j);
        cli_json_object_end(&j);
        cli_json_finish(&j);
        return;
    }
    static const char *const hdr[] = {"ID", "RAFT-ADDRESS", "RPC-ADDRESS"};
    struct cli_table *t = cli_table_create(3, hdr);
    cli_table_align_right(t, 0);
    for (size_t k = 0; k < st->n_voters; k++) {
        cli_table_row(t);
        cli_table_cell(t, "%" PRIu64, st->voters[k]->id);
        cli_table_cell(t, "%s", st->voters[k]->raft_address);
        cli_table_cell(t, "%s", st->voters[k]->rpc_address);
    }
    printf("%s; voters now:\n", what);
    cli_table_print(t, stdout);
    cli_table_destroy(t);
}

static int parse_id(const char *s, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || !end || *end || s[0] == '-' || v == 0) {
        cli_errorf("'%s' is not a replica id (a positive integer)", s);
        return CLI_EXIT_USAGE;
    }
    *out = v;
    return CLI_EXIT_OK;
}

static int check_addr(const char *what, const char *addr)
{
    char host[256];
    uint16_t port = 0;
    if (cmn_addr_split(addr, host, sizeof(host), &port) != 0 || port == 0) {
        cli_errorf("%s '%s': expected HOST:PORT", what, addr);
        return CLI_EXIT_USAGE;
    }
    return CLI_EXIT_OK;
}

static int voter_change(struct cli_ctx *ctx, unsigned method, ProtobufCMessage *req,
                        const char *what)
{
    int rc;
    Lode__MetaStatusResponse *st = (Lode__MetaStatusResponse *)cli_fetch(
        ctx, method, req, what, &lode__meta_status_response__descriptor, &rc);
    if (st) {
        print_members(ctx, st, what);
        lode__meta_status_response__free_unpacked(st, NULL);
    }
    return rc;
}

static int meta_add_voter(struct cli_ctx *ctx, int argc, char **argv)
{
    Lode__AddVoterRequest req = LODE__ADD_VOTER_REQUEST__INIT;
    char what[600];
    int rc = parse_id(argv[0], &req.id);
    if (rc == CLI_EXIT_OK)
        rc = check_addr("RAFT-ADDR", argv[1]);
    if (rc == CLI_EXIT_OK)
        rc = check_addr("RPC-ADDR", argv[2]);
    if (rc != CLI_EXIT_OK)
        return rc;
    req.raft_address = argv[1];
    req.rpc_address = argv[2];
    snprintf(what, sizeof(what), "add voter %" PRIu64 " (raft %s, rpc %s)", req.id, argv[1],
             argv[2]);
    return voter_change(ctx, CMN_RPC_META_ADD_VOTER, &req.base, what);
}

static int meta_remove_voter(struct cli_ctx *ctx, int argc, char **argv)
{
    Lode__RemoveVoterRequest req = LODE__REMOVE_VOTER_REQUEST__INIT;
    char what[64];
    int rc = parse_id(argv[0], &req.id);
    if (rc != CLI_EXIT_OK)
        return rc;
    snprintf(what, sizeof(what), "remove voter %" PRIu64, req.id);
    return voter_change(ctx, CMN_RPC_META_REMOVE_VOTER, &req.base, what);
}

static const struct cli_verb verbs[] = {
    {"status", "", "ask every replica for its role, term and progress; name the leader", 0, 0,
     meta_status},
    {"add-voter", "ID RAFT-ADDR RPC-ADDR",
     "make a running replica (started with join = true) a voter", 3, 3, meta_add_voter},
    {"remove-voter", "ID", "remove a voter from the group", 1, 1, meta_remove_voter},
    {0},
};

const struct cli_noun cli_noun_meta = {
    .name = "meta",
    .help = "The lode-meta replicas: one Raft group holding all metadata.",
    .verbs = verbs,
};
