/* lodectl: administer a lode cluster over the same authenticated RPC as everything else.
 *
 *   lodectl [--meta ADDRS] [--secret-file FILE] [--json] [--timeout DUR] NOUN VERB [ARGS]
 *
 * Global flags may appear anywhere before a "--"; they win over the environment (LODE_META,
 * LODE_SECRET_FILE, LODE_CLUSTER_SECRET). Exit codes are in cli.h and cli/README.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/clock.h"
#include "common/meta_client.h"

#define DEFAULT_TIMEOUT_MS 10000
#define SECRET_MAX 4096

static const struct cli_noun *const nouns[] = {&cli_noun_meta, &cli_noun_user, &cli_noun_bucket,
                                               &cli_noun_node, &cli_noun_inspect};
#define NNOUNS (sizeof(nouns) / sizeof(nouns[0]))

void cli_errorf(const char *fmt, ...)
{
    va_list ap;
    fputs("lodectl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void usage(FILE *out)
{
    fputs("usage: lodectl [--meta ADDRS] [--secret-file FILE] [--json] [--timeout DUR] NOUN VERB "
          "[ARGS]\n"
          "\n"
          "Commands:\n",
          out);
    for (size_t i = 0; i < NNOUNS; i++)
        for (const struct cli_verb *v = nouns[i]->verbs; v->name; v++)
            fprintf(out, "  %s %s%s%s\n%8s%s\n", nouns[i]->name, v->name, *v->args ? " " : "",
                    v->args, "", v->help);
    fputs("\n"
          "Options:\n"
          "  --meta ADDRS         comma-separated lode-meta RPC addresses host:port "
          "(env LODE_META)\n"
          "  --secret-file FILE   file holding the cluster secret (env LODE_SECRET_FILE; or\n"
          "                       LODE_CLUSTER_SECRET holding the secret itself)\n"
          "  --json               print one JSON document for scripts\n"
          "  --timeout DUR        give up after DUR, e.g. 3s or 500ms (default 10s)\n"
          "  -h, --help           this help; `lodectl NOUN --help` for one noun\n"
          "  --version            print the version\n"
          "\n"
          "Exit status: 0 ok, 1 refused by the cluster, 2 usage error, 3 cluster unreachable.\n",
          out);
}

static void noun_usage(const struct cli_noun *n, FILE *out)
{
    fprintf(out, "usage: lodectl [OPTIONS] %s VERB [ARGS]\n\n%s\n\nVerbs:\n", n->name, n->help);
    for (const struct cli_verb *v = n->verbs; v->name; v++)
        fprintf(out, "  %s %s%s%s\n%8s%s\n", n->name, v->name, *v->args ? " " : "", v->args, "",
                v->help);
    fputs("\nRun `lodectl --help` for the global options.\n", out);
}

static const struct cli_noun *find_noun(const char *name)
{
    for (size_t i = 0; i < NNOUNS; i++)
        if (strcmp(nouns[i]->name, name) == 0)
            return nouns[i];
    return NULL;
}

static const struct cli_verb *find_verb(const struct cli_noun *n, const char *name)
{
    for (const struct cli_verb *v = n->verbs; v->name; v++)
        if (strcmp(v->name, name) == 0)
            return v;
    return NULL;
}

int cli_exit_for_status(int status)
{
    if (status == 0)
        return CLI_EXIT_OK;
    switch (status) {
    case LODE_ETIMEOUT:
    case LODE_ECLOSED:
    case LODE_ENOLEADER:
    case LODE_ENOTLEADER:
    case LODE_EUNAVAILABLE:
    case LODE_ESHUTDOWN:
        return CLI_EXIT_UNREACHABLE;
    default:
        break;
    }
    /* Plain errno values come from the transport (refused, unreachable, reset). */
    if (status < 0 && status > LODE_ERRNO_MAX)
        return CLI_EXIT_UNREACHABLE;
    return CLI_EXIT_REFUSED;
}

bool cli_flag(const struct cli_ctx *ctx, const char *name)
{
    for (unsigned i = 0; i < ctx->n_flags; i++)
        if (!ctx->values[i] && strcmp(ctx->flags[i], name) == 0)
            return true;
    return false;
}

