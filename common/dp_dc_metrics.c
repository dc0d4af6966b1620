/* The dc instance's statistics as Prometheus series (dp_dc.h). Always built: the feed is pure
 * and unit-tested without a NIC; only the daemons' timers that call cmn_dp_dc_get_stats need
 * mlx5dv. */
#include "common/dp_dc.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "common/metrics.h"

struct series {
    const char *name, *help;
    size_t off;                    /* in struct cmn_dp_dc_stats */
};

#define S(f, h) {#f, h, offsetof(struct cmn_dp_dc_stats, f)}
static const struct series counters[CMN_DP_DC_N_COUNTERS] = {
    S(writes, "dc RDMA WRITE calls that completed"),
    S(reads, "dc RDMA READ calls that completed"),
    S(bytes_written, "bytes written into clients' memory over dc"),
    S(bytes_read, "bytes read from clients' memory over dc"),
    S(calls_failed, "dc calls that ended with an error"),
    S(wrs_posted, "dc work requests posted, reposts included"),
    S(wr_errors, "dc completions with an error of their own"),
    S(wrs_reposted, "dc work requests flushed by another target's error and posted again"),
    S(dci_recoveries, "DCIs brought back from ERROR to RTS"),
    S(dci_recovery_failures, "failed DCI recovery steps (retried)"),
    S(dci_forced, "DCIs moved to ERROR by a fence or the stall watchdog"),
    S(fences, "dc fences"),
    S(fences_forced, "dc fences whose drain bound ran out"),
    S(ah_hits, "address-handle cache hits"),
    S(ah_misses, "address-handle cache misses"),
    S(ah_evictions, "address handles evicted"),
    S(ah_failures, "address handles that could not be created"),
    S(bytes_direct, "dc bytes moved from or to registered memory without a staging copy"),
};
static const struct series gauges[CMN_DP_DC_N_GAUGES] = {
    S(calls_queued, "dc calls with work requests not yet posted"),
    S(wrs_in_flight, "dc work requests in flight"),
    S(slots_free, "free dc staging slots"),
    S(slots_total, "dc staging slots"),
    S(dcis_ready, "DCIs ready to send"),
    S(dcis_total, "DCIs"),
};
#undef S

int cmn_dp_dc_metrics_init(struct cmn_dp_dc_metrics *dm, struct cmn_metrics *m,
                           const char *prefix, const char *labels)
{
    memset(dm, 0, sizeof(*dm));
    char name[128];
    for (size_t i = 0; i < CMN_DP_DC_N_COUNTERS; i++) {
        snprintf(name, sizeof(name), "%s_dc_%s_total", prefix, counters[i].name);
        if (!(dm->c[i] = cmn_metrics_counter(m, name, labels, counters[i].help)))
            return -ENOMEM;
    }
    for (size_t i = 0; i < CMN_DP_DC_N_GAUGES; i++) {
        snprintf(name, sizeof(name), "%s_dc_%s", prefix, gauges[i].name);
        if (!(dm->g[i] = cmn_metrics_gauge(m, name, labels, gauges[i].help)))
            return -ENOMEM;
    }
    return 0;
}

void cmn_dp_dc_metrics_feed(struct cmn_dp_dc_metrics *dm, const struct cmn_dp_dc_stats *s)
{
    for (size_t i = 0; i < CMN_DP_DC_N_COUNTERS; i++) {
        uint64_t now, before;
        memcpy(&now, (const char *)s + counters[i].off, sizeof(now));
        memcpy(&before, (const char *)&dm->last + counters[i].off, sizeof(before));
        cmn_counter_add(dm->c[i], now >= before ? now - before : now);
    }
    for (size_t i = 0; i < CMN_DP_DC_N_GAUGES; i++) {
        uint32_t v;
        memcpy(&v, (const char *)s + gauges[i].off, sizeof(v));
        cmn_gauge_set(dm->g[i], (double)v);
    }
    dm->last = *s;
}
