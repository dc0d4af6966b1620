/* The client side of Signature Version 4 (gateway/sigv4.h): Authorization headers and
 * presigned URLs, for tests, lodectl and the benchmarks. It reuses the verifier's
 * canonicalisation (gw_sigv4_compute), so the two can only disagree where the published
 * examples and the independent vectors in tests/unit/gateway/test_sigv4.c would notice. */
#include "gateway/sigv4.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/id.h"

static bool unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_' || c == '.' || c == '~';
}

int gw_sigv4_uri_encode(struct cmn_buf *out, const void *s, size_t n, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *p = s;
    int rc = cmn_buf_reserve(out, 3 * n);
    if (rc)
        return rc;
    uint8_t *o = out->data + out->len;
    for (size_t i = 0; i < n; i++) {
        if (unreserved(p[i]) || (keep_slash && p[i] == '/')) {
            *o++ = p[i];
        } else {
            *o++ = '%';
            *o++ = (uint8_t)hex[p[i] >> 4];
            *o++ = (uint8_t)hex[p[i] & 15];
        }
    }
    out->len = (size_t)(o - out->data);
    return 0;
}

static bool signer_valid(const struct gw_sigv4_signer *s)
{
    if (!s->access_key || !s->secret || !s->region)
        return false;
    size_t ak = strlen(s->access_key), rg = strlen(s->region);
    if (ak == 0 || ak > GW_SIGV4_ACCESS_KEY_MAX || strlen(s->secret) > 1024 || rg == 0 ||
        rg > GW_SIGV4_REGION_MAX)
        return false;
    /* ',' would end the Credential component of the Authorization header early. */
    for (size_t i = 0; i < ak; i++)
        if (s->access_key[i] <= 0x20 || s->access_key[i] >= 0x7f || s->access_key[i] == ',')
            return false;
    for (size_t i = 0; i < rg; i++)
        if (!unreserved((unsigned char)s->region[i]) || s->region[i] == '~')
            return false;
    return !s->service || (s->service[0] && strlen(s->service) <= GW_SIGV4_SERVICE_MAX);
}

static bool token_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int name_cmp(const void *a, const void *b, void *arena)
{
    return strcmp((const char *)arena + *(const size_t *)a, (const char *)arena + *(const size_t *)b);
}

/* The sorted, de-duplicated, lower-cased names of all headers, joined with ';'. */
static int signed_list(const struct gw_request_head *req, char *out, size_t cap)
{
    if (req->n_headers == 0 || req->n_headers > GW_SIGV4_SIGNED_HEADERS_COUNT)
        return -EINVAL;
    struct cmn_buf names;
    cmn_buf_init(&names);
    size_t offs[GW_SIGV4_SIGNED_HEADERS_COUNT];
    int rc = 0;
    for (size_t i = 0; i < req->n_headers && !rc; i++) {
        const struct gw_header *h = &req->headers[i];
        offs[i] = names.len;
        if (h->name.n == 0 || h->name.n >= cap || cmn_buf_reserve(&names, h->name.n + 1)) {
            rc = -EINVAL;
            break;
        }
        for (size_t j = 0; j < h->name.n; j++) {
            char c = h->name.p[j];
            if (!token_char(c))
                rc = -EINVAL;
            names.data[names.len++] = (uint8_t)((c >= 'A' && c <= 'Z') ? c + 32 : c);
        }
        names.data[names.len++] = '\0';
    }
    size_t o = 0;
    if (!rc) {
        qsort_r(offs, req->n_headers, sizeof(offs[0]), name_cmp, names.data);
        for (size_t i = 0; i < req->n_headers && !rc; i++) {
            const char *nm = (const char *)names.data + offs[i];
            if (i && strcmp(nm, (const char *)names.data + offs[i - 1]) == 0)
                continue;
            size_t n = strlen(nm);
            if (o + n + 2 > cap)
                rc = -EINVAL;
            else
                o += (size_t)snprintf(out + o, cap - o, "%s%s", o ? ";" : "", nm);
        }
    }
    cmn_buf_free(&names);
    return rc;
}

/* An auth as the verifier would parse it from what the signer is about to send. */
static int fill_auth(const struct gw_sigv4_signer *s, enum gw_sigv4_kind kind,
                     const char *payload_hash, struct gw_sigv4_auth *a)
{
    memset(a, 0, sizeof(*a));
    a->kind = kind;
    if (!payload_hash || strlen(payload_hash) > GW_SIGV4_PAYLOAD_HASH_MAX)
        return -EINVAL;
    strcpy(a->payload_hash, payload_hash);
    strcpy(a->access_key, s->access_key);
    strcpy(a->region, s->region);
    strcpy(a->service, s->service ? s->service : "s3");
    a->time = s->time;
    gw_sigv4_format_time(s->time, a->timestamp);
    memcpy(a->date, a->timestamp, 8);
    return 0;
}