const char *cli_opt(const struct cli_ctx *ctx, const char *name)
{
    const char *v = NULL;
    size_t n = strlen(name);
    for (unsigned i = 0; i < ctx->n_flags; i++)
        if (ctx->values[i] && strncmp(ctx->flags[i], name, n) == 0 &&
            (ctx->flags[i][n] == '\0' || ctx->flags[i][n] == '='))
            v = ctx->values[i]; /* the last one given wins, as for the global options */
    return v;
}

/* How the verb declares option `opt` (its name: n bytes) in its synopsis: 0 not at all, 1 as
 * a boolean "[--verify]", 2 with a value "[--owner USER]". */
static int verb_opt_kind(const struct cli_verb *v, const char *opt, size_t n)
{
    for (const char *s = v->args; (s = strstr(s, opt)) != NULL; s += n) {
        if (s == v->args || s[-1] != '[' || strncmp(s, opt, n) != 0)
            continue;
        if (s[n] == ']')
            return 1;
        if (s[n] == ' ')
            return 2;
    }
    return 0;
}

static bool verb_has_flag(const struct cli_verb *v, const char *opt, const char *value)
{
    size_t n = value ? strcspn(opt, "=") : strlen(opt);
    char name[64];
    if (n >= sizeof(name))
        return false;
    memcpy(name, opt, n);
    name[n] = '\0';
    return verb_opt_kind(v, name, n) == (value ? 2 : 1);
}

static void no_meta_address(void)
{
    cli_errorf("no lode-meta address: pass --meta HOST:PORT[,HOST:PORT...] or set LODE_META");
}

struct cmn_meta_client *cli_client(struct cli_ctx *ctx)
{
    if (!ctx->meta_addrs || !*ctx->meta_addrs) {
        no_meta_address();
        return NULL;
    }
    if (!ctx->mc) {
        struct cmn_err err;
        cmn_err_clear(&err);
        if (cmn_meta_client_create(ctx->meta_addrs, ctx->secret, ctx->secret_len, &ctx->mc,
                                   &err) != 0) {
            cli_errorf("--meta '%s': %s", ctx->meta_addrs, cmn_err_text(&err));
            ctx->mc = NULL;
        }
    }
    return ctx->mc;
}

int cli_call(struct cli_ctx *ctx, unsigned method, ProtobufCMessage *req, const char *what,
             struct cmn_rpc_result *res)
{
    struct cmn_meta_client *mc = cli_client(ctx);
    if (!mc)
        return CLI_EXIT_USAGE;
    int rc = cmn_meta_client_call(mc, method, req, ctx->timeout_ms, res);
    if (rc == 0)
        return CLI_EXIT_OK;
    int code = cli_exit_for_status(rc);
    const char *text = lode_strerror(rc);
    /* Domain errors carry the cluster's own sentence ("user 'x' does not exist"). Transport
     * and authentication errors get their category first, so that "timed out" or
     * "authentication failed" is always there to read (and to grep). */
    if (!res->message[0])
        cli_errorf("%s: %s", what, text);
    else if (code == CLI_EXIT_REFUSED && rc != LODE_EAUTH && strstr(res->message, what))
        cli_errorf("%s", res->message); /* it already names the subject */
    else if (code == CLI_EXIT_REFUSED && rc != LODE_EAUTH)
        cli_errorf("%s: %s", what, res->message);
    else if (strstr(res->message, text))
        cli_errorf("%s: %s", what, res->message);
    else
        cli_errorf("%s: %s: %s", what, text, res->message);
    return code;
}

ProtobufCMessage *cli_unpack(const ProtobufCMessageDescriptor *desc,
                             const struct cmn_rpc_result *res, const char *what)
{
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, res->body.len, res->body.data);
    if (!m)
        cli_errorf("%s: the reply does not decode as %s", what, desc->name);
    return m;
}

