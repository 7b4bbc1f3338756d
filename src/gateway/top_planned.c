/* Placeholder for `apigate top` until issue 6 lands: says so and exits 2 (never pretends). */
#include <stdio.h>
#include <string.h>

#include "gateway/serve.h"

int top_main(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: apigate top ...\n\nnot built yet: planned in issue 6.\n");
        return 0;
    }
    fprintf(stderr, "apigate top: not built yet (planned, issue 6)\n");
    return 2;
}
