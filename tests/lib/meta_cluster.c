/* A lode-meta cluster for shell tests (tests/integration/test_lodectl.sh):
 *
 *   meta_cluster ENVFILE [REPLICAS]
 *
 * starts REPLICAS (default 3) replicas through tests/lib/proc.c, waits for a leader, writes
 * ENVFILE (shell assignments: LODE_META, LODE_SECRET_FILE, MC_DIR, MC_PIDS) and then waits
 * for SIGTERM or SIGINT, or for its parent (the test script) to go away. It then stops the
 * replicas and removes the directory; with SIGUSR1 instead, it keeps the directory and prints
 * each replica's log tail (for a failed test). The replicas die with it whatever happens
 * (PR_SET_PDEATHSIG), so a shell test cannot leak them.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "tests/lib/proc.h"

static volatile sig_atomic_t stop_sig;

static void on_signal(int sig)
{
    stop_sig = sig;
}

static int write_env(struct tl_cluster *c, const char *path)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -errno;
    fprintf(f, "LODE_META='%s'\n", tl_cluster_rpc_addrs(c));
    fprintf(f, "LODE_SECRET_FILE='%s'\n", c->secret_path);
    fprintf(f, "MC_DIR='%s'\n", c->dir);
    fprintf(f, "MC_PIDS='");
    for (unsigned i = 0; i < c->n; i++)
        fprintf(f, "%s%d", i ? " " : "", (int)c->r[i].pid);
    fprintf(f, "'\n");
    if (fclose(f) != 0)
        return -errno;
    /* Appears complete or not at all, for the shell that polls for it. */
    return rename(tmp, path) == 0 ? 0 : -errno;
}

int main(int argc, char **argv)
{
    struct tl_cluster_options o = TL_CLUSTER_OPTIONS_DEFAULT;
    struct tl_cluster *c = NULL;
    struct cmn_err err;
    unsigned leader;

    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s ENVFILE [REPLICAS]\n", argv[0]);
        return 2;
    }
    o.name = "meta_cluster";
    if (argc == 3)
        o.replicas = (unsigned)atoi(argv[2]);
    cmn_err_clear(&err);

    pid_t parent = getppid();
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (tl_cluster_start(&o, &c, &err) != 0) {
        printf("# meta_cluster: %s\n", err.msg);
        return 1;
    }
    if (tl_cluster_wait_leader(c, 15000, &leader) != 0) {
        printf("# meta_cluster: no leader elected\n");
        tl_cluster_destroy(c, true);
        return 1;
    }
    int rc = write_env(c, argv[1]);
    if (rc != 0) {
        printf("# meta_cluster: write %s: %s\n", argv[1], strerror(-rc));
        tl_cluster_destroy(c, true);
        return 1;
    }
    fflush(stdout);

    /* Orphaned (the script died without cleaning up): stop as if told to. */
    while (!stop_sig && getppid() == parent)
        poll(NULL, 0, 200);
    tl_cluster_destroy(c, stop_sig == SIGUSR1);
    return 0;
}