ProtobufCMessage *cli_fetch(struct cli_ctx *ctx, unsigned method, ProtobufCMessage *req,
                            const char *what, const ProtobufCMessageDescriptor *desc, int *rc)
{
    struct cmn_rpc_result res;
    ProtobufCMessage *m = NULL;
    cmn_rpc_result_init(&res);
    *rc = cli_call(ctx, method, req, what, &res);
    if (*rc == CLI_EXIT_OK) {
        m = cli_unpack(desc, &res, what);
        if (!m)
            *rc = CLI_EXIT_REFUSED;
    }
    cmn_rpc_result_free(&res);
    return m;
}

int cli_commit(struct cli_ctx *ctx, unsigned method, Lode__Command *cmd, const char *what)
{
    int rc;
    cmd->version = CLI_COMMAND_VERSION;
    Lode__CommandResult *cr = (Lode__CommandResult *)cli_fetch(
        ctx, method, &cmd->base, what, &lode__command_result__descriptor, &rc);
    if (!cr)
        return rc;
    if (cr->status != 0) {
        cli_errorf("%s: %s", what, cr->message[0] ? cr->message : lode_strerror(cr->status));
        rc = cli_exit_for_status(cr->status);
    }
    lode__command_result__free_unpacked(cr, NULL);
    return rc;
}

void cli_format_time(int64_t ms, char *out, size_t size)
{
    if (ms <= 0) {
        snprintf(out, size, "-");
        return;
    }
    cmn_time_format_iso(ms, out, size);
}

/* Reads the secret from a file. A trailing newline is not part of it (files written with
 * echo have one); everything else is, byte for byte. */
static int read_secret_file(const char *path, struct cli_ctx *ctx)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        cli_errorf("--secret-file %s: %s", path, strerror(errno));
        return CLI_EXIT_USAGE;
    }
    char *buf = malloc(SECRET_MAX + 1);
    size_t len = 0;
    if (!buf) {
        close(fd);
        cli_errorf("out of memory");
        return CLI_EXIT_USAGE;
    }
    for (;;) {
        ssize_t n = read(fd, buf + len, SECRET_MAX + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            cli_errorf("--secret-file %s: %s", path, strerror(errno));
            explicit_bzero(buf, SECRET_MAX + 1);
            free(buf);
            close(fd);
            return CLI_EXIT_USAGE;
        }
        if (n == 0 || len + (size_t)n > SECRET_MAX) {
            len += (size_t)n;
            break;
        }
        len += (size_t)n;
    }
    close(fd);
    if (len > SECRET_MAX) {
        cli_errorf("--secret-file %s: longer than %d bytes; is it the right file?", path,
                   SECRET_MAX);
        explicit_bzero(buf, SECRET_MAX + 1);
        free(buf);
        return CLI_EXIT_USAGE;
    }
    if (len > 0 && buf[len - 1] == '\n')
        len--;
    if (len > 0 && buf[len - 1] == '\r')
        len--;
    if (len == 0) {
        cli_errorf("--secret-file %s: the file is empty", path);
        free(buf);
        return CLI_EXIT_USAGE;
    }
    ctx->secret = buf;
    ctx->secret_len = len;
    return CLI_EXIT_OK;
}

static int load_secret(struct cli_ctx *ctx, const char *secret_file)
{
    if (!secret_file || !*secret_file)
        secret_file = getenv("LODE_SECRET_FILE");
    if (secret_file && *secret_file)
        return read_secret_file(secret_file, ctx);
    const char *s = getenv("LODE_CLUSTER_SECRET");
    if (s && *s) {
        ctx->secret_len = strlen(s);
        ctx->secret = malloc(ctx->secret_len + 1);
        if (!ctx->secret) {
            cli_errorf("out of memory");
            return CLI_EXIT_USAGE;
        }
        memcpy(ctx->secret, s, ctx->secret_len + 1);
        return CLI_EXIT_OK;
    }
    cli_errorf("no cluster secret: pass --secret-file FILE or set LODE_SECRET_FILE "
               "(or LODE_CLUSTER_SECRET)");
    return CLI_EXIT_USAGE;
}

/* Takes "--name VALUE" or "--name=VALUE" at argv[*i]; returns the value or NULL (error
 * printed) when it is missing. */
