/* lodectl bucket: buckets as lode-meta records them. */
#include <stdio.h>

#include "cli/cli.h"
#include "cli/output.h"

static int bucket_list(struct cli_ctx *ctx, int argc, char **argv)
{
    Lode__BucketListRequest req = LODE__BUCKET_LIST_REQUEST__INIT;
    struct cmn_rpc_result res;
    cmn_rpc_result_init(&res);
    int rc = cli_call(ctx, CMN_RPC_BUCKET_LIST, &req.base, "bucket list", &res);
    if (rc != CLI_EXIT_OK) {
        cmn_rpc_result_free(&res);
        return rc;
    }
    Lode__BucketListResponse *l = (Lode__BucketListResponse *)cli_unpack(
        &lode__bucket_list_response__descriptor, &res, "bucket list");
    cmn_rpc_result_free(&res);
    if (!l)
        return CLI_EXIT_REFUSED;

    char when[40];
    if (ctx->json) {
        struct cli_json j;
        cli_json_init(&j, stdout);
        cli_json_object_begin(&j);
        cli_json_key(&j, "buckets");
        cli_json_array_begin(&j);
        for (size_t i = 0; i < l->n_buckets; i++) {
            const Lode__BucketRecord *b = l->buckets[i];
            cli_json_object_begin(&j);
            cli_json_key(&j, "name");
            cli_json_string(&j, b->name);
            cli_json_key(&j, "owner");
            cli_json_string(&j, b->owner);
            cli_json_key(&j, "created_ms");
            cli_json_int(&j, b->created_ms);
            cli_json_key(&j, "created");
            cli_format_time(b->created_ms, when, sizeof(when));
            cli_json_string(&j, when);
            cli_json_object_end(&j);
        }
        cli_json_array_end(&j);
        cli_json_object_end(&j);
        cli_json_finish(&j);
    } else {
        static const char *const hdr[] = {"NAME", "OWNER", "CREATED"};
        struct cli_table *t = cli_table_create(3, hdr);
        for (size_t i = 0; i < l->n_buckets; i++) {
            const Lode__BucketRecord *b = l->buckets[i];
            cli_format_time(b->created_ms, when, sizeof(when));
            cli_table_row(t);
            cli_table_cell(t, "%s", b->name);
            cli_table_cell(t, "%s", b->owner[0] ? b->owner : "-");
            cli_table_cell(t, "%s", when);
        }
        cli_table_print(t, stdout);
        cli_table_destroy(t);
    }
    lode__bucket_list_response__free_unpacked(l, NULL);
    return CLI_EXIT_OK;
}

static const struct cli_verb verbs[] = {
    {"list", "", "list every bucket with its owner and creation time", 0, 0, bucket_list},
    {0},
};

const struct cli_noun cli_noun_bucket = {
    .name = "bucket",
    .help = "Buckets (created through the S3 gateway; listed here for operators).",
    .verbs = verbs,
};
