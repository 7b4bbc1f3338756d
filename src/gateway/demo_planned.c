/* Placeholder for `apigate demo` until issue 9 lands: says so and exits 2 (never pretends). */
#include <stdio.h>
#include <string.h>

#include "gateway/serve.h"

int demo_main(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: apigate demo ...\n\nnot built yet: planned in issue 9.\n");
        return 0;
    }
    fprintf(stderr, "apigate demo: not built yet (planned, issue 9)\n");
    return 2;
}