static const char *opt_value(int argc, char **argv, int *i, const char *name)
{
    size_t n = strlen(name);
    if (argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (*i + 1 >= argc) {
        cli_errorf("%s needs a value", name);
        return NULL;
    }
    return argv[++*i];
}

static bool is_opt(const char *arg, const char *name)
{
    size_t n = strlen(name);
    return strncmp(arg, name, n) == 0 && (arg[n] == '\0' || arg[n] == '=');
}

struct parsed {
    const char *meta, *secret_file, *timeout;
    bool json, help, version;
    int npos;
    char **pos;
    unsigned nflags;
    char **flags;              /* options main does not know: the verb's own, checked later */
    char **values;             /* their values (NULL for a boolean option) */
};

/* Whether some verb declares `opt` ("--owner", n bytes) with a value: then "--owner USER"
 * takes the next word as its value wherever it appears, before the verb is known. */
static bool any_verb_takes_value(const char *opt, size_t n)
{
    char name[64];
    if (n >= sizeof(name))
        return false;
    memcpy(name, opt, n);
    name[n] = '\0';
    for (size_t k = 0; k < NNOUNS; k++)
        for (const struct cli_verb *v = nouns[k]->verbs; v->name; v++)
            if (verb_opt_kind(v, name, n) == 2)
                return true;
    return false;
}

static int parse_args(int argc, char **argv, struct parsed *p)
{
    bool ended = false;
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (ended || a[0] != '-' || a[1] == '\0') {
            p->pos[p->npos++] = a;
        } else if (strcmp(a, "--") == 0) {
            ended = true;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            p->help = true;
        } else if (strcmp(a, "--version") == 0) {
            p->version = true;
        } else if (strcmp(a, "--json") == 0) {
            p->json = true;
        } else if (is_opt(a, "--meta")) {
            if (!(p->meta = opt_value(argc, argv, &i, "--meta")))
                return CLI_EXIT_USAGE;
        } else if (is_opt(a, "--secret-file")) {
            if (!(p->secret_file = opt_value(argc, argv, &i, "--secret-file")))
                return CLI_EXIT_USAGE;
        } else if (is_opt(a, "--timeout")) {
            if (!(p->timeout = opt_value(argc, argv, &i, "--timeout")))
                return CLI_EXIT_USAGE;
        } else {
            size_t n = strcspn(a, "=");
            char *value = a[n] == '=' ? a + n + 1 : NULL;
            if (!value && any_verb_takes_value(a, n)) {
                if (i + 1 >= argc) {
                    cli_errorf("%s needs a value", a);
                    return CLI_EXIT_USAGE;
                }
                value = argv[++i];
            }
            p->values[p->nflags] = value;
            p->flags[p->nflags++] = a;
        }
    }
    return CLI_EXIT_OK;
}

