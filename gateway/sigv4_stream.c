#include "gateway/sigv4_stream.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "common/hmac.h"
#include "common/id.h"
#include <lode/errno.h>

enum {
    S_SIZE,     /* reading a chunk-size line */
    S_DATA,     /* passing chunk data through */
    S_DATA_CR,  /* the CRLF after chunk data */
    S_DATA_LF,
    S_TRAILER,  /* reading trailer lines up to the empty one */
    S_DONE,
    S_FAILED,
};

static const char SIG_EXT[] = ";chunk-signature=";
static const char EMPTY_SHA256_HEX[] =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
static const char TRAILER_SIG[] = "x-amz-trailer-signature";

/* Fetched once: an implicit fetch on every EVP_DigestInit_ex would walk the provider
 * tables per chunk. Immutable afterwards and shared by all threads. */
static pthread_once_t md_once = PTHREAD_ONCE_INIT;
static EVP_MD *sha256_md;

static void fetch_md(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static EVP_MD_CTX *md_new(void)
{
    pthread_once(&md_once, fetch_md);
    return sha256_md ? EVP_MD_CTX_new() : NULL;
}

static bool md_reset(void *md)
{
    return EVP_DigestInit_ex(md, sha256_md, NULL) == 1;
}

static bool md_final(void *md, uint8_t out[32])
{
    unsigned n = 0;
    return EVP_DigestFinal_ex(md, out, &n) == 1 && n == 32;
}

__attribute__((format(printf, 3, 4))) static enum gw_s3_error
fail(struct gw_sigv4_err *err, enum gw_s3_error code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return code;
}

static enum gw_s3_error ok_(struct gw_sigv4_err *err)
{
    if (err) {
        err->code = GW_S3_OK;
        err->msg[0] = '\0';
    }
    return GW_S3_OK;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool hex32(const char *p, size_t n, uint8_t out[32])
{
    if (n != 64)
        return false;
    for (size_t i = 0; i < 32; i++) {
        int hi = hexval((unsigned char)p[2 * i]), lo = hexval((unsigned char)p[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

static struct gw_str trim(struct gw_str s)
{
    while (s.n && (s.p[0] == ' ' || s.p[0] == '\t')) {
        s.p++;
        s.n--;
    }
    while (s.n && (s.p[s.n - 1] == ' ' || s.p[s.n - 1] == '\t'))
        s.n--;
    return s;
}

static bool is_streaming(enum gw_sigv4_payload m)
{
    return gw_sigv4_payload_is_streaming(m);
}

static bool has_trailers(enum gw_sigv4_payload m)
{
    return m == GW_SIGV4_PAYLOAD_STREAMING_TRAILER ||
           m == GW_SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER;
}

/* ---- chunk and trailer signatures ---- */

static int chain_sign(const struct gw_sigv4_chain *chain, const char *algo, const uint8_t prev[32],
                      const char *empty_line, const uint8_t digest[32], uint8_t out[32])
{
    /* Bounded (about 330 bytes): a stack buffer, so signing a chunk allocates nothing. */
    char sts[64 + GW_SIGV4_TIMESTAMP_LEN + GW_SIGV4_SCOPE_MAX + 3 * 65 + 8];
    char prev_hex[65], dig_hex[65];
    cmn_hex_encode(prev, 32, prev_hex);
    cmn_hex_encode(digest, 32, dig_hex);
    int n = snprintf(sts, sizeof(sts), "%s\n%s\n%s\n%s\n%s%s%s", algo, chain->timestamp,
                     chain->scope, prev_hex, empty_line, *empty_line ? "\n" : "", dig_hex);
    if (n < 0 || (size_t)n >= sizeof(sts))
        return LODE_EINTERNAL;
    struct cmn_iov_c piece = {sts, (size_t)n};
    return cmn_hmac_sha256(chain->key, 32, &piece, 1, out) ? LODE_EINTERNAL : 0;
}

int gw_sigv4_chunk_signature(const struct gw_sigv4_chain *chain,
                             const uint8_t prev[GW_SIGV4_SIG_SIZE], const uint8_t data_sha256[32],
                             uint8_t out[GW_SIGV4_SIG_SIZE])
{
    return chain_sign(chain, "AWS4-HMAC-SHA256-PAYLOAD", prev, EMPTY_SHA256_HEX, data_sha256, out);
}

int gw_sigv4_trailer_signature(const struct gw_sigv4_chain *chain,
                               const uint8_t prev[GW_SIGV4_SIG_SIZE],
                               const uint8_t trailers_sha256[32], uint8_t out[GW_SIGV4_SIG_SIZE])
{
    return chain_sign(chain, "AWS4-HMAC-SHA256-TRAILER", prev, "", trailers_sha256, out);
}

/* ---- configuration ---- */

enum gw_s3_error gw_chunked_cfg_from_request(const struct gw_request_head *req,
                                             const struct gw_sigv4_auth *auth,
                                             const struct gw_sigv4_chain *chain,
                                             struct gw_chunked_cfg *cfg, struct gw_sigv4_err *err)
{
    memset(cfg, 0, sizeof(*cfg));
    if (!is_streaming(auth->payload))
        return fail(err, GW_S3_INVALID_REQUEST, "The request body is not aws-chunked.");
    cfg->mode = auth->payload;
    cfg->chain = chain;
    const struct gw_header *h = gw_header_find(req, "x-amz-decoded-content-length");
    if (!h)
        return fail(err, GW_S3_MISSING_CONTENT_LENGTH,
                    "You must provide the x-amz-decoded-content-length header with %s.",
                    gw_sigv4_payload_name(auth->payload));
    struct gw_str v = trim(h->value);
    uint64_t len = 0;
    if (v.n == 0 || v.n > 19)
        return fail(err, GW_S3_INVALID_ARGUMENT, "x-amz-decoded-content-length is not a number.");
    for (size_t i = 0; i < v.n; i++) {
        if (v.p[i] < '0' || v.p[i] > '9')
            return fail(err, GW_S3_INVALID_ARGUMENT,
                        "x-amz-decoded-content-length is not a number.");
        len = len * 10 + (uint64_t)(v.p[i] - '0');
    }
    cfg->decoded_length = len;
    h = gw_header_find(req, "x-amz-trailer");
    if (h) {
        if (!has_trailers(auth->payload))
            return fail(err, GW_S3_INVALID_REQUEST,
                        "x-amz-trailer is not allowed with STREAMING-AWS4-HMAC-SHA256-PAYLOAD.");
        cfg->trailer_names = h->value;
    }
    return ok_(err);
}

/* ---- decoder ---- */

enum gw_s3_error gw_chunked_init(struct gw_chunked *d, const struct gw_chunked_cfg *cfg,
                                 struct gw_sigv4_err *err)
{
    memset(d, 0, sizeof(*d));
    d->state = S_FAILED;
    if (!is_streaming(cfg->mode))
        return fail(err, GW_S3_INVALID_REQUEST, "The payload mode is not a streaming one.");
    d->mode = cfg->mode;
    d->sign = cfg->mode != GW_SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER;
    if (d->sign && !cfg->chain)
        return fail(err, GW_S3_INVALID_REQUEST, "A signed stream needs the request's signature.");
    if (d->sign) {
        d->chain = *cfg->chain;
        memcpy(d->prev, cfg->chain->seed, sizeof(d->prev));
    }
    d->total = cfg->decoded_length;
    d->min_chunk = cfg->min_chunk ? cfg->min_chunk : GW_CHUNKED_MIN_CHUNK;
    struct gw_str list = cfg->trailer_names;
    for (size_t i = 0; list.n && i <= list.n;) {
        const char *comma = memchr(list.p + i, ',', list.n - i);
        size_t end = comma ? (size_t)(comma - list.p) : list.n;
        struct gw_str name = trim((struct gw_str){list.p + i, end - i});
        if (name.n == 0 || name.n > GW_CHUNKED_TRAILER_NAME_MAX ||
            d->n_announced == GW_CHUNKED_TRAILERS_MAX)
            return fail(err, GW_S3_INVALID_REQUEST,
                        "x-amz-trailer must list 1 to %d names of at most %d characters.",
                        GW_CHUNKED_TRAILERS_MAX, GW_CHUNKED_TRAILER_NAME_MAX);
        char *dst = d->announced[d->n_announced++];
        for (size_t k = 0; k < name.n; k++) {
            char c = name.p[k];
            if (c <= 0x20 || c >= 0x7f || c == ':')
                return fail(err, GW_S3_INVALID_REQUEST, "x-amz-trailer has an invalid name.");
            dst[k] = (char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
        }
        dst[name.n] = '\0';
        i = end + 1;
    }
    d->md = md_new();
    if (!d->md || !md_reset(d->md)) {
        gw_chunked_free(d);
        return fail(err, GW_S3_INTERNAL_ERROR, "cannot allocate a digest context");
    }
    d->state = S_SIZE;
    return ok_(err);
}

void gw_chunked_free(struct gw_chunked *d)
{
    EVP_MD_CTX_free(d->md);
    d->md = NULL;
}

/* Records the first failure; every later call answers with it. */
__attribute__((format(printf, 3, 4))) static enum gw_s3_error
stop(struct gw_chunked *d, enum gw_s3_error code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    d->err.code = code;
    vsnprintf(d->err.msg, sizeof(d->err.msg), fmt, ap);
    va_end(ap);
    d->state = S_FAILED;
    return code;
}

static enum gw_s3_error check_chunk_sig(struct gw_chunked *d, const uint8_t digest[32])
{
    uint8_t sig[32];
    if (gw_sigv4_chunk_signature(&d->chain, d->prev, digest, sig) != 0)
        return stop(d, GW_S3_INTERNAL_ERROR, "chunk signature computation failed");
    if (!cmn_ct_equal(sig, d->want, 32))
        return stop(d, GW_S3_SIGNATURE_DOES_NOT_MATCH,
                    "The chunk signature of chunk %llu does not match.",
                    (unsigned long long)d->n_chunks);
    memcpy(d->prev, sig, 32);
    return GW_S3_OK;
}

static enum gw_s3_error size_line(struct gw_chunked *d, const char *p, size_t n)
{
    size_t digits = 0;
    uint64_t size = 0;
    while (digits < n && hexval((unsigned char)p[digits]) >= 0) {
        if (digits == GW_CHUNKED_SIZE_DIGITS_MAX)
            return stop(d, GW_S3_INVALID_REQUEST,
                        "The aws-chunked body has a chunk size of more than %d hex digits.",
                        GW_CHUNKED_SIZE_DIGITS_MAX);
        size = size << 4 | (uint64_t)hexval((unsigned char)p[digits]);
        digits++;
    }
    if (digits == 0 || (digits < n && p[digits] != ';'))
        return stop(d, GW_S3_INVALID_REQUEST, "The aws-chunked body has a malformed chunk-size line.");
    struct gw_str ext = {p + digits, n - digits};
    if (d->sign) {
        size_t k = sizeof(SIG_EXT) - 1;
        if (ext.n != k + 64 || memcmp(ext.p, SIG_EXT, k) != 0 || !hex32(ext.p + k, 64, d->want))
            return stop(d, GW_S3_INVALID_REQUEST,
                        "Chunk %llu of the aws-chunked body has no valid chunk-signature.",
                        (unsigned long long)d->n_chunks + 1);
    }
    /* Unsigned streams may carry extensions; none means anything to S3. */
    if (size > 0) {
        if (d->n_chunks > 0 && d->last_size < d->min_chunk)
            return stop(d, GW_S3_INVALID_CHUNK_SIZE,
                        "Only the last chunk is allowed to have a size less than %zu bytes "
                        "(chunk %llu has %llu).",
                        d->min_chunk, (unsigned long long)d->n_chunks,
                        (unsigned long long)d->last_size);
        if (size > d->total - d->seen)
            return stop(d, GW_S3_INVALID_REQUEST,
                        "The aws-chunked body holds more than the %llu bytes of "
                        "x-amz-decoded-content-length.",
                        (unsigned long long)d->total);
        d->n_chunks++;
        d->chunk_left = d->last_size = size;
        if (d->sign && !md_reset(d->md))
            return stop(d, GW_S3_INTERNAL_ERROR, "digest failed");
        d->state = S_DATA;
        return GW_S3_OK;
    }
    if (d->seen < d->total)
        return stop(d, GW_S3_INCOMPLETE_BODY,
                    "The aws-chunked body ended after %llu of the %llu bytes of "
                    "x-amz-decoded-content-length.",
                    (unsigned long long)d->seen, (unsigned long long)d->total);
    d->n_chunks++;
    if (d->sign) {
        static const uint8_t empty[32] = {
            0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4,
            0xc8, 0x99, 0x6f, 0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b,
            0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55}; /* SHA-256("") */
        enum gw_s3_error rc = check_chunk_sig(d, empty);
        if (rc != GW_S3_OK)
            return rc;
    }
    if (!md_reset(d->md))
        return stop(d, GW_S3_INTERNAL_ERROR, "digest failed");
    d->state = S_TRAILER;
    return GW_S3_OK;
}

static bool announced(const struct gw_chunked *d, const char *name)
{
    for (size_t i = 0; i < d->n_announced; i++)
        if (strcmp(d->announced[i], name) == 0)
            return true;
    return false;
}

static enum gw_s3_error trailers_end(struct gw_chunked *d)
{
    if (d->mode == GW_SIGV4_PAYLOAD_STREAMING_TRAILER) {
        uint8_t digest[32], sig[32];
        if (!d->have_trailer_sig)
            return stop(d, GW_S3_INVALID_REQUEST, "The trailer has no x-amz-trailer-signature.");
        if (!md_final(d->md, digest) || gw_sigv4_trailer_signature(&d->chain, d->prev, digest, sig))
            return stop(d, GW_S3_INTERNAL_ERROR, "trailer signature computation failed");
        if (!cmn_ct_equal(sig, d->trailer_sig, 32))
            return stop(d, GW_S3_SIGNATURE_DOES_NOT_MATCH,
                        "The x-amz-trailer-signature does not match.");
    }
    for (size_t i = 0; i < d->n_announced; i++)
        if (!gw_chunked_trailer(d, d->announced[i]))
            return stop(d, GW_S3_INVALID_REQUEST,
                        "x-amz-trailer announced %s but the body has no such trailer.",
                        d->announced[i]);
    d->state = S_DONE;
    return GW_S3_OK;
}

static enum gw_s3_error trailer_line(struct gw_chunked *d, const char *p, size_t n)
{
    if (n == 0)
        return trailers_end(d);
    if (!has_trailers(d->mode))
        return stop(d, GW_S3_INVALID_REQUEST,
                    "Trailers are not allowed with STREAMING-AWS4-HMAC-SHA256-PAYLOAD.");
    if (d->have_trailer_sig)
        return stop(d, GW_S3_INVALID_REQUEST, "x-amz-trailer-signature must be the last trailer.");
    const char *colon = memchr(p, ':', n);
    if (!colon)
        return stop(d, GW_S3_INVALID_REQUEST, "A trailer line has no ':'.");
    struct gw_str name = trim((struct gw_str){p, (size_t)(colon - p)});
    struct gw_str value = trim((struct gw_str){colon + 1, n - (size_t)(colon - p) - 1});
    char lname[GW_CHUNKED_TRAILER_NAME_MAX + 1];
    if (name.n == 0 || name.n > GW_CHUNKED_TRAILER_NAME_MAX)
        return stop(d, GW_S3_INVALID_REQUEST, "A trailer name is empty or too long.");
    for (size_t i = 0; i < name.n; i++) {
        char c = name.p[i];
        if (c <= 0x20 || c >= 0x7f)
            return stop(d, GW_S3_INVALID_REQUEST, "A trailer name has an invalid character.");
        lname[i] = (char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
    }
    lname[name.n] = '\0';
    for (size_t i = 0; i < value.n; i++)
        if ((unsigned char)value.p[i] < 0x20 && value.p[i] != '\t')
            return stop(d, GW_S3_INVALID_REQUEST, "The trailer %s has a control character.", lname);
    if (strcmp(lname, TRAILER_SIG) == 0) {
        if (d->mode != GW_SIGV4_PAYLOAD_STREAMING_TRAILER)
            return stop(d, GW_S3_INVALID_REQUEST,
                        "x-amz-trailer-signature in an unsigned stream.");
        if (!hex32(value.p, value.n, d->trailer_sig))
            return stop(d, GW_S3_INVALID_REQUEST,
                        "x-amz-trailer-signature must be 64 hexadecimal digits.");
        d->have_trailer_sig = true;
        return GW_S3_OK;
    }
    if (!announced(d, lname))
        return stop(d, GW_S3_INVALID_REQUEST, "The trailer %s was not announced in x-amz-trailer.",
                    lname);
    if (gw_chunked_trailer(d, lname))
        return stop(d, GW_S3_INVALID_REQUEST, "The trailer %s appears more than once.", lname);
    if (value.n > GW_CHUNKED_TRAILER_VALUE_MAX)
        return stop(d, GW_S3_INVALID_REQUEST, "The trailer %s is longer than %d bytes.", lname,
                     GW_CHUNKED_TRAILER_VALUE_MAX);
    /* n_announced <= GW_CHUNKED_TRAILERS_MAX and each is stored once, so there is room. */
    struct gw_chunked_trailer *t = &d->trailers[d->n_trailers++];
    memcpy(t->name, lname, name.n + 1);
    memcpy(t->value, value.p, value.n);
    t->value[value.n] = '\0';
    if (d->mode == GW_SIGV4_PAYLOAD_STREAMING_TRAILER &&
        (EVP_DigestUpdate(d->md, t->name, name.n) != 1 || EVP_DigestUpdate(d->md, ":", 1) != 1 ||
         EVP_DigestUpdate(d->md, t->value, value.n) != 1 || EVP_DigestUpdate(d->md, "\n", 1) != 1))
        return stop(d, GW_S3_INTERNAL_ERROR, "digest failed");
    return GW_S3_OK;
}

/* Accumulates a CRLF-terminated line; true with the line complete (CRLF removed). */
static enum gw_s3_error take_line(struct gw_chunked *d, const uint8_t *in, size_t n, size_t *i,
                                  bool *complete)
{
    *complete = false;
    while (*i < n) {
        char c = (char)in[(*i)++];
        if (c == '\n') {
            if (d->line_len == 0 || d->line[d->line_len - 1] != '\r')
                return stop(d, GW_S3_INVALID_REQUEST,
                            "The aws-chunked body has a line not ended by CRLF.");
            d->line_len--;
            *complete = true;
            return GW_S3_OK;
        }
        if (d->line_len > 0 && d->line[d->line_len - 1] == '\r')
            return stop(d, GW_S3_INVALID_REQUEST, "The aws-chunked body has a stray CR.");
        if (d->line_len == sizeof(d->line))
            return stop(d, GW_S3_INVALID_REQUEST,
                        "The aws-chunked body has a line longer than %d bytes.",
                        GW_CHUNKED_LINE_MAX);
        d->line[d->line_len++] = c;
    }
    return GW_S3_OK;
}

static enum gw_s3_error sticky(const struct gw_chunked *d, struct gw_sigv4_err *err)
{
    if (err)
        *err = d->err;
    return d->err.code != GW_S3_OK ? d->err.code : GW_S3_INTERNAL_ERROR;
}

enum gw_s3_error gw_chunked_decode(struct gw_chunked *d, const void *in_, size_t n, size_t *used,
                                   struct gw_str *out, struct gw_sigv4_err *err)
{
    const uint8_t *in = in_;
    size_t i = 0;
    *out = (struct gw_str){NULL, 0};
    enum gw_s3_error rc = GW_S3_OK;
    while (i < n && rc == GW_S3_OK && d->state != S_FAILED) {
        bool complete;
        switch (d->state) {
        case S_SIZE:
        case S_TRAILER:
            rc = take_line(d, in, n, &i, &complete);
            if (rc == GW_S3_OK && complete) {
                size_t len = d->line_len;
                d->line_len = 0;
                rc = d->state == S_SIZE ? size_line(d, d->line, len) : trailer_line(d, d->line, len);
            }
            break;
        case S_DATA: {
            size_t m = n - i;
            if (m > d->chunk_left)
                m = (size_t)d->chunk_left;
            if (d->sign && EVP_DigestUpdate(d->md, in + i, m) != 1) {
                rc = stop(d, GW_S3_INTERNAL_ERROR, "digest failed");
                break;
            }
            d->chunk_left -= m;
            if (d->chunk_left == 0) {
                uint8_t digest[32];
                if (d->sign && !md_final(d->md, digest))
                    rc = stop(d, GW_S3_INTERNAL_ERROR, "digest failed");
                else if (d->sign)
                    rc = check_chunk_sig(d, digest);
                if (rc != GW_S3_OK)
                    break;
                d->state = S_DATA_CR;
            }
            d->seen += m;
            *out = (struct gw_str){(const char *)in + i, m};
            i += m;
            *used = i;
            return ok_(err);
        }
        case S_DATA_CR:
        case S_DATA_LF: {
            char want = d->state == S_DATA_CR ? '\r' : '\n';
            if ((char)in[i++] != want)
                rc = stop(d, GW_S3_INVALID_REQUEST,
                          "The data of chunk %llu is not followed by CRLF.",
                          (unsigned long long)d->n_chunks);
            else
                d->state = d->state == S_DATA_CR ? S_DATA_LF : S_SIZE;
            break;
        }
        case S_DONE:
            rc = stop(d, GW_S3_INVALID_REQUEST, "The aws-chunked body has data after its end.");
            break;
        default:
            break;
        }
    }
    *used = i;
    if (d->state == S_FAILED)
        return sticky(d, err);
    return ok_(err);
}

enum gw_s3_error gw_chunked_feed(struct gw_chunked *d, const void *in, size_t n,
                                 gw_chunked_data_cb cb, void *ud, struct gw_sigv4_err *err)
{
    const uint8_t *p = in;
    do {
        size_t used;
        struct gw_str out;
        enum gw_s3_error rc = gw_chunked_decode(d, p, n, &used, &out, err);
        if (rc != GW_S3_OK)
            return rc;
        if (out.n)
            cb(ud, (const uint8_t *)out.p, out.n);
        p += used;
        n -= used;
    } while (n > 0);
    return ok_(err);
}

enum gw_s3_error gw_chunked_finish(struct gw_chunked *d, struct gw_sigv4_err *err)
{
    if (d->state == S_DONE)
        return ok_(err);
    if (d->state == S_FAILED)
        return sticky(d, err);
    if (d->state == S_TRAILER)
        return fail(err, GW_S3_INCOMPLETE_BODY, "The aws-chunked body stopped in its trailers.");
    return fail(err, GW_S3_INCOMPLETE_BODY,
                "The aws-chunked body stopped after %llu of %llu bytes, before its final chunk.",
                (unsigned long long)d->seen, (unsigned long long)d->total);
}

bool gw_chunked_done(const struct gw_chunked *d)
{
    return d->state == S_DONE;
}

uint64_t gw_chunked_decoded(const struct gw_chunked *d)
{
    return d->seen;
}

const char *gw_chunked_trailer(const struct gw_chunked *d, const char *name)
{
    for (size_t i = 0; i < d->n_trailers; i++)
        if (strcasecmp(d->trailers[i].name, name) == 0)
            return d->trailers[i].value;
    return NULL;
}

size_t gw_chunked_trailer_count(const struct gw_chunked *d)
{
    return d->n_trailers;
}

const struct gw_chunked_trailer *gw_chunked_trailer_at(const struct gw_chunked *d, size_t i)
{
    return i < d->n_trailers ? &d->trailers[i] : NULL;
}

/* ---- encoder ---- */

int gw_chunked_enc_init(struct gw_chunked_enc *e, enum gw_sigv4_payload mode,
                        const struct gw_sigv4_chain *chain)
{
    memset(e, 0, sizeof(*e));
    bool sign = mode != GW_SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER;
    if (!is_streaming(mode) || (sign && !chain))
        return -EINVAL;
    e->mode = mode;
    if (sign) {
        e->chain = *chain;
        memcpy(e->prev, chain->seed, sizeof(e->prev));
    }
    return 0;
}

static int enc_line(struct gw_chunked_enc *e, const uint8_t digest[32], size_t n, char *line,
                    size_t *len)
{
    int k;
    if (e->mode == GW_SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER) {
        k = snprintf(line, GW_CHUNKED_ENC_LINE_MAX, "%zx\r\n", n);
    } else {
        uint8_t sig[32];
        char hex[65];
        if (gw_sigv4_chunk_signature(&e->chain, e->prev, digest, sig) != 0)
            return LODE_EINTERNAL;
        memcpy(e->prev, sig, 32);
        cmn_hex_encode(sig, 32, hex);
        k = snprintf(line, GW_CHUNKED_ENC_LINE_MAX, "%zx%s%s\r\n", n, SIG_EXT, hex);
    }
    *len = (size_t)k;
    return 0;
}

int gw_chunked_enc_chunk(struct gw_chunked_enc *e, const void *data, size_t n,
                         char line[GW_CHUNKED_ENC_LINE_MAX], size_t *len)
{
    uint8_t digest[32];
    if (n == 0)
        return -EINVAL;
    if (e->mode != GW_SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER && cmn_sha256(data, n, digest) != 0)
        return LODE_EINTERNAL;
    return enc_line(e, digest, n, line, len);
}

int gw_chunked_enc_finish(struct gw_chunked_enc *e, const struct gw_header *trailers, size_t n,
                          struct cmn_buf *out)
{
    static const uint8_t empty[32] = {
        0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
        0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55};
    if (n && !has_trailers(e->mode))
        return -EINVAL;
    char line[GW_CHUNKED_ENC_LINE_MAX];
    size_t len;
    int rc = enc_line(e, empty, 0, line, &len);
    if (rc)
        return rc;
    if ((rc = cmn_buf_append(out, line, len)))
        return rc;
    /* The signed canonical form: lower-case names, "name:value\n" each. */
    struct cmn_buf canon;
    cmn_buf_init(&canon);
    for (size_t i = 0; i < n && !rc; i++) {
        size_t at = canon.len;
        rc = cmn_buf_append(&canon, trailers[i].name.p, trailers[i].name.n);
        for (size_t k = at; !rc && k < canon.len; k++)
            if (canon.data[k] >= 'A' && canon.data[k] <= 'Z')
                canon.data[k] += 32;
        if (!rc)
            rc = cmn_buf_printf(&canon, ":%.*s\n", (int)trailers[i].value.n, trailers[i].value.p);
        if (!rc)
            rc = cmn_buf_printf(out, "%.*s:%.*s\r\n", (int)trailers[i].name.n, trailers[i].name.p,
                                (int)trailers[i].value.n, trailers[i].value.p);
    }
    if (!rc && e->mode == GW_SIGV4_PAYLOAD_STREAMING_TRAILER) {
        uint8_t digest[32], sig[32];
        char hex[65];
        if (cmn_sha256(canon.data, canon.len, digest) != 0 ||
            gw_sigv4_trailer_signature(&e->chain, e->prev, digest, sig) != 0) {
            rc = LODE_EINTERNAL;
        } else {
            cmn_hex_encode(sig, 32, hex);
            rc = cmn_buf_printf(out, "%s:%s\r\n", TRAILER_SIG, hex);
        }
    }
    if (!rc)
        rc = cmn_buf_append(out, "\r\n", 2);
    cmn_buf_free(&canon);
    return rc;
}

static uint64_t hex_digits(uint64_t n)
{
    uint64_t d = 1;
    while (n >>= 4)
        d++;
    return d;
}

uint64_t gw_chunked_encoded_length(enum gw_sigv4_payload mode, uint64_t decoded,
                                   size_t chunk_size, const struct gw_header *trailers, size_t n)
{
    uint64_t sig_ext = mode == GW_SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER ? 0 : 17 + 64;
    uint64_t full = chunk_size ? decoded / chunk_size : 0, rest = chunk_size ? decoded % chunk_size : decoded;
    uint64_t len = 0;
    if (full)
        len += full * (hex_digits(chunk_size) + sig_ext + 2 + chunk_size + 2);
    if (rest)
        len += hex_digits(rest) + sig_ext + 2 + rest + 2;
    len += 1 + sig_ext + 2; /* the final chunk */
    for (size_t i = 0; i < n; i++)
        len += trailers[i].name.n + 1 + trailers[i].value.n + 2;
    if (mode == GW_SIGV4_PAYLOAD_STREAMING_TRAILER)
        len += sizeof(TRAILER_SIG) - 1 + 1 + 64 + 2;
    return len + 2;
}

/* ---- plain bodies ---- */

enum gw_s3_error gw_sigv4_body_init(struct gw_sigv4_body *b, const struct gw_sigv4_auth *auth,
                                    struct gw_sigv4_err *err)
{
    memset(b, 0, sizeof(*b));
    b->check = auth->payload == GW_SIGV4_PAYLOAD_SHA256;
    if (!b->check)
        return ok_(err);
    memcpy(b->want, auth->payload_sha256, 32);
    b->md = md_new();
    if (!b->md || !md_reset(b->md))
        return fail(err, GW_S3_INTERNAL_ERROR, "cannot allocate a digest context");
    return ok_(err);
}

int gw_sigv4_body_update(struct gw_sigv4_body *b, const void *data, size_t n)
{
    if (!b->check || n == 0)
        return 0;
    return EVP_DigestUpdate(b->md, data, n) == 1 ? 0 : LODE_EINTERNAL;
}

static enum gw_s3_error compare_digest(const uint8_t want[32], const uint8_t got[32],
                                       struct gw_sigv4_err *err)
{
    if (!cmn_ct_equal(want, got, 32))
        return fail(err, GW_S3_CONTENT_SHA256_MISMATCH,
                    "The provided 'x-amz-content-sha256' header does not match what was computed.");
    return ok_(err);
}

enum gw_s3_error gw_sigv4_body_finish(struct gw_sigv4_body *b, struct gw_sigv4_err *err)
{
    uint8_t digest[32];
    if (!b->check)
        return ok_(err);
    if (!md_final(b->md, digest))
        return fail(err, GW_S3_INTERNAL_ERROR, "digest failed");
    return compare_digest(b->want, digest, err);
}

void gw_sigv4_body_free(struct gw_sigv4_body *b)
{
    EVP_MD_CTX_free(b->md);
    b->md = NULL;
}

enum gw_s3_error gw_sigv4_payload_check(const struct gw_sigv4_auth *auth,
                                        const uint8_t digest[32], struct gw_sigv4_err *err)
{
    if (auth->payload != GW_SIGV4_PAYLOAD_SHA256)
        return ok_(err);
    return compare_digest(auth->payload_sha256, digest, err);
}
