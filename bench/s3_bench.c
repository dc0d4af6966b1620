/* bench/s3_bench: an HTTP/1.1 load generator for S3 GET and PUT, used by bench/s3 to
 * compare lode-gateway with a plain web server serving the same bytes in the same run.
 *
 *   s3_bench gen --dir DIR --bucket B --prefix P --size N --objects K [--seed S]
 *       writes DIR/B/P00000 ... (K files of N bytes): exactly the bytes `run` sends and
 *       expects, so that a static server can serve them.
 *   s3_bench mkbucket --endpoint HOST:PORT --bucket B
 *   s3_bench run --endpoint HOST:PORT --bucket B --prefix P --op get|put --size N
 *       --objects K [--conns C] [--seconds T | --requests R] [--seed S] [--pids P1,P2,...]
 *
 * `run` opens C keep-alive connections, one thread each, and issues requests for
 * /B/P<i> (i cycling over the K objects) until T seconds have passed or R requests are done.
 * Every request is SigV4-signed (gateway/sigv4.h) with UNSIGNED-PAYLOAD, from
 * AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_DEFAULT_REGION, whichever server it goes
 * to, so both sides of a comparison pay the same client cost; a server that ignores the
 * signature (a static file server) serves the same URLs. PUT bodies are sent from memory;
 * GET bodies are read into a large buffer and discarded, except that the first GET of each
 * object is compared byte for byte with what `gen` writes (a server that returns wrong or
 * short bodies fails the run instead of looking fast). Object i's bytes are a SplitMix64
 * stream seeded with (seed, i).
 *
 * One line of results on stdout, key=value: requests, bytes, seconds, MB/s (10^6 bytes),
 * ops/s, objects verified, CPU seconds used meanwhile by the processes in --pids (from
 * /proc/PID/stat, children not included) and by this client.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/clock.h"
#include "gateway/sigv4.h"

#define RBUF_SIZE (1u << 20)
#define HEAD_MAX (64u << 10)
#define MAX_PIDS 64

struct opts {
    const char *endpoint;
    char host[256];
    char port[16];
    const char *bucket;
    const char *prefix;
    const char *dir;
    const char *op;
    uint64_t size;
    unsigned objects;
    unsigned conns;
    double seconds;
    uint64_t requests;
    uint64_t seed;
    const char *ak, *sk, *region;
    int pids[MAX_PIDS];
    size_t n_pids;
};

static struct opts o = {.prefix = "obj", .objects = 1, .conns = 4, .seed = 1};
static uint8_t **data;              /* data[i]: object i's bytes */
static atomic_uint *verified_flag;  /* claimed by the first GET of object i */
static atomic_uint_fast64_t next_req, done_req, done_bytes, n_verified;
static atomic_int failed;
static uint64_t deadline_ns;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("s3_bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint8_t *make_object(unsigned i)
{
    uint8_t *p = malloc(o.size ? o.size : 1);
    if (!p)
        die("out of memory for %" PRIu64 " bytes", o.size);
    uint64_t x = o.seed * 1000003u + i;
    size_t n = 0;
    for (; n + 8 <= o.size; n += 8) {
        uint64_t v = splitmix(&x);
        memcpy(p + n, &v, 8);
    }
    uint64_t v = splitmix(&x);
    memcpy(p + n, &v, o.size - n);
    return p;
}

static void object_path(char *out, size_t n, unsigned i)
{
    snprintf(out, n, "/%s/%s%05u", o.bucket, o.prefix, i);
}

/* ---- one connection ---- */

struct conn {
    int fd;
    uint8_t *rbuf;
    size_t rlen;            /* bytes in rbuf not consumed yet */
    struct cmn_buf head;
};

static int conn_open(struct conn *c)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
    int rc = getaddrinfo(o.host, o.port, &hints, &ai);
    if (rc != 0)
        die("%s:%s: %s", o.host, o.port, gai_strerror(rc));
    c->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        die("socket: %s", strerror(errno));
    /* Large socket buffers so that the client is not what limits a 1 GiB stream. */
    int big = 8 << 20, one = 1;
    setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) != 0)
        die("connect %s: %s", o.endpoint, strerror(errno));
    freeaddrinfo(ai);
    c->rlen = 0;
    return 0;
}

