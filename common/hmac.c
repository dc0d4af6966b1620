#include "common/hmac.h"

#include <pthread.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <lode/errno.h>

/* Fetching an algorithm walks the provider tables under a lock; doing it once and reusing
 * the (immutable, thread-safe) objects keeps per-message work to the hash itself. They are
 * kept for the life of the process on purpose. */
static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;
static EVP_MAC *hmac_alg;
static EVP_MD *sha256_alg;

static void fetch_algs(void)
{
    hmac_alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
    sha256_alg = EVP_MD_fetch(NULL, "SHA256", NULL);
}

int cmn_hmac_sha256(const void *key, size_t key_len, const struct cmn_iov_c *pieces, size_t n,
                    uint8_t out[CMN_HMAC_SIZE])
{
    pthread_once(&fetch_once, fetch_algs);
    if (!hmac_alg)
        return LODE_EINTERNAL;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(hmac_alg);
    if (!ctx)
        return LODE_EINTERNAL;
    int rc = LODE_EINTERNAL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    /* OpenSSL rejects a NULL key even when its length is 0. */
    static const unsigned char empty_key[1];
    if (!EVP_MAC_init(ctx, key_len ? key : empty_key, key_len, params))
        goto out;
    for (size_t i = 0; i < n; i++) {
        if (pieces[i].len && !EVP_MAC_update(ctx, pieces[i].base, pieces[i].len))
            goto out;
    }
    size_t out_len = 0;
    if (!EVP_MAC_final(ctx, out, &out_len, CMN_HMAC_SIZE) || out_len != CMN_HMAC_SIZE)
        goto out;
    rc = 0;
out:
    EVP_MAC_CTX_free(ctx);
    return rc;
}

int cmn_sha256(const void *data, size_t len, uint8_t out[32])
{
    pthread_once(&fetch_once, fetch_algs);
    if (!sha256_alg)
        return LODE_EINTERNAL;
    unsigned int out_len = 0;
    static const unsigned char empty[1];
    if (!EVP_Digest(len ? data : empty, len, out, &out_len, sha256_alg, NULL) || out_len != 32)
        return LODE_EINTERNAL;
    return 0;
}

bool cmn_ct_equal(const void *a, const void *b, size_t len)
{
    return CRYPTO_memcmp(a, b, len) == 0;
}