int gw_sigv4_sign(const struct gw_sigv4_signer *s, const struct gw_request_head *req,
                  const char *payload_hash, struct cmn_buf *authz,
                  char timestamp[GW_SIGV4_TIMESTAMP_LEN + 1], uint8_t seed[GW_SIGV4_SIG_SIZE])
{
    struct gw_sigv4_auth a;
    if (!signer_valid(s) || !gw_header_find(req, "host") ||
        req->n_headers > GW_SIGV4_SIGNED_HEADERS_COUNT ||
        fill_auth(s, GW_SIGV4_HEADER, payload_hash, &a) != 0)
        return -EINVAL;
    /* The headers as sent: the caller's, plus x-amz-date / x-amz-content-sha256 if absent. */
    struct gw_header *hs = calloc(req->n_headers + 2, sizeof(*hs));
    if (!hs)
        return -ENOMEM;
    if (req->n_headers)
        memcpy(hs, req->headers, req->n_headers * sizeof(*hs));
    struct gw_request_head r = *req;
    r.headers = hs;
    if (!gw_header_find(req, "x-amz-date") && !gw_header_find(req, "date"))
        hs[r.n_headers++] =
            (struct gw_header){GW_STR("x-amz-date"), {a.timestamp, GW_SIGV4_TIMESTAMP_LEN}};
    if (!gw_header_find(req, "x-amz-content-sha256"))
        hs[r.n_headers++] = (struct gw_header){GW_STR("x-amz-content-sha256"),
                                               {a.payload_hash, strlen(a.payload_hash)}};
    uint8_t key[GW_SIGV4_KEY_SIZE];
    char hex[65];
    int rc = signed_list(&r, a.signed_headers, sizeof(a.signed_headers));
    if (!rc)
        rc = gw_sigv4_signing_key(s->secret, strlen(s->secret), a.date, a.region, a.service, key);
    if (!rc && gw_sigv4_compute(&r, &a, key, a.signature, NULL) != GW_S3_OK)
        rc = -EINVAL;
    if (!rc) {
        cmn_hex_encode(a.signature, 32, hex);
        rc = cmn_buf_printf(authz,
                            "AWS4-HMAC-SHA256 Credential=%s/%s/%s/%s/aws4_request, "
                            "SignedHeaders=%s, Signature=%s",
                            a.access_key, a.date, a.region, a.service, a.signed_headers, hex);
    }
    if (!rc) {
        memcpy(timestamp, a.timestamp, GW_SIGV4_TIMESTAMP_LEN + 1);
        if (seed)
            memcpy(seed, a.signature, GW_SIGV4_SIG_SIZE);
    }
    explicit_bzero(key, sizeof(key));
    free(hs);
    return rc;
}

int gw_sigv4_presign(const struct gw_sigv4_signer *s, const struct gw_request_head *req,
                     int64_t expires, struct cmn_buf *query_out)
{
    /* As the verifier: the payload hash is x-amz-content-sha256 when the request has one. */
    char payload[GW_SIGV4_PAYLOAD_HASH_MAX + 1] = "UNSIGNED-PAYLOAD";
    const struct gw_header *ph = gw_header_find(req, "x-amz-content-sha256");
    if (ph) {
        if (ph->value.n > GW_SIGV4_PAYLOAD_HASH_MAX)
            return -EINVAL;
        memcpy(payload, ph->value.p, ph->value.n);
        payload[ph->value.n] = '\0';
    }
    struct gw_sigv4_auth a;
    if (!signer_valid(s) || expires < 1 || expires > GW_SIGV4_PRESIGN_EXPIRES_MAX ||
        !gw_header_find(req, "host") || fill_auth(s, GW_SIGV4_PRESIGNED, payload, &a) != 0)
        return -EINVAL;
    int rc = signed_list(req, a.signed_headers, sizeof(a.signed_headers));
    if (rc)
        return rc;
    char cred[GW_SIGV4_ACCESS_KEY_MAX + GW_SIGV4_SCOPE_MAX + 2], hex[65];
    snprintf(cred, sizeof(cred), "%s/%s/%s/%s/aws4_request", a.access_key, a.date, a.region,
             a.service);
    struct cmn_buf q;
    cmn_buf_init(&q);
    rc = cmn_buf_append(&q, req->query.p, req->query.n);
    if (!rc)
        rc = cmn_buf_printf(&q, "%sX-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=",
                            req->query.n ? "&" : "");
    if (!rc)
        rc = gw_sigv4_uri_encode(&q, cred, strlen(cred), false);
    if (!rc)
        rc = cmn_buf_printf(&q, "&X-Amz-Date=%s&X-Amz-Expires=%lld&X-Amz-SignedHeaders=",
                            a.timestamp, (long long)expires);
    if (!rc)
        rc = gw_sigv4_uri_encode(&q, a.signed_headers, strlen(a.signed_headers), false);
    uint8_t key[GW_SIGV4_KEY_SIZE];
    if (!rc)
        rc = gw_sigv4_signing_key(s->secret, strlen(s->secret), a.date, a.region, a.service, key);
    if (!rc) {
        struct gw_request_head r = *req;
        r.query = (struct gw_str){(const char *)q.data, q.len};
        if (gw_sigv4_compute(&r, &a, key, a.signature, NULL) != GW_S3_OK)
            rc = -EINVAL;
    }
    if (!rc) {
        cmn_hex_encode(a.signature, 32, hex);
        rc = cmn_buf_printf(&q, "&X-Amz-Signature=%s", hex);
    }
    if (!rc)
        rc = cmn_buf_append(query_out, q.data, q.len);
    explicit_bzero(key, sizeof(key));
    cmn_buf_free(&q);
    return rc;
}
