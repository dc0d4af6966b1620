/* lodectl bucket: buckets as lode-meta records them, and creating one with its own erasure
 * scheme (which S3 clients cannot ask for, short of the x-lode-erasure header). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/output.h"

/* What the gateways' erasure coder supports (gateway/ec.h); lode-meta refuses the rest. */
#define EC_MAX_K 16
#define EC_MAX_M 8

/* "4+2", or "default" for a bucket that follows the gateway's ec-data / ec-parity. */
static const char *scheme_text(const Lode__BucketRecord *b, char *buf, size_t cap)
{
    if (!b->ec_k)
        return "default";
    snprintf(buf, cap, "%u+%u", b->ec_k, b->ec_m);
    return buf;
}

static void json_bucket(struct cli_json *j, const Lode__BucketRecord *b)
{
    char when[40], scheme[24];
    cli_json_object_begin(j);
    cli_json_key(j, "name");
    cli_json_string(j, b->name);
    cli_json_key(j, "owner");
    cli_json_string(j, b->owner);
    cli_json_key(j, "created_ms");
    cli_json_int(j, b->created_ms);
    cli_json_key(j, "created");
    cli_format_time(b->created_ms, when, sizeof(when));
    cli_json_string(j, when);
    /* null: the gateway's default scheme at the time of each write. */
    cli_json_key(j, "erasure");
    if (b->ec_k) {
        cli_json_object_begin(j);
        cli_json_key(j, "k");
        cli_json_uint(j, b->ec_k);
        cli_json_key(j, "m");
        cli_json_uint(j, b->ec_m);
        cli_json_key(j, "text");
        cli_json_string(j, scheme_text(b, scheme, sizeof(scheme)));
        cli_json_object_end(j);
    } else {
        cli_json_null(j);
    }
    cli_json_object_end(j);
}

static int bucket_list(struct cli_ctx *ctx, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    Lode__BucketListRequest req = LODE__BUCKET_LIST_REQUEST__INIT;
    int rc;
    Lode__BucketListResponse *l = (Lode__BucketListResponse *)cli_fetch(
        ctx, CMN_RPC_BUCKET_LIST, &req.base, "bucket list",
        &lode__bucket_list_response__descriptor, &rc);
    if (!l)
        return rc;

    if (ctx->json) {
        struct cli_json j;
        cli_json_init(&j, stdout);
        cli_json_object_begin(&j);
        cli_json_key(&j, "buckets");
        cli_json_array_begin(&j);
        for (size_t i = 0; i < l->n_buckets; i++)
            json_bucket(&j, l->buckets[i]);
        cli_json_array_end(&j);
        cli_json_object_end(&j);
        cli_json_finish(&j);
    } else {
        static const char *const hdr[] = {"NAME", "OWNER", "ERASURE", "CREATED"};
        struct cli_table *t = cli_table_create(4, hdr);
        char when[40], scheme[24];
        for (size_t i = 0; i < l->n_buckets; i++) {
            const Lode__BucketRecord *b = l->buckets[i];
            cli_format_time(b->created_ms, when, sizeof(when));
            cli_table_row(t);
            cli_table_cell(t, "%s", b->name);
            cli_table_cell(t, "%s", b->owner[0] ? b->owner : "-");
            cli_table_cell(t, "%s", scheme_text(b, scheme, sizeof(scheme)));
            cli_table_cell(t, "%s", when);
        }
        cli_table_print(t, stdout);
        cli_table_destroy(t);
    }
    lode__bucket_list_response__free_unpacked(l, NULL);
    return CLI_EXIT_OK;
}

static int bucket_info(struct cli_ctx *ctx, int argc, char **argv)
{
    (void)argc;
    Lode__NameRequest req = LODE__NAME_REQUEST__INIT;
    char what[300];
    int rc;
    req.name = argv[0];
    snprintf(what, sizeof(what), "bucket '%s'", argv[0]);
    Lode__BucketRecord *b = (Lode__BucketRecord *)cli_fetch(
        ctx, CMN_RPC_BUCKET_HEAD, &req.base, what, &lode__bucket_record__descriptor, &rc);
    if (!b)
        return rc;
    if (ctx->json) {
        struct cli_json j;
        cli_json_init(&j, stdout);
        json_bucket(&j, b);
        cli_json_finish(&j);
    } else {
        char when[40], scheme[24];
        cli_format_time(b->created_ms, when, sizeof(when));
        printf("name:    %s\nowner:   %s\nerasure: %s%s\ncreated: %s\n", b->name,
               b->owner[0] ? b->owner : "-", scheme_text(b, scheme, sizeof(scheme)),
               b->ec_k ? "" : " (the gateway's ec-data + ec-parity)", when);
    }
    lode__bucket_record__free_unpacked(b, NULL);
    return CLI_EXIT_OK;
}

