/* Placeholder for `apigate check` until issue 3 lands: says so and exits 2 (never pretends). */
#include <stdio.h>
#include <string.h>

#include "gateway/serve.h"

int check_main(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: apigate check ...\n\nnot built yet: planned in issue 3.\n");
        return 0;
    }
    fprintf(stderr, "apigate check: not built yet (planned, issue 3)\n");
    return 2;
}
