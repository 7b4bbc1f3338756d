/* `apigate serve` and `apigate check`: command lines, config loading and error reporting. The
 * process model itself is supervisor.c; serving traffic is worker.c. */
#include "gateway/serve.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/cfg.h"
#include "core/log.h"
#include "gateway/gwconf.h"
#include "gateway/supervisor.h"
#include "net/sock.h"
#include "version.h"

static void serve__usage(FILE *out)
{
    fprintf(out,
            "usage: apigate serve -c FILE.yaml [--listen ADDR] [--admin ADDR|off] [--threads N]\n"
            "       apigate serve --help-config\n"
            "\n"
            "Runs the gateway: a supervisor process that owns the sockets and the config, and a\n"
            "worker process with N event-loop threads that serves the traffic.\n"
            "\n"
            "options:\n"
            "  -c, --config FILE   gateway configuration (YAML); required\n"
            "  --listen ADDR       listen address(es), host:port[,host:port]; replaces `listen`\n"
            "  --admin ADDR        admin listener host:port, or off; replaces `admin`\n"
            "  --threads N         loop threads (0 = CPU count); replaces `workers.threads`\n"
            "  --pid-file FILE     write the supervisor's pid there (removed at exit)\n"
            "  --share-ports       bind even where another process already listens (for a\n"
            "                      binary upgrade next to the running gateway); without it an\n"
            "                      address in use is an error (exit 1)\n"
            "  --no-supervisor     run the worker in this process: no restart, no reload\n"
            "                      (for gdb and valgrind)\n"
            "  -t, --test          validate the configuration and exit (as `apigate check`)\n"
            "  --help-config       print every configuration key with its default and exit\n"
            "  -h, --help          this help\n"
            "\n"
            "signals (to the supervisor):\n"
            "  SIGHUP    reload the file; an invalid file is reported and the old config kept;\n"
            "            a new worker starts on the same sockets and the old one drains\n"
            "  SIGTERM   stop accepting, let in-flight requests finish (workers.drain_timeout),\n"
            "  SIGINT    exit 0; a second signal kills at once\n"
            "\n"
            "the supervisor restarts a crashed worker (backoff 100 ms to 5 s), replaces a worker\n"
            "whose loop thread stops ticking for workers.worker_timeout, and replaces a worker\n"
            "gracefully after workers.max_requests requests.\n"
            "\n"
            "exit codes: 0 stopped cleanly, 1 could not start (an address in use), 2 bad usage or\n"
            "config\n");
}

static void check__usage(FILE *out)
{
    fprintf(out,
            "usage: apigate check [-q] [--resolve] [--dump] -c FILE.yaml\n"
            "       apigate check FILE.yaml\n"
            "       apigate check --help-config\n"
            "\n"
            "Validates a gateway configuration without starting anything, like nginx -t or\n"
            "haproxy -c: every error of the file is printed as file:line:col: key: problem.\n"
            "\n"
            "options:\n"
            "  -c, --config FILE   the file to check\n"
            "  -q, --quiet         print errors only\n"
            "  --resolve           also resolve every upstream host name (DNS) and fail\n"
            "                      on names that do not resolve from here\n"
            "  --dump              print the effective configuration (every key, defaults\n"
            "                      included) as YAML that loads back to the same values\n"
            "  --help-config       print every configuration key with its default and exit\n"
            "  -h, --help          this help\n"
            "\n"
            "exit codes: 0 valid, 2 invalid file or bad usage\n");
}

static void serve__help_config(void)
{
    printf("# apigate gateway configuration reference (apigate %s)\n\n"
           "Durations: 250ms, 30s, 2m, 1h. Sizes: 512, 64KB, 256MB (KB = 1024). Percentages: "
           "50%% or 0.5.\n"
           "A section whose default is \"(off)\" is enabled by being present; `{}` takes every "
           "default.\n\n",
           AG_VERSION);
    gwconf_print_reference(stdout);
}

/* Loads and reports; returns the config or NULL after printing every error to stderr. */
static struct gw_config *serve__load(const char *prog, const struct supervisor_opts *o)
{
    struct cfg_errors errs = {NULL, 0};
    struct gw_config *c = supervisor_load_config(o, &errs);
    if (c == NULL) {
        cfg_errors_print(&errs, stderr);
        fprintf(stderr, "apigate %s: %zu error%s in %s\n", prog, errs.n, errs.n == 1 ? "" : "s",
                o->config_path);
    }
    cfg_errors_free(&errs);
    return c;
}

/* What check validated, in two lines: enough to catch "wrong file" at a glance. */
static void check__summary(const struct gw_config *c)
{
    size_t cached = 0;
    for (size_t i = 0; i < c->nroutes; i++)
        cached += c->routes[i].cache.enabled;
    printf("listen:");
    for (size_t i = 0; i < c->nlisten; i++)
        printf(" %s", c->listen[i].spec);
    printf(" (%lld threads), admin: %s\n", (long long)c->workers.threads,
           c->admin_enabled ? c->admin : "off");
    printf("upstreams: %zu, routes: %zu (%zu cached)\n", c->nupstreams, c->nroutes, cached);
}

/* check --resolve: every upstream host name through the system resolver (blocking; fine in a
 * command that serves nothing). Returns 0 when all resolve. */
static int check__resolve(const struct gw_config *c, bool quiet)
{
    int bad = 0;
    for (size_t i = 0; i < c->nupstreams; i++) {
        const struct gw_upstream *u = &c->upstreams[i];
        for (size_t j = 0; j < u->nservers; j++) {
            const struct gw_upserver *s = &u->servers[j];
            if (s->numeric)
                continue;
            struct sock_addr a;
            char err[256], addr[64];
            if (sock_resolve(s->host, s->port, &a, err, sizeof(err)) != 0) {
                fprintf(stderr, "%s: upstreams.%s.servers[%zu]: '%s' does not resolve: %s\n",
                        c->path, u->name, j, s->host, err);
                bad++;
            } else if (!quiet) {
                sock_addr_format(&a, addr, sizeof(addr));
                printf("upstreams.%s: %s resolves to %s\n", u->name, s->host, addr);
            }
        }
    }
    return bad ? -1 : 0;
}

