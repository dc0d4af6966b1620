/* lodectl internals: the context every command gets, the noun/verb tables, exit codes.
 *
 * main.c parses the global flags, finds the noun and verb and calls the verb's run function
 * with the remaining arguments. Each noun lives in its own cmd_<noun>.c and exports one
 * struct cli_noun. Commands print their result on stdout (a table, or one JSON document
 * with --json) and errors on stderr as "lodectl: <context>: <reason>".
 */
#ifndef LODE_CLI_CLI_H
#define LODE_CLI_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>

#include "common/rpc.h"

struct cmn_meta_client;

/* Exit codes: documented in cli/README.md; scripts rely on them. */
enum cli_exit {
    CLI_EXIT_OK = 0,
    CLI_EXIT_REFUSED = 1,      /* the cluster answered and said no (or has no leader) */
    CLI_EXIT_USAGE = 2,        /* bad command line */
    CLI_EXIT_UNREACHABLE = 3,  /* no replica answered in time */
};

struct cli_ctx {
    const char *meta_addrs;    /* comma-separated RPC addresses (argv or environment) */
    char *secret;              /* malloc'd; wiped and freed by main */
    size_t secret_len;
    bool json;
    uint32_t timeout_ms;       /* per command (all retries included) */
    struct cmn_meta_client *mc; /* created by cli_client() */
    char **flags;              /* the verb's own options given (e.g. "--verify"); see cli_flag */
    char **values;             /* their values, NULL for boolean options; see cli_opt */
    unsigned n_flags;
};

struct cli_verb {
    const char *name;
    /* Synopsis of the arguments, "" when none. A boolean option of the verb's own is written
     * "[--name]" here, an option with a value "[--name VALUE]" (given as "--name VALUE" or
     * "--name=VALUE"): main accepts exactly the options so written (see cli_flag, cli_opt).
     * An option name that takes a value in one verb takes one in every verb. */
    const char *args;
    const char *help;          /* one line */
    unsigned min_args, max_args;
    int (*run)(struct cli_ctx *ctx, int argc, char **argv); /* returns an enum cli_exit */
};

/* What a noun's verbs need before they run (struct cli_noun.flags); 0 = a meta address and
 * the cluster secret, checked by main before any verb runs. */
enum cli_noun_flags {
    CLI_META_OPTIONAL = 1u << 0, /* the secret, but no address up front: cli_client() and
                                  * cli_call() report a missing address when a verb needs it */
    CLI_OFFLINE = 1u << 1,       /* local files only: neither an address nor a secret */
};

struct cli_noun {
    const char *name;
    const char *help;
    const struct cli_verb *verbs; /* ends with {0} */
    unsigned flags;            /* enum cli_noun_flags */
};

extern const struct cli_noun cli_noun_meta;
extern const struct cli_noun cli_noun_user;
extern const struct cli_noun cli_noun_bucket;
extern const struct cli_noun cli_noun_node;
extern const struct cli_noun cli_noun_inspect;

/* Prints "lodectl: <fmt>" and a newline on stderr. */
void cli_errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Whether the verb's own boolean option `name` ("--verify") was given. */
bool cli_flag(const struct cli_ctx *ctx, const char *name);

/* The value of the verb's own option `name` ("--owner"), the last one given; NULL when it
 * was not given. Points into argv. */
const char *cli_opt(const struct cli_ctx *ctx, const char *name);

/* Exit code for a call's status: 0, 1 (the cluster's answer), 3 (transport or no leader). */
int cli_exit_for_status(int status);

/* The meta client over ctx->meta_addrs, created on first use; NULL (with the error printed)
 * if it cannot be created or no address was given. Owned by ctx; main destroys it. */
struct cmn_meta_client *cli_client(struct cli_ctx *ctx);

/* Calls the leader. On failure prints "lodectl: <what>: <reason>" and returns the exit code;
 * on success returns 0 with the reply in res (which the caller frees with
 * cmn_rpc_result_free, in every case). */
int cli_call(struct cli_ctx *ctx, unsigned method, ProtobufCMessage *req, const char *what,
             struct cmn_rpc_result *res);

/* Decodes a successful reply body with `desc`; prints an error and returns NULL if it does
 * not decode. Free with protobuf_c_message_free_unpacked. */
ProtobufCMessage *cli_unpack(const ProtobufCMessageDescriptor *desc,
                             const struct cmn_rpc_result *res, const char *what);

/* cli_call then cli_unpack: asks the leader and decodes the reply with desc. Returns the
 * message (free with protobuf_c_message_free_unpacked or the type's own free function) with
 * *rc = CLI_EXIT_OK; or NULL with the error printed and *rc the exit code (CLI_EXIT_REFUSED
 * when the reply does not decode). */
ProtobufCMessage *cli_fetch(struct cli_ctx *ctx, unsigned method, ProtobufCMessage *req,
                            const char *what, const ProtobufCMessageDescriptor *desc, int *rc);

/* Version of the Command a mutation sends (meta refuses versions it does not know). */
#define CLI_COMMAND_VERSION 1

/* Commits a mutation: cmd (its op set by the caller; its version is set here) goes to the
 * leader, and the CommandResult is checked too, since a refusal may come inside it rather
 * than in the frame status. Returns CLI_EXIT_OK, or the exit code with the error printed
 * ("lodectl: <what>: <reason>"). Nothing of cmd is kept. */
int cli_commit(struct cli_ctx *ctx, unsigned method, Lode__Command *cmd, const char *what);

/* Formats milliseconds since the epoch as ISO 8601 UTC ("-" for 0) into out (>= 32 bytes). */
void cli_format_time(int64_t ms, char *out, size_t size);

#endif
