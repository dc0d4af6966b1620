/* A fake lode-gateway and three fake tcp data sources for liblode's unit tests: it keeps
 * objects in memory, verifies every request's SigV4 signature with the gateway's verifier,
 * serves plain GETs (ranges, parts of PART_SIZE bytes), PUTs and HEADs, issues data sessions,
 * and serves tcp fan-out GETs by sending DATA frames (common/dp_proto.h) over the sources'
 * connections, striped 64 KiB round-robin, then the reply headers of the completion rule.
 * enum mode selects a misbehaviour (declines, lies) for the fallback tests. Object bytes
 * come from pattern(), so tests compare landed bytes with values computed independently
 * of liblode. */
#ifndef LODE_TESTS_UNIT_CLIENT_FAKE_GATEWAY_H
#define LODE_TESTS_UNIT_CLIENT_FAKE_GATEWAY_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <lode/client.h>

#include "tests/unit/client/fake_server.h"

#define AK "AKIDLODETEST"
#define SK "secret/key+for+tests"
#define N_SRC 3
#define STRIPE (64 * 1024)
#define PART_SIZE 1000

enum mode {
    MODE_NORMAL,
    MODE_DECLINE_BODY,  /* 200, x-amz-rdma-reply 501, the object in the body */
    MODE_DECLINE_501,   /* 501 RDMANotSupported */
    MODE_IGNORE,        /* a server that knows no tokens */
    MODE_REFUSE_400,    /* 400 InvalidRDMAToken */
    MODE_NO_SESSION,    /* POST /?x-lode-session -> 501 */
    MODE_LIE_BYTES,     /* reports bytes a source never sent */
    MODE_SHORT_SOURCES, /* sources account for fewer bytes than transferred */
    MODE_SLOW,          /* answers after 300 ms */
};

struct obj {
    char key[64];
    uint8_t *data;
    size_t len;
};

struct source {
    uint32_t id;
    int listen_fd;
    uint16_t port;
    int fd;                        /* the client's data connection, -1 if none */
    pthread_t thread;
};

struct gw {
    struct fake_server http;
    pthread_mutex_t mu;
    enum mode mode;
    struct obj objs[16];
    int n_objs;
    struct source src[N_SRC];
    volatile bool stop;
    int sessions, token_gets, plain_gets, unsigned_tokens, bad_sigs, stale_sent;
    uint64_t last_base, last_window;
    uint32_t last_tag;
};

extern struct gw G;

/* Starts the gateway and the sources (bails out on failure); stops and frees them. */
void fgw_start(void);
void fgw_stop(void);

/* Byte i of every object the tests write. */
uint8_t pattern(uint64_t i);

/* Sends window bytes [off, off+len) as DATA frames of at most 16 KiB on source s. The caller
 * holds G.mu. */
void send_frames(struct source *s, uint64_t base, uint32_t tag, uint64_t off,
                 const uint8_t *data, uint64_t len);

/* Checks a request's SigV4 signature (AK/SK) as the gateway would; *token_signed says
 * whether x-amz-rdma-token is among the signed headers. */
bool fgw_sig_ok(const struct fs_request *r, bool *token_signed);

/* Answers an S3 error document with `extra` header lines (or NULL). Returns true. */
bool fgw_error_doc(int fd, int status, const char *code, const char *extra);

/* A client of the fake gateway (bails out on failure). */
lode_client *client(enum lode_transport t, uint32_t flags, uint32_t timeout_ms,
                    const char *secret);

/* Whether buf[0..n) holds object bytes first..first+n-1. */
bool same(const uint8_t *buf, uint64_t first, uint64_t n);

/* n bytes of malloc'd memory filled with 0xee. */
uint8_t *mem(size_t n);

/* PUTs a pattern() object of len bytes as bkt/key from host memory. */
int put_object(lode_client *c, const char *key, size_t len);

#endif
