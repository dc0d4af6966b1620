/* Prometheus metrics: a registry of counters, gauges and histograms, rendered in the text
 * exposition format and served over HTTP (GET /metrics) on a libuv loop.
 *
 * Metrics are created once at start-up (not thread-safe) and then updated from any thread
 * (atomics). Names follow Prometheus conventions: lode_<component>_<what>_<unit>.
 * `labels` is a preformatted label set such as `method="put"` or NULL.
 */
#ifndef LODE_COMMON_METRICS_H
#define LODE_COMMON_METRICS_H

#include <stdint.h>
#include <uv.h>

#include "common/buf.h"
#include "common/err.h"

struct cmn_metrics;
struct cmn_counter;
struct cmn_gauge;
struct cmn_histogram;
struct cmn_metrics_http;

int cmn_metrics_create(struct cmn_metrics **out);
void cmn_metrics_destroy(struct cmn_metrics *m);

/* Registration returns a handle owned by the registry (NULL only on allocation failure).
 * Registering the same name and labels twice returns the same handle. */
struct cmn_counter *cmn_metrics_counter(struct cmn_metrics *m, const char *name,
                                        const char *labels, const char *help);
struct cmn_gauge *cmn_metrics_gauge(struct cmn_metrics *m, const char *name, const char *labels,
                                    const char *help);
/* Histogram in seconds with the default latency buckets (100us .. 10s) unless `bounds` given
 * (ascending, n_bounds entries). */
struct cmn_histogram *cmn_metrics_histogram(struct cmn_metrics *m, const char *name,
                                            const char *labels, const char *help,
                                            const double *bounds, unsigned n_bounds);

void cmn_counter_add(struct cmn_counter *c, uint64_t n);
void cmn_gauge_set(struct cmn_gauge *g, double v);
void cmn_gauge_add(struct cmn_gauge *g, double delta);
void cmn_histogram_observe(struct cmn_histogram *h, double v);

uint64_t cmn_counter_value(const struct cmn_counter *c);
double cmn_gauge_value(const struct cmn_gauge *g);

/* Renders everything in the Prometheus text format (version 0.0.4). */
int cmn_metrics_render(struct cmn_metrics *m, struct cmn_buf *out);

/* Serves GET /metrics on addr ("host:port", port 0 = any) on `loop`; other paths get 404,
 * other methods 405; requests are bounded in size and time. */
int cmn_metrics_http_start(struct cmn_metrics *m, uv_loop_t *loop, const char *addr,
                           struct cmn_metrics_http **out, struct cmn_err *err);
int cmn_metrics_http_port(const struct cmn_metrics_http *h);
/* Stops listening, closes connections; `cb` (may be NULL) runs once everything is freed. */
void cmn_metrics_http_close(struct cmn_metrics_http *h, void (*cb)(void *data), void *data);

#endif
