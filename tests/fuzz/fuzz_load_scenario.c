/* Fuzz target for what `apigate load run` reads from users: scenario YAML (through the real
 * loader, so every key, template, stage and threshold parser runs), and the same bytes as a
 * template and as a threshold expression. Bad input must give an error, never a crash, a leak or
 * a hang; a scenario that loads must also prepare (render its static requests).
 * With AG_FUZZ_REPLAY_MAIN, main(argc, argv) replays every file of the directory argv[1], so gcc
 * builds and ctest run the corpus without libFuzzer. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "load/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    /* As a scenario file: the loader reads a path, so hand it a memfd. */
    int fd = memfd_create("scenario", 0);
    if (fd == -1)
        return 0;
    if (write(fd, data, len) == (ssize_t)len) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        FILE *devnull = fopen("/dev/null", "w");
        struct scenario *s = scenario_load(path, devnull);
        if (s != NULL) {
            /* Resolving is not the point: point the scenario at loopback before preparing. */
            char err[256];
            if (url_parse("http://127.0.0.1:9/", &s->url, err, sizeof(err)) == 0)
                scenario_prepare(s, err, sizeof(err));
            scenario_destroy(s);
        }
        if (devnull)
            fclose(devnull);
    }
    close(fd);

    /* As a template and as a threshold (NUL-terminated copies). */
    char *text = malloc(len + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, len);
    text[len] = '\0';
    struct tmpl t;
    char err[256];
    size_t off;
    if (tmpl_compile(&t, text, err, sizeof(err), &off) == 0) {
        uint64_t rng = 1;
        _Atomic uint64_t seq = 0;
        struct buf scratch = BUF_INIT, out = BUF_INIT;
        struct tmpl_ctx ctx = {&rng, &seq, &scratch, NULL};
        tmpl_render(&t, &ctx, &out);
        buf_deinit(&out);
        buf_deinit(&scratch);
        tmpl_free(&t);
    } else if (off > len) {
        abort(); /* the error offset must point inside the input */
    }
    char *colon = strchr(text, ':');
    if (colon) {
        *colon = '\0';
        struct threshold th;
        if (threshold_parse(&th, text, colon + 1, err, sizeof(err)) == 0)
            threshold_free(&th);
    }
    free(text);
    return 0;
}

#ifdef AG_FUZZ_REPLAY_MAIN
#include "replay_main.h"
#endif
