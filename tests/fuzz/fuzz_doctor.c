/* Fuzz target for what `apigate doctor` reads from the servers it probes, which may be anything
 * that answers on a port: Redis INFO text, CLUSTER NODES and CLUSTER INFO text (a cluster's node
 * table, its slot ranges and flags), a gateway's /stats JSON (with the L2's view of Redis: nodes,
 * roles, slots) and /metrics text. The same bytes go through every parser, then the facts
 * through the rules that judge them (two /stats samples make a window). Bad input must give
 * odd findings, never a crash, a read out of bounds or a leak.
 * With AG_FUZZ_REPLAY_MAIN, main(argc, argv) replays every file of the directory argv[1]. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "doctor/internal.h"
#include "doctor/rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    char *text = malloc(len + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, len);
    text[len] = '\0';

    static struct redis_facts r; // 20 KB: not on the stack
    memset(&r, 0, sizeof(r));
    r.gw_l2_hits = r.gw_l2_misses = -1;
    probe_redis__parse_info(text, &r);
    probe_redis__parse_cluster_info(text, &r);
    probe_redis__parse_nodes(text, &r);
    r.cluster = r.n_nodes > 0;
    for (int i = 0; i < r.n_nodes; i++)
        if (i % 2 == 0) { // half of them "read": sums and the fullest node
            r.nodes[i].reached = true;
            r.nodes[i].used_memory = (long long)i * 1000;
            r.nodes[i].maxmemory = 4000;
            probe_redis__add_node(&r, &r.nodes[i]);
        }
    struct finding_list l;
    finding_list_init(&l);
    rules_redis(&r, &l);
    finding_list_deinit(&l);

    static struct gw_facts a, b, w;
    memset(&a, 0, sizeof(a));
    if (probe_gateway__parse(text, &a) == 0) {
        probe_gateway__parse_metrics(text, &a);
        b = a;
        b.l2_errors = a.l2_errors + 1;
        probe_gateway__window(&a, &b, 3.0, &w);
        finding_list_init(&l);
        rules_gateway(&a, &l);
        rules_gateway(&w, &l);
        finding_list_deinit(&l);
    }
    free(text);
    return 0;
}

#ifdef AG_FUZZ_REPLAY_MAIN
#include "replay_main.h"
#endif
