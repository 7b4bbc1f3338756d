/* Reads a histogram back from the JSON that hist_to_json() writes (load reports, merging the
 * results of several load machines). Kept apart from hist.c so that only this file needs cJSON. */
#include "core/hist.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

/* Reads a non-negative integer member; doubles hold integers exactly up to 2^53, which is far
 * beyond any count or µs sum a run produces. */
static int hist_json__u64(const cJSON *v, uint64_t *out)
{
    if (!cJSON_IsNumber(v))
        return -1;
    double d = v->valuedouble;
    if (!(d >= 0.0) || d > 9007199254740992.0 || floor(d) != d)
        return -1;
    *out = (uint64_t)d;
    return 0;
}

int hist_from_json(struct hist *h, const struct cJSON *obj)
{
    struct hist tmp;
    hist_init(&tmp);
    if (!cJSON_IsObject(obj))
        return -1;
    uint64_t count, sum, min, max;
    if (hist_json__u64(cJSON_GetObjectItemCaseSensitive(obj, "count"), &count) == -1 ||
        hist_json__u64(cJSON_GetObjectItemCaseSensitive(obj, "sum_us"), &sum) == -1 ||
        hist_json__u64(cJSON_GetObjectItemCaseSensitive(obj, "min_us"), &min) == -1 ||
        hist_json__u64(cJSON_GetObjectItemCaseSensitive(obj, "max_us"), &max) == -1)
        return -1;
    const cJSON *buckets = cJSON_GetObjectItemCaseSensitive(obj, "buckets");
    if (!cJSON_IsArray(buckets))
        return -1;
    uint64_t total = 0;
    const cJSON *pair;
    cJSON_ArrayForEach(pair, buckets)
    {
        uint64_t idx, n;
        if (!cJSON_IsArray(pair) || cJSON_GetArraySize(pair) != 2 ||
            hist_json__u64(cJSON_GetArrayItem(pair, 0), &idx) == -1 ||
            hist_json__u64(cJSON_GetArrayItem(pair, 1), &n) == -1 || idx >= HIST_BUCKETS)
            return -1;
        tmp.buckets[idx] += n;
        total += n;
    }
    /* A histogram whose parts disagree would answer percentiles wrongly without anyone noticing:
     * refuse it instead. */
    if (total != count || (count > 0 && min > max))
        return -1;
    if (count > 0 &&
        (tmp.buckets[hist_bucket_of(min)] == 0 || tmp.buckets[hist_bucket_of(max)] == 0))
        return -1;
    tmp.count = count;
    tmp.sum_us = sum;
    tmp.min_us = count ? min : UINT64_MAX;
    tmp.max_us = count ? max : 0;
    memcpy(h, &tmp, sizeof(tmp));
    return 0;
}
