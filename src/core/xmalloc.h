/* Allocation wrappers that abort with a message on failure (like h2o_mem_alloc, Redis zmalloc):
 * memory is bounded by config limits, so an allocation failure is not a recoverable error. */
#ifndef AG_CORE_XMALLOC_H
#define AG_CORE_XMALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

#endif
