/* A small blocking HTTP server for liblode's unit tests: a thread on 127.0.0.1 accepts
 * connections (a thread each) and hands each request to a handler, which answers with raw
 * bytes. Requests are parsed strictly enough for tests (request line, headers, a
 * Content-Length body), not for the world. */
#ifndef LODE_TESTS_UNIT_CLIENT_FAKE_SERVER_H
#define LODE_TESTS_UNIT_CLIENT_FAKE_SERVER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FS_MAX_HEADERS 32
#define FS_MAX_CONNS 256

struct fs_request {
    char method[16];
    char target[2048];
    char path[2048];
    char query[1024];
    size_t n_headers;
    char names[FS_MAX_HEADERS][64];
    char values[FS_MAX_HEADERS][512];
    uint8_t *body;                 /* malloc'd, body_len bytes */
    size_t body_len;
    int conn_requests;             /* requests seen on this connection before this one */
};

/* Returns false to close the connection after answering. */
typedef bool (*fs_handler)(int fd, const struct fs_request *req, void *data);

struct fake_server {
    int listen_fd;
    uint16_t port;
    pthread_t thread;
    fs_handler handler;
    void *data;
    volatile bool stop;
    int connections;               /* accepted so far */
    pthread_t conn_threads[FS_MAX_CONNS];
};

/* Starts listening on an ephemeral port and the serving thread. Returns 0 or -1. */
int fs_start(struct fake_server *s, fs_handler h, void *data);
void fs_stop(struct fake_server *s);

/* Header value (case-insensitive name) or NULL. */
const char *fs_header(const struct fs_request *r, const char *name);

/* Writes all of p; returns 0 or -1. */
int fs_write(int fd, const void *p, size_t n);
int fs_printf(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Listens on 127.0.0.1, ephemeral port. Returns the fd and the port, or -1. */
int fs_listen(uint16_t *port);

#endif