static void send_all(int fd, struct iovec *iov, int n)
{
    while (n > 0) {
        ssize_t w = writev(fd, iov, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            die("send: %s", strerror(errno));
        }
        while (n > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++, n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
}

static size_t fill(struct conn *c)
{
    for (;;) {
        ssize_t r = recv(c->fd, c->rbuf + c->rlen, RBUF_SIZE - c->rlen, 0);
        if (r > 0) {
            c->rlen += (size_t)r;
            return (size_t)r;
        }
        if (r == 0)
            die("the server closed the connection mid-response");
        if (errno != EINTR)
            die("recv: %s", strerror(errno));
    }
}

/* Case-insensitive search for header `name` in the response head; its value or NULL. */
static const char *head_value(const char *head, size_t n, const char *name, size_t *vlen)
{
    size_t nl = strlen(name);
    const char *p = memchr(head, '\n', n), *end = head + n;
    while (p && p + 1 < end) {
        p++;
        if ((size_t)(end - p) > nl + 1 && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (v < end && (*v == ' ' || *v == '\t'))
                v++;
            const char *e = v;
            while (e < end && *e != '\r' && *e != '\n')
                e++;
            *vlen = (size_t)(e - v);
            return v;
        }
        p = memchr(p, '\n', (size_t)(end - p));
    }
    return NULL;
}

/* Reads one response; compares its body with `expect` (expect_len bytes) when not NULL.
 * Returns the body length. Dies on anything but a 2xx with a Content-Length. */
static uint64_t read_response(struct conn *c, const char *what, const uint8_t *expect,
                              uint64_t expect_len, bool *keep)
{
    uint8_t *eoh;
    while (!(eoh = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4))) {
        if (c->rlen >= HEAD_MAX)
            die("%s: response head over %u bytes", what, HEAD_MAX);
        fill(c);
    }
    size_t hlen = (size_t)(eoh - c->rbuf) + 4;
    const char *h = (const char *)c->rbuf;
    /* "HTTP/1.x NNN": parsed by hand, the buffer is not NUL-terminated. */
    if (hlen < 12 || memcmp(h, "HTTP/1.", 7) != 0 || h[8] != ' ' || h[9] < '1' || h[9] > '5' ||
        h[10] < '0' || h[10] > '9' || h[11] < '0' || h[11] > '9')
        die("%s: not an HTTP response", what);
    int status = (h[9] - '0') * 100 + (h[10] - '0') * 10 + (h[11] - '0');
    size_t vl;
    const char *te = head_value(h, hlen, "transfer-encoding", &vl);
    if (te)
        die("%s: chunked responses are not supported (status %d)", what, status);
    const char *cl = head_value(h, hlen, "content-length", &vl);
    uint64_t len = cl ? strtoull(cl, NULL, 10) : 0;
    const char *cn = head_value(h, hlen, "connection", &vl);
    *keep = !(cn && vl == 5 && strncasecmp(cn, "close", 5) == 0);
    if (status < 200 || status > 299) {
        size_t show = c->rlen - hlen < 400 ? c->rlen - hlen : 400;
        die("%s: HTTP %d: %.*s", what, status, (int)show, h + hlen);
    }
    if (!cl && status != 204)
        die("%s: HTTP %d without Content-Length", what, status);
    if (expect && len != expect_len)
        die("%s: Content-Length %" PRIu64 ", expected %" PRIu64, what, len, expect_len);
    /* The body: what follows the head in rbuf, then straight from the socket. */
    size_t have = c->rlen - hlen;
    if (have > len)
        die("%s: %zu bytes after a %" PRIu64 "-byte body", what, have - (size_t)len, len);
    if (expect && memcmp(c->rbuf + hlen, expect, have) != 0)
        die("%s: body differs from the expected bytes in its first %zu bytes", what, have);
    uint64_t got = have;
    c->rlen = 0;
    while (got < len) {
        size_t want = len - got < RBUF_SIZE ? (size_t)(len - got) : RBUF_SIZE;
        ssize_t r = recv(c->fd, c->rbuf, want, 0);
        if (r == 0)
            die("%s: connection closed after %" PRIu64 " of %" PRIu64 " bytes", what, got, len);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            die("%s: recv: %s", what, strerror(errno));
        }
        if (expect && memcmp(c->rbuf, expect + got, (size_t)r) != 0)
            die("%s: body differs from the expected bytes near offset %" PRIu64, what, got);
        got += (uint64_t)r;
    }
    return len;
}

