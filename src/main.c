/* apigate: the subcommand table. Each <cmd>_main() lives in its module. */
#include <stdio.h>
#include <string.h>

#include "demo/demo.h"
#include "doctor/doctor.h"
#include "gateway/serve.h"
#include "load/load.h"
#include "mock/mock.h"
#include "top/top.h"
#include "version.h"

struct command {
    const char *name;
    int (*main)(int argc, char **argv);
    const char *summary;
};

static const struct command commands[] = {
    {"serve", serve_main, "run the gateway in front of an API (cache, pools, limits, metrics)"},
    {"check", check_main, "validate a gateway config file, like nginx -t"},
    {"load", load_main, "generate load: virtual users or arrival rate, checks, thresholds, reports"},
    {"doctor", doctor_main, "diagnose a running stack (gateway, PostgreSQL, PgBouncer, Redis, host)"},
    {"mock", mock_main, "run a deliberately slow API (latency, DB pool queue, errors, cold starts)"},
    {"demo", demo_main, "the before/after story in one command"},
    {"top", top_main, "live gateway statistics in the terminal"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: apigate COMMAND [OPTIONS]\n\n"
                 "apigate fixes slow APIs and proves the fix: a caching, pooling, load-shedding\n"
                 "gateway, a load generator, a stack doctor and a slow mock API in one binary.\n\n"
                 "commands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n  apigate COMMAND --help    options of one command\n"
                 "  apigate --version         version and build type\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0 || strcmp(cmd, "version") == 0) {
        printf("apigate %s (%s)\n", AG_VERSION, AG_BUILD_TYPE);
        return 0;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(cmd, commands[i].name) == 0)
            return commands[i].main(argc - 1, argv + 1);
    }
    fprintf(stderr, "apigate: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