static int run(int argc, char **argv, struct cli_ctx *ctx)
{
    struct parsed p = {0};
    p.pos = calloc((size_t)argc + 1, sizeof(char *));
    p.flags = calloc((size_t)argc + 1, sizeof(char *));
    p.values = calloc((size_t)argc + 1, sizeof(char *));
    if (!p.pos || !p.flags || !p.values) {
        free(p.pos);
        free(p.flags);
        free(p.values);
        return CLI_EXIT_USAGE;
    }
    int rc = parse_args(argc, argv, &p);
    if (rc != CLI_EXIT_OK)
        goto out;
    if (p.version) {
        printf("lodectl %s\n", PACKAGE_VERSION);
        goto out;
    }

    /* help, help NOUN, NOUN --help, NOUN help, NOUN VERB --help */
    bool help_word = p.npos > 0 && strcmp(p.pos[0], "help") == 0;
    if (p.help || help_word || (p.npos == 2 && strcmp(p.pos[1], "help") == 0)) {
        const char *nn = help_word ? (p.npos > 1 ? p.pos[1] : NULL) : (p.npos ? p.pos[0] : NULL);
        const struct cli_noun *n = nn ? find_noun(nn) : NULL;
        if (nn && !n) {
            cli_errorf("unknown command '%s'", nn);
            usage(stderr);
            rc = CLI_EXIT_USAGE;
        } else if (n) {
            noun_usage(n, stdout);
        } else {
            usage(stdout);
        }
        goto out;
    }
    /* Options of no verb at all fail before the command is looked at, as they always did. */
    for (unsigned i = 0; i < p.nflags; i++) {
        bool known = false;
        for (size_t k = 0; k < NNOUNS && !known; k++)
            for (const struct cli_verb *v = nouns[k]->verbs; v->name && !known; v++)
                known = verb_has_flag(v, p.flags[i], p.values[i]);
        if (!known) {
            cli_errorf("unknown option '%s' (see lodectl --help)", p.flags[i]);
            rc = CLI_EXIT_USAGE;
            goto out;
        }
    }
    if (p.npos == 0) {
        usage(stderr);
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    const struct cli_noun *noun = find_noun(p.pos[0]);
    if (!noun) {
        cli_errorf("unknown command '%s'", p.pos[0]);
        usage(stderr);
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    if (p.npos < 2) {
        cli_errorf("%s: which verb?", noun->name);
        noun_usage(noun, stderr);
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    const struct cli_verb *verb = find_verb(noun, p.pos[1]);
    if (!verb) {
        cli_errorf("%s: unknown verb '%s'", noun->name, p.pos[1]);
        noun_usage(noun, stderr);
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    for (unsigned i = 0; i < p.nflags; i++) {
        if (!verb_has_flag(verb, p.flags[i], p.values[i])) {
            cli_errorf("%s %s: unknown option '%s'", noun->name, verb->name, p.flags[i]);
            noun_usage(noun, stderr);
            rc = CLI_EXIT_USAGE;
            goto out;
        }
    }
    ctx->flags = p.flags;
    ctx->values = p.values;
    ctx->n_flags = p.nflags;
    unsigned nargs = (unsigned)p.npos - 2;
    if (nargs < verb->min_args || nargs > verb->max_args) {
        cli_errorf("%s %s: expects %s%s", noun->name, verb->name,
                   *verb->args ? verb->args : "no arguments",
                   nargs < verb->min_args ? "" : " (too many arguments)");
        noun_usage(noun, stderr);
        rc = CLI_EXIT_USAGE;
        goto out;
    }

    ctx->json = p.json;
    ctx->timeout_ms = DEFAULT_TIMEOUT_MS;
    if (p.timeout) {
        uint64_t ms = 0;
        if (cmn_parse_duration_ms(p.timeout, &ms) != 0 || ms == 0 || ms > UINT32_MAX) {
            cli_errorf("--timeout '%s': expected a duration such as 5s or 500ms", p.timeout);
            rc = CLI_EXIT_USAGE;
            goto out;
        }
        ctx->timeout_ms = (uint32_t)ms;
    }
    if (!(noun->flags & CLI_OFFLINE)) {
        ctx->meta_addrs = p.meta && *p.meta ? p.meta : getenv("LODE_META");
        if ((!ctx->meta_addrs || !*ctx->meta_addrs) && !(noun->flags & CLI_META_OPTIONAL)) {
            no_meta_address();
            rc = CLI_EXIT_USAGE;
            goto out;
        }
        rc = load_secret(ctx, p.secret_file);
        if (rc != CLI_EXIT_OK)
            goto out;
    }
    rc = verb->run(ctx, (int)nargs, p.pos + 2);
out:
    ctx->flags = NULL;
    ctx->values = NULL;
    ctx->n_flags = 0;
    free(p.pos);
    free(p.flags);
    free(p.values);
    return rc;
}

int main(int argc, char **argv)
{
    struct cli_ctx ctx = {0};
    int rc = run(argc, argv, &ctx);
    if (ctx.mc)
        cmn_meta_client_destroy(ctx.mc);
    if (ctx.secret) {
        explicit_bzero(ctx.secret, ctx.secret_len);
        free(ctx.secret);
    }
    if (fflush(stdout) != 0 && rc == CLI_EXIT_OK) {
        cli_errorf("writing output: %s", strerror(errno));
        rc = CLI_EXIT_REFUSED;
    }
    return rc;
}