/* "K+M" within the coder's limits; prints the refusal and returns false otherwise. */
static bool parse_scheme(const char *s, uint32_t *k, uint32_t *m)
{
    char *end;
    unsigned long dk, dm;
    if (*s < '0' || *s > '9')
        goto bad;
    dk = strtoul(s, &end, 10);
    if (*end != '+' || end[1] < '0' || end[1] > '9')
        goto bad;
    dm = strtoul(end + 1, &end, 10);
    if (*end || dk < 1 || dk > EC_MAX_K || dm > EC_MAX_M)
        goto bad;
    *k = (uint32_t)dk;
    *m = (uint32_t)dm;
    return true;
bad:
    cli_errorf("--ec '%s': expected K+M with 1 <= K <= %d data chunks and 0 <= M <= %d parity "
               "chunks, such as 4+2",
               s, EC_MAX_K, EC_MAX_M);
    return false;
}

/* The owner: the one given, which must be a user; without --owner, the cluster's only user. */
static int pick_owner(struct cli_ctx *ctx, const char *given, char **out)
{
    Lode__Empty req = LODE__EMPTY__INIT;
    int rc;
    Lode__UserListResponse *l = (Lode__UserListResponse *)cli_fetch(
        ctx, CMN_RPC_USER_LIST, &req.base, "user list", &lode__user_list_response__descriptor, &rc);
    if (!l)
        return rc;
    rc = CLI_EXIT_REFUSED;
    if (given) {
        for (size_t i = 0; i < l->n_users && rc != CLI_EXIT_OK; i++)
            if (strcmp(l->users[i]->name, given) == 0)
                rc = CLI_EXIT_OK;
        if (rc != CLI_EXIT_OK)
            cli_errorf("--owner: user '%s' does not exist (lodectl user list)", given);
        else if (!(*out = strdup(given)))
            rc = CLI_EXIT_REFUSED;
    } else if (l->n_users == 1) {
        rc = (*out = strdup(l->users[0]->name)) ? CLI_EXIT_OK : CLI_EXIT_REFUSED;
    } else {
        /* An S3 bucket belongs to one user: only its owner's keys reach it. */
        cli_errorf("bucket create: the cluster has %zu users; name the owner with --owner USER",
                   l->n_users);
        rc = CLI_EXIT_USAGE;
    }
    lode__user_list_response__free_unpacked(l, NULL);
    return rc;
}

static int bucket_create(struct cli_ctx *ctx, int argc, char **argv)
{
    (void)argc;
    uint32_t k = 0, m = 0;
    const char *ec = cli_opt(ctx, "--ec");
    if (ec && !parse_scheme(ec, &k, &m))
        return CLI_EXIT_USAGE;
    char *owner = NULL;
    int rc = pick_owner(ctx, cli_opt(ctx, "--owner"), &owner);
    if (rc != CLI_EXIT_OK)
        return rc;

    Lode__BucketRecord b = LODE__BUCKET_RECORD__INIT;
    Lode__CreateBucket cb = LODE__CREATE_BUCKET__INIT;
    Lode__Command cmd = LODE__COMMAND__INIT;
    char what[300];
    b.name = argv[0];
    b.owner = owner;
    b.ec_k = k;
    b.ec_m = m;
    cb.bucket = &b;
    cmd.op_case = LODE__COMMAND__OP_CREATE_BUCKET;
    cmd.create_bucket = &cb;
    snprintf(what, sizeof(what), "bucket '%s'", argv[0]);
    rc = cli_commit(ctx, CMN_RPC_BUCKET_CREATE, &cmd, what);
    if (rc == CLI_EXIT_OK && ctx->json) {
        /* The record as meta stored it (with its creation time): one document, as info. */
        rc = bucket_info(ctx, 1, argv);
    } else if (rc == CLI_EXIT_OK) {
        char scheme[24];
        printf("created bucket %s (owner %s, erasure %s)\n", argv[0], owner,
               scheme_text(&b, scheme, sizeof(scheme)));
    }
    free(owner);
    return rc;
}

static const struct cli_verb verbs[] = {
    {"list", "", "list every bucket with its owner, erasure scheme and creation time", 0, 0,
     bucket_list},
    {"info", "NAME", "show one bucket: owner, erasure scheme, creation time", 1, 1, bucket_info},
    {"create", "NAME [--owner USER] [--ec K+M]",
     "create a bucket for USER (default: the only user), its objects erasure-coded K+M "
     "(default: the gateway's ec-data + ec-parity)",
     1, 1, bucket_create},
    {0},
};

const struct cli_noun cli_noun_bucket = {
    .name = "bucket",
    .help = "Buckets: those S3 clients created through the gateway, and buckets created here "
            "with their own erasure scheme.",
    .verbs = verbs,
};
