/* libFuzzer target for the gateway config loader (YAML tree, descriptor tables, the gwconf
 * sections, ${ENV} expansion). Properties checked on every input:
 *   - no crash, no leak, no read outside the input (ASan/valgrind);
 *   - a rejected file has at least one error, and every error names the file;
 *   - an accepted file dumps (apigate check --dump) to YAML that loads back and dumps to the
 *     same text: the dump holds every value exactly.
 * With AG_FUZZ_REPLAY_MAIN, main(argc, argv) replays every file of the directory argv[1], so gcc
 * builds and ctest run the corpus without libFuzzer. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/cfg.h"
#include "gateway/gwconf.h"

static void check(bool ok)
{
    if (!ok)
        abort();
}

static char *dump_of(const struct gw_config *c, size_t *len)
{
    char *text = NULL;
    FILE *f = open_memstream(&text, len);
    check(f != NULL);
    gwconf_dump(c, f);
    fclose(f);
    return text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 64 * 1024)
        return 0; /* configs are small; big inputs only slow the fuzzer down */
    struct cfg_errors errs = {NULL, 0};
    struct gw_config *c = gwconf_load_string((const char *)data, size, "f.yaml", &errs);
    if (c == NULL) {
        check(errs.n > 0);
        for (size_t i = 0; i < errs.n; i++)
            check(errs.msgs[i] != NULL && strstr(errs.msgs[i], "f.yaml") != NULL);
        cfg_errors_free(&errs);
        return 0;
    }
    check(errs.n == 0);
    size_t l1, l2;
    char *d1 = dump_of(c, &l1);
    struct gw_config *c2 = gwconf_load_string(d1, l1, "f.yaml", &errs);
    if (c2 == NULL) {
        fprintf(stderr, "dump does not load back:\n%s\n", d1);
        cfg_errors_print(&errs, stderr);
        abort();
    }
    char *d2 = dump_of(c2, &l2);
    if (l1 != l2 || memcmp(d1, d2, l1) != 0) {
        fprintf(stderr, "dump of the dump differs:\n%s\n---\n%s\n", d1, d2);
        abort();
    }
    free(d1);
    free(d2);
    gwconf_free(c2);
    gwconf_free(c);
    cfg_errors_free(&errs);
    return 0;
}

#ifdef AG_FUZZ_REPLAY_MAIN
#include "replay_main.h"
#endif