/* Builds the signed request head for `method` on `path` into c->head. */
static void build_head(struct conn *c, const char *method, const char *path, uint64_t body_len,
                       bool with_body)
{
    char hostport[300];
    snprintf(hostport, sizeof(hostport), "%s:%s", o.host, o.port);
    struct gw_header hdrs[2] = {
        {GW_STR("host"), {hostport, strlen(hostport)}},
        {GW_STR("x-amz-content-sha256"), GW_STR("UNSIGNED-PAYLOAD")},
    };
    struct gw_request_head rh = {
        .method = {method, strlen(method)},
        .target = {path, strlen(path)},
        .path = {path, strlen(path)},
        .query = {"", 0},
        .headers = hdrs,
        .n_headers = 2,
    };
    struct gw_sigv4_signer s = {
        .access_key = o.ak, .secret = o.sk, .region = o.region, .time = (int64_t)time(NULL),
    };
    struct cmn_buf authz;
    cmn_buf_init(&authz);
    char ts[GW_SIGV4_TIMESTAMP_LEN + 1];
    if (gw_sigv4_sign(&s, &rh, "UNSIGNED-PAYLOAD", &authz, ts, NULL) != 0 ||
        cmn_buf_terminate(&authz) != 0)
        die("signing %s %s failed", method, path);
    cmn_buf_reset(&c->head);
    int rc = cmn_buf_printf(&c->head,
                            "%s %s HTTP/1.1\r\nHost: %s\r\nx-amz-date: %s\r\n"
                            "x-amz-content-sha256: UNSIGNED-PAYLOAD\r\nAuthorization: %s\r\n",
                            method, path, hostport, ts, (const char *)authz.data);
    if (rc == 0 && with_body)
        rc = cmn_buf_printf(&c->head, "Content-Length: %" PRIu64 "\r\n", body_len);
    if (rc == 0)
        rc = cmn_buf_printf(&c->head, "\r\n");
    if (rc != 0)
        die("out of memory");
    cmn_buf_free(&authz);
}

static bool take_request(uint64_t *n)
{
    if (atomic_load(&failed))
        return false;
    if (o.requests) {
        *n = atomic_fetch_add(&next_req, 1);
        return *n < o.requests;
    }
    if (cmn_mono_ns() >= deadline_ns)
        return false;
    *n = atomic_fetch_add(&next_req, 1);
    return true;
}

static void *worker(void *arg)
{
    (void)arg;
    struct conn c = {.fd = -1};
    c.rbuf = malloc(RBUF_SIZE);
    if (!c.rbuf)
        die("out of memory");
    cmn_buf_init(&c.head);
    bool put = strcmp(o.op, "put") == 0;
    uint64_t n;
    while (take_request(&n)) {
        if (c.fd < 0)
            conn_open(&c);
        unsigned i = (unsigned)(n % o.objects);
        char path[512], what[600];
        object_path(path, sizeof(path), i);
        snprintf(what, sizeof(what), "%s %s", put ? "PUT" : "GET", path);
        build_head(&c, put ? "PUT" : "GET", path, o.size, put);
        struct iovec iov[2] = {{c.head.data, c.head.len}, {data[i], put ? o.size : 0}};
        send_all(c.fd, iov, put ? 2 : 1);
        const uint8_t *expect = NULL;
        if (!put && atomic_exchange(&verified_flag[i], 1) == 0)
            expect = data[i];
        bool keep;
        uint64_t got = read_response(&c, what, expect, o.size, &keep);
        if (expect)
            atomic_fetch_add(&n_verified, 1);
        if (!put && got != o.size)
            die("%s: %" PRIu64 " bytes, expected %" PRIu64, what, got, o.size);
        atomic_fetch_add(&done_req, 1);
        atomic_fetch_add(&done_bytes, put ? o.size : got);
        if (!keep) {
            close(c.fd);
            c.fd = -1;
        }
    }
    if (c.fd >= 0)
        close(c.fd);
    free(c.rbuf);
    cmn_buf_free(&c.head);
    return NULL;
}

