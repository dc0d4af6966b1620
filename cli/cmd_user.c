/* lodectl user: S3 users and their access keys. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/output.h"

static int user_create(struct cli_ctx *ctx, int argc, char **argv)
{
    Lode__CreateUser cu = LODE__CREATE_USER__INIT;
    Lode__Command cmd = LODE__COMMAND__INIT;
    char what[300];
    int rc;

    cu.name = argv[0];
    cmd.version = CLI_COMMAND_VERSION;
    cmd.op_case = LODE__COMMAND__OP_CREATE_USER;
    cmd.create_user = &cu;
    snprintf(what, sizeof(what), "user '%s'", argv[0]);
    /* Not cli_commit: the reply is the new user with its keys, not a CommandResult. */
    Lode__UserCreateResponse *u = (Lode__UserCreateResponse *)cli_fetch(
        ctx, CMN_RPC_USER_CREATE, &cmd.base, what, &lode__user_create_response__descriptor, &rc);
    if (!u)
        return rc;
    if (ctx->json) {
        struct cli_json j;
        cli_json_init(&j, stdout);
        cli_json_object_begin(&j);
        cli_json_key(&j, "name");
        cli_json_string(&j, u->name[0] ? u->name : argv[0]);
        cli_json_key(&j, "access_key");
        cli_json_string(&j, u->access_key);
        cli_json_key(&j, "secret_key");
        cli_json_string(&j, u->secret_key);
        cli_json_object_end(&j);
        cli_json_finish(&j);
    } else {
        printf("created user %s\n"
               "  access key: %s\n"
               "  secret key: %s\n"
               "Store the secret key now: it is shown only this once.\n",
               u->name[0] ? u->name : argv[0], u->access_key, u->secret_key);
    }
    /* The secret should not linger in freed heap memory. */
    if (u->secret_key)
        explicit_bzero(u->secret_key, strlen(u->secret_key));
    lode__user_create_response__free_unpacked(u, NULL);
    return CLI_EXIT_OK;
}

static int user_list(struct cli_ctx *ctx, int argc, char **argv)
{
    Lode__Empty req = LODE__EMPTY__INIT;
    int rc;
    Lode__UserListResponse *l = (Lode__UserListResponse *)cli_fetch(
        ctx, CMN_RPC_USER_LIST, &req.base, "user list", &lode__user_list_response__descriptor, &rc);
    if (!l)
        return rc;

    char when[40];
    if (ctx->json) {
        struct cli_json j;
        cli_json_init(&j, stdout);
        cli_json_object_begin(&j);
        cli_json_key(&j, "users");
        cli_json_array_begin(&j);
        for (size_t i = 0; i < l->n_users; i++) {
            const Lode__UserRecord *u = l->users[i];
            cli_json_object_begin(&j);
            cli_json_key(&j, "name");
            cli_json_string(&j, u->name);
            cli_json_key(&j, "access_keys");
            cli_json_array_begin(&j);
            for (size_t k = 0; k < u->n_access_keys; k++)
                cli_json_string(&j, u->access_keys[k]);
            cli_json_array_end(&j);
            cli_json_key(&j, "created_ms");
            cli_json_int(&j, u->created_ms);
            cli_json_key(&j, "created");
            cli_format_time(u->created_ms, when, sizeof(when));
            cli_json_string(&j, when);
            cli_json_object_end(&j);
        }
        cli_json_array_end(&j);
        cli_json_object_end(&j);
        cli_json_finish(&j);
    } else {
        static const char *const hdr[] = {"NAME", "ACCESS-KEYS", "CREATED"};
        struct cli_table *t = cli_table_create(3, hdr);
        for (size_t i = 0; i < l->n_users; i++) {
            const Lode__UserRecord *u = l->users[i];
            char keys[1024] = "";
            size_t off = 0;
            for (size_t k = 0; k < u->n_access_keys && off < sizeof(keys); k++)
                off += (size_t)snprintf(keys + off, sizeof(keys) - off, "%s%s", k ? "," : "",
                                        u->access_keys[k]);
            cli_format_time(u->created_ms, when, sizeof(when));
            cli_table_row(t);
            cli_table_cell(t, "%s", u->name);
            cli_table_cell(t, "%s", u->n_access_keys ? keys : "-");
            cli_table_cell(t, "%s", when);
        }
        cli_table_print(t, stdout);
        cli_table_destroy(t);
    }
    lode__user_list_response__free_unpacked(l, NULL);
    return CLI_EXIT_OK;
}

static int user_delete(struct cli_ctx *ctx, int argc, char **argv)
{
    Lode__DeleteUser du = LODE__DELETE_USER__INIT;
    Lode__Command cmd = LODE__COMMAND__INIT;
    char what[300];

    du.name = argv[0];
    cmd.op_case = LODE__COMMAND__OP_DELETE_USER;
    cmd.delete_user = &du;
    snprintf(what, sizeof(what), "user '%s'", argv[0]);
    int rc = cli_commit(ctx, CMN_RPC_USER_DELETE, &cmd, what);
    if (rc != CLI_EXIT_OK)
        return rc;
    if (ctx->json) {
        struct cli_json j;
        cli_json_init(&j, stdout);
        cli_json_object_begin(&j);
        cli_json_key(&j, "deleted");
        cli_json_string(&j, argv[0]);
        cli_json_object_end(&j);
        cli_json_finish(&j);
    } else {
        printf("deleted user %s\n", argv[0]);
    }
    return CLI_EXIT_OK;
}

static const struct cli_verb verbs[] = {
    {"create", "NAME", "create a user with a fresh access key; prints the secret key once", 1, 1,
     user_create},
    {"list", "", "list users and their access keys (never the secret keys)", 0, 0, user_list},
    {"delete", "NAME", "delete a user and its access keys", 1, 1, user_delete},
    {0},
};

const struct cli_noun cli_noun_user = {
    .name = "user",
    .help = "S3 users. Each has access keys; a secret key is shown only when it is created.",
    .verbs = verbs,
};
