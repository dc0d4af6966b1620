/* object_layout BUCKET KEY: prints the erasure layout lode-meta recorded for an object, for
 * shell tests that must check how the gateway stored something (lodectl has no object
 * noun). One line per layout:
 *
 *   object K+M stripes=N chunks=C          (a single-part object)
 *   part P K+M stripes=N chunks=C          (each part of a multipart object)
 *
 * where C counts the chunk references of every stripe; with --nids after the key, each
 * layout line is followed by one line per stripe, "stripe S NID..." (the node of each chunk,
 * data chunks first; 0 for none), for tests that must pick a node by what it holds. The
 * meta addresses and the secret
 * come from LODE_META and LODE_SECRET_FILE (as ops/quickstart.sh's env file sets them).
 * Exit status: 0 printed, 1 meta refused (no such object, ...), 2 usage or setup, 3 meta
 * unreachable. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/meta_client.h"
#include "common/rpc_methods.h"
#include "meta.pb-c.h"

static int show_nids;

static void print_layout(const char *what, const Lode__Layout *l)
{
    size_t chunks = 0;
    for (size_t i = 0; i < l->n_stripes; i++)
        chunks += l->stripes[i]->n_chunks;
    printf("%s %u+%u stripes=%zu chunks=%zu\n", what, l->k, l->m, l->n_stripes, chunks);
    for (size_t i = 0; show_nids && i < l->n_stripes; i++) {
        printf("stripe %zu", i);
        for (size_t c = 0; c < l->stripes[i]->n_chunks; c++) {
            const Lode__ChunkRef *r = l->stripes[i]->chunks[c];
            printf(" %u", r ? (unsigned)r->nid : 0u);
        }
        printf("\n");
    }
}

static int read_secret(const char *path, char *buf, size_t cap, size_t *len)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    *len = fread(buf, 1, cap, f);
    fclose(f);
    while (*len && (buf[*len - 1] == '\n' || buf[*len - 1] == '\r'))
        (*len)--;
    return *len ? 0 : -1;
}

int main(int argc, char **argv)
{
    const char *addrs = getenv("LODE_META"), *secret_file = getenv("LODE_SECRET_FILE");
    char secret[4096];
    size_t secret_len = 0;
    show_nids = argc == 4 && strcmp(argv[3], "--nids") == 0;
    if ((argc != 3 && !show_nids) || !addrs || !secret_file) {
        fprintf(stderr, "usage: LODE_META=ADDRS LODE_SECRET_FILE=FILE object_layout BUCKET KEY "
                        "[--nids]\n");
        return 2;
    }
    if (read_secret(secret_file, secret, sizeof(secret), &secret_len)) {
        fprintf(stderr, "object_layout: cannot read the secret from %s\n", secret_file);
        return 2;
    }
    struct cmn_meta_client *mc;
    struct cmn_err err;
    cmn_err_clear(&err);
    if (cmn_meta_client_create(addrs, secret, secret_len, &mc, &err)) {
        fprintf(stderr, "object_layout: %s\n", cmn_err_text(&err));
        return 2;
    }
    memset(secret, 0, sizeof(secret));
    Lode__ObjectGetRequest q = LODE__OBJECT_GET_REQUEST__INIT;
    struct cmn_rpc_result res;
    q.bucket = argv[1];
    q.key = argv[2];
    cmn_rpc_result_init(&res);
    int rc = cmn_meta_client_call(mc, CMN_RPC_OBJECT_GET, &q.base, 10000, &res);
    int code = 0;
    if (rc) {
        fprintf(stderr, "object_layout: %s/%s: %s\n", argv[1], argv[2],
                res.message[0] ? res.message : lode_strerror(rc));
        code = rc < 0 && rc > LODE_ERRNO_MAX ? 3 : 1;
    } else {
        Lode__ObjectRecord *o = lode__object_record__unpack(NULL, res.body.len, res.body.data);
        if (!o) {
            fprintf(stderr, "object_layout: the answer does not unpack\n");
            code = 1;
        } else {
            if (o->layout)
                print_layout("object", o->layout);
            for (size_t i = 0; i < o->n_parts; i++) {
                char what[32];
                snprintf(what, sizeof(what), "part %u", o->parts[i]->number);
                if (o->parts[i]->layout)
                    print_layout(what, o->parts[i]->layout);
            }
            lode__object_record__free_unpacked(o, NULL);
        }
    }
    cmn_rpc_result_free(&res);
    cmn_meta_client_destroy(mc);
    return code;
}