/* ---- CPU time of other processes ---- */

static double proc_cpu_s(int pid)
{
    char path[64], buf[2048];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t r = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (r <= 0)
        return 0;
    buf[r] = 0;
    /* Fields after the command name, which may hold spaces: skip to the last ')'. */
    char *p = strrchr(buf, ')');
    if (!p)
        return 0;
    unsigned long ut = 0, st = 0;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double pids_cpu_s(void)
{
    double t = 0;
    for (size_t i = 0; i < o.n_pids; i++)
        t += proc_cpu_s(o.pids[i]);
    return t;
}

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* ---- commands ---- */

static void cmd_gen(void)
{
    if (!o.dir)
        die("gen needs --dir");
    char path[4096];
    for (unsigned i = 0; i < o.objects; i++) {
        snprintf(path, sizeof(path), "%s", o.dir);
        size_t dl = strlen(path);
        object_path(path + dl, sizeof(path) - dl, i);
        /* Create the directories of the key (bucket, and any '/' in the prefix). */
        for (char *s = path + dl + 1; (s = strchr(s, '/')); s++) {
            *s = 0;
            if (mkdir(path, 0755) != 0 && errno != EEXIST)
                die("mkdir %s: %s", path, strerror(errno));
            *s = '/';
        }
        uint8_t *p = make_object(i);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(p, 1, o.size, f) != o.size || fclose(f) != 0)
            die("writing %s failed", path);
        free(p);
    }
}

static void cmd_mkbucket(void)
{
    struct conn c = {.fd = -1};
    c.rbuf = malloc(RBUF_SIZE);
    if (!c.rbuf)
        die("out of memory");
    cmn_buf_init(&c.head);
    conn_open(&c);
    char path[300];
    snprintf(path, sizeof(path), "/%s", o.bucket);
    build_head(&c, "PUT", path, 0, true);
    struct iovec iov = {c.head.data, c.head.len};
    send_all(c.fd, &iov, 1);
    bool keep;
    read_response(&c, "CreateBucket", NULL, 0, &keep);
    close(c.fd);
    free(c.rbuf);
    cmn_buf_free(&c.head);
}

static void cmd_run(void)
{
    if (strcmp(o.op, "get") != 0 && strcmp(o.op, "put") != 0)
        die("--op must be get or put");
    if (o.conns == 0 || o.conns > 1024 || o.objects == 0)
        die("--conns must be 1..1024 and --objects at least 1");
    data = calloc(o.objects, sizeof(*data));
    verified_flag = calloc(o.objects, sizeof(*verified_flag));
    if (!data || !verified_flag)
        die("out of memory");
    for (unsigned i = 0; i < o.objects; i++)
        data[i] = make_object(i);
    pthread_t *th = calloc(o.conns, sizeof(*th));
    if (!th)
        die("out of memory");
    double cpu0 = pids_cpu_s(), self0 = self_cpu_s();
    uint64_t t0 = cmn_mono_ns();
    deadline_ns = t0 + (uint64_t)(o.seconds * 1e9);
    for (unsigned i = 0; i < o.conns; i++)
        if (pthread_create(&th[i], NULL, worker, NULL) != 0)
            die("pthread_create failed");
    for (unsigned i = 0; i < o.conns; i++)
        pthread_join(th[i], NULL);
    double el = (double)(cmn_mono_ns() - t0) / 1e9;
    double cpu = pids_cpu_s() - cpu0, self = self_cpu_s() - self0;
    uint64_t reqs = atomic_load(&done_req), bytes = atomic_load(&done_bytes);
    printf("op=%s size=%" PRIu64 " conns=%u objects=%u requests=%" PRIu64 " bytes=%" PRIu64
           " seconds=%.3f mbps=%.1f opsps=%.1f verified=%" PRIu64 " server_cpu_s=%.2f"
           " client_cpu_s=%.2f\n",
           o.op, o.size, o.conns, o.objects, reqs, bytes, el, (double)bytes / el / 1e6,
           (double)reqs / el, (uint64_t)atomic_load(&n_verified), cpu, self);
    for (unsigned i = 0; i < o.objects; i++)
        free(data[i]);
    free(data);
    free(verified_flag);
    free(th);
}

