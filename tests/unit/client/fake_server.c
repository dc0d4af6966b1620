#include "tests/unit/client/fake_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

int fs_listen(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof(a);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 16) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &l) != 0) {
        close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

int fs_write(int fd, const void *p, size_t n)
{
    const char *b = p;
    while (n) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

int fs_printf(int fd, const char *fmt, ...)
{
    char buf[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(buf))
        return -1;
    return fs_write(fd, buf, (size_t)n);
}

const char *fs_header(const struct fs_request *r, const char *name)
{
    for (size_t i = 0; i < r->n_headers; i++)
        if (strcasecmp(r->names[i], name) == 0)
            return r->values[i];
    return NULL;
}

/* Reads one request; leftover bytes stay in buf. Returns 1, 0 at EOF, -1 on error. */
static int read_request(int fd, char *buf, size_t cap, size_t *have, struct fs_request *r,
                        volatile bool *stop)
{
    char *end;
    for (;;) {
        buf[*have] = '\0';
        end = strstr(buf, "\r\n\r\n");
        if (end)
            break;
        if (*have + 1 >= cap)
            return -1;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int waited = 0, pr;
        while ((pr = poll(&p, 1, 100)) == 0 && !*stop && (waited += 100) < 20000)
            ;
        if (pr <= 0)
            return -1;
        ssize_t g = recv(fd, buf + *have, cap - 1 - *have, 0);
        if (g == 0)
            return 0;
        if (g < 0)
            return -1;
        *have += (size_t)g;
    }
    size_t head_len = (size_t)(end - buf) + 4;
    *end = '\0';
    char *line = buf, *nl = strstr(line, "\r\n");
    if (nl)
        *nl = '\0';
    if (sscanf(line, "%15s %2047s", r->method, r->target) != 2)
        return -1;
    char *q = strchr(r->target, '?');
    snprintf(r->path, sizeof(r->path), "%.*s", q ? (int)(q - r->target) : (int)strlen(r->target),
             r->target);
    snprintf(r->query, sizeof(r->query), "%s", q ? q + 1 : "");
    r->n_headers = 0;
    for (line = nl ? nl + 2 : NULL; line && *line; line = nl ? nl + 2 : NULL) {
        nl = strstr(line, "\r\n");
        if (nl)
            *nl = '\0';
        char *colon = strchr(line, ':');
        if (!colon || r->n_headers == FS_MAX_HEADERS)
            return -1;
        *colon = '\0';
        char *v = colon + 1;
        while (*v == ' ')
            v++;
        snprintf(r->names[r->n_headers], sizeof(r->names[0]), "%s", line);
        snprintf(r->values[r->n_headers], sizeof(r->values[0]), "%s", v);
        r->n_headers++;
    }
    const char *cl = fs_header(r, "content-length");
    size_t blen = cl ? (size_t)strtoull(cl, NULL, 10) : 0;
    r->body = malloc(blen + 1);
    r->body_len = blen;
    size_t from_buf = *have - head_len < blen ? *have - head_len : blen;
    memcpy(r->body, buf + head_len, from_buf);
    memmove(buf, buf + head_len + from_buf, *have - head_len - from_buf);
    *have -= head_len + from_buf;
    for (size_t got = from_buf; got < blen;) {
        ssize_t g = recv(fd, r->body + got, blen - got, 0);
        if (g <= 0) {
            free(r->body);
            r->body = NULL;
            return -1;
        }
        got += (size_t)g;
    }
    return 1;
}

struct conn_arg {
    struct fake_server *s;
    int fd;
};

static void *serve_conn(void *arg)
{
    struct conn_arg *ca = arg;
    struct fake_server *s = ca->s;
    int fd = ca->fd;
    free(ca);
    char *buf = malloc(65536);
    size_t have = 0;
    int count = 0;
    while (!s->stop) {
        struct fs_request *r = calloc(1, sizeof(*r));
        int rc = read_request(fd, buf, 65536, &have, r, &s->stop);
        r->conn_requests = count++;
        bool keep = rc == 1 && s->handler(fd, r, s->data);
        free(r->body);
        free(r);
        if (!keep)
            break;
    }
    close(fd);
    free(buf);
    return NULL;
}

static void *serve(void *arg)
{
    struct fake_server *s = arg;
    while (!s->stop) {
        struct pollfd p = {.fd = s->listen_fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        int fd = accept(s->listen_fd, NULL, NULL);
        if (fd < 0)
            continue;
        struct conn_arg *ca = malloc(sizeof(*ca));
        ca->s = s;
        ca->fd = fd;
        if (s->connections == FS_MAX_CONNS ||
            pthread_create(&s->conn_threads[s->connections], NULL, serve_conn, ca) != 0) {
            close(fd);
            free(ca);
            continue;
        }
        s->connections++;
    }
    return NULL;
}

int fs_start(struct fake_server *s, fs_handler h, void *data)
{
    memset(s, 0, sizeof(*s));
    s->listen_fd = fs_listen(&s->port);
    if (s->listen_fd < 0)
        return -1;
    s->handler = h;
    s->data = data;
    if (pthread_create(&s->thread, NULL, serve, s) != 0) {
        close(s->listen_fd);
        return -1;
    }
    return 0;
}

void fs_stop(struct fake_server *s)
{
    s->stop = true;
    pthread_join(s->thread, NULL);
    for (int i = 0; i < s->connections; i++)
        pthread_join(s->conn_threads[i], NULL);
    close(s->listen_fd);
}