enum {
    OPT_LISTEN = 256,
    OPT_ADMIN,
    OPT_THREADS,
    OPT_HELP_CONFIG,
    OPT_PID_FILE,
    OPT_SINGLE,
    OPT_DUMP,
    OPT_RESOLVE,
    OPT_SHARE_PORTS
};

/* `apigate serve`: load and validate (exit 2 before opening anything if the file is bad), set
 * up logging from the file, then hand over to the supervisor (or run the worker alone). */
/* What a valid config may still hold that its author should hear about, printed by check and
 * serve -t: an open admin listener. */
static void serve__check_warnings(const struct gw_config *c, const char *path)
{
    if (gwconf_admin_open(c))
        fprintf(stderr, "%s: warning: admin %s is not on loopback and has no token_file "
                        "(admin.insecure: true): anyone who reaches it may POST /cache/purge\n",
                path, c->admin);
}

int serve_main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"admin", required_argument, NULL, OPT_ADMIN},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"test", no_argument, NULL, 't'},
        {"pid-file", required_argument, NULL, OPT_PID_FILE},
        {"no-supervisor", no_argument, NULL, OPT_SINGLE},
        {"share-ports", no_argument, NULL, OPT_SHARE_PORTS},
        {"foreground-worker", no_argument, NULL, OPT_SINGLE},
        {"help-config", no_argument, NULL, OPT_HELP_CONFIG},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    struct supervisor_opts o = {.threads = -1};
    bool test = false, single = false;
    int ch;
    optind = 1; /* main() may have run getopt for another command in tests */
    while ((ch = getopt_long(argc, argv, "c:th", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            o.config_path = optarg;
            break;
        case OPT_LISTEN:
            o.listen = optarg;
            break;
        case OPT_ADMIN:
            o.admin = optarg;
            break;
        case OPT_THREADS: {
            char *end;
            o.threads = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || o.threads < 0) {
                fprintf(stderr, "apigate serve: --threads: '%s' is not a number from 0 (CPU "
                                "count) to 64\n", optarg);
                return 2;
            }
            break;
        }
        case 't':
            test = true;
            break;
        case OPT_PID_FILE:
            o.pid_file = optarg;
            break;
        case OPT_SINGLE:
            single = true;
            break;
        case OPT_SHARE_PORTS:
            o.share_ports = true;
            break;
        case OPT_HELP_CONFIG:
            serve__help_config();
            return 0;
        case 'h':
            serve__usage(stdout);
            return 0;
        default:
            serve__usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "apigate serve: unexpected argument '%s'\n\n", argv[optind]);
        serve__usage(stderr);
        return 2;
    }
    if (o.config_path == NULL) {
        fprintf(stderr, "apigate serve: missing -c FILE.yaml (see examples/apigate.yaml)\n\n");
        serve__usage(stderr);
        return 2;
    }
    struct gw_config *c = serve__load("serve", &o);
    if (c == NULL)
        return 2;
    if (test) {
        serve__check_warnings(c, o.config_path);
        printf("configuration file %s test is successful\n", o.config_path);
        gwconf_free(c);
        return 0;
    }
    log_set_level((enum log_level)c->logging.level);
    log_set_json(c->logging.format == GW_FMT_JSON);
    return single ? supervisor_run_single(&o, c) : supervisor_run(&o, c);
}

/* `apigate check`: the same loader as serve, so "check passes" means "serve starts". The file
 * may come as -c FILE or as the only argument, as with nginx -t -c and haproxy -c -f. */
int check_main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"quiet", no_argument, NULL, 'q'},
        {"dump", no_argument, NULL, OPT_DUMP},
        {"resolve", no_argument, NULL, OPT_RESOLVE},
        {"help-config", no_argument, NULL, OPT_HELP_CONFIG},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    struct supervisor_opts o = {.threads = -1};
    bool quiet = false, dump = false, resolve = false;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "c:qh", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            o.config_path = optarg;
            break;
        case 'q':
            quiet = true;
            break;
        case OPT_DUMP:
            dump = true;
            break;
        case OPT_RESOLVE:
            resolve = true;
            break;
        case OPT_HELP_CONFIG:
            serve__help_config();
            return 0;
        case 'h':
            check__usage(stdout);
            return 0;
        default:
            check__usage(stderr);
            return 2;
        }
    }
    if (o.config_path == NULL && optind < argc)
        o.config_path = argv[optind++];
    if (optind < argc) {
        fprintf(stderr, "apigate check: unexpected argument '%s'\n\n", argv[optind]);
        check__usage(stderr);
        return 2;
    }
    if (o.config_path == NULL) {
        fprintf(stderr, "apigate check: missing -c FILE.yaml\n\n");
        check__usage(stderr);
        return 2;
    }
    struct gw_config *c = serve__load("check", &o);
    if (c == NULL)
        return 2;
    if (resolve && check__resolve(c, quiet) != 0) {
        fprintf(stderr, "apigate check: upstream names do not resolve in %s\n", o.config_path);
        gwconf_free(c);
        return 2;
    }
    if (dump) {
        gwconf_dump(c, stdout);
        gwconf_free(c);
        return 0;
    }
    if (!quiet)
        check__summary(c);
    serve__check_warnings(c, o.config_path);
    printf("configuration file %s test is successful\n", o.config_path);
    gwconf_free(c);
    return 0;
}