static uint64_t parse_u64(const char *s, const char *name)
{
    char *e;
    errno = 0;
    unsigned long long v = strtoull(s, &e, 10);
    uint64_t mul = 1;
    if (*e == 'K' || *e == 'k')
        mul = 1024, e++;
    else if (*e == 'M')
        mul = 1024 * 1024, e++;
    else if (*e == 'G')
        mul = 1024ull * 1024 * 1024, e++;
    if (*e == 'i' && e[1] == 'B')
        e += 2;
    if (errno || *e || s[0] == '-' || s[0] == 0)
        die("%s: not a number: %s", name, s);
    return (uint64_t)v * mul;
}

static void usage(void)
{
    fputs("usage: s3_bench gen --dir DIR --bucket B [--prefix P] --size N [--objects K]\n"
          "       s3_bench mkbucket --endpoint HOST:PORT --bucket B\n"
          "       s3_bench run --endpoint HOST:PORT --bucket B [--prefix P] --op get|put\n"
          "                --size N [--objects K] [--conns C] (--seconds T | --requests R)\n"
          "                [--seed S] [--pids PID,...]\n"
          "Credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION.\n",
          stderr);
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        usage();
    const char *cmd = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc)
            usage();
        const char *v = argv[++i];
        if (strcmp(a, "--endpoint") == 0)
            o.endpoint = v;
        else if (strcmp(a, "--bucket") == 0)
            o.bucket = v;
        else if (strcmp(a, "--prefix") == 0)
            o.prefix = v;
        else if (strcmp(a, "--dir") == 0)
            o.dir = v;
        else if (strcmp(a, "--op") == 0)
            o.op = v;
        else if (strcmp(a, "--size") == 0)
            o.size = parse_u64(v, a);
        else if (strcmp(a, "--objects") == 0)
            o.objects = (unsigned)parse_u64(v, a);
        else if (strcmp(a, "--conns") == 0)
            o.conns = (unsigned)parse_u64(v, a);
        else if (strcmp(a, "--seconds") == 0)
            o.seconds = atof(v);
        else if (strcmp(a, "--requests") == 0)
            o.requests = parse_u64(v, a);
        else if (strcmp(a, "--seed") == 0)
            o.seed = parse_u64(v, a);
        else if (strcmp(a, "--pids") == 0) {
            char *dup = strdup(v), *save = NULL;
            for (char *t = strtok_r(dup, ",", &save); t && o.n_pids < MAX_PIDS;
                 t = strtok_r(NULL, ",", &save))
                o.pids[o.n_pids++] = atoi(t);
            free(dup);
        } else
            usage();
    }
    if (!o.bucket || !o.bucket[0])
        die("--bucket is required");
    if (strcmp(cmd, "gen") == 0) {
        cmd_gen();
        return 0;
    }
    if (!o.endpoint)
        die("--endpoint HOST:PORT is required");
    const char *colon = strrchr(o.endpoint, ':');
    if (!colon || (size_t)(colon - o.endpoint) >= sizeof(o.host) || strlen(colon + 1) >= sizeof(o.port))
        die("--endpoint must be HOST:PORT");
    memcpy(o.host, o.endpoint, (size_t)(colon - o.endpoint));
    snprintf(o.port, sizeof(o.port), "%s", colon + 1);
    o.ak = getenv("AWS_ACCESS_KEY_ID");
    o.sk = getenv("AWS_SECRET_ACCESS_KEY");
    o.region = getenv("AWS_DEFAULT_REGION");
    if (!o.region || !*o.region)
        o.region = "us-east-1";
    if (!o.ak || !o.sk)
        die("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set");
    if (strcmp(cmd, "mkbucket") == 0)
        cmd_mkbucket();
    else if (strcmp(cmd, "run") == 0) {
        if (!o.op || (o.seconds <= 0 && o.requests == 0))
            die("run needs --op and --seconds or --requests");
        cmd_run();
    } else
        usage();
    return 0;
}
