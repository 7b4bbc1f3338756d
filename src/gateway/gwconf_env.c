/* Environment variables in gateway config files: `${NAME}` and `${NAME:-default}` are replaced
 * by their values before the YAML is parsed, so secrets and per-pod values (a Redis password, an
 * upstream address) need no templating step. `$${` stands for a literal `${`. Comments are left
 * alone. A value inside a quoted scalar is escaped for that quote style, so it arrives unchanged.
 * Lines keep their numbers, so positions in later errors stay right (columns after an expansion
 * on the same line shift by the difference). */
#include "gateway/gwconf_env.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "config/yaml.h"
#include "core/buf.h"
#include "core/xmalloc.h"

/* Position of an error, as a node with only a file, line and column. */
static void gwconf_env__error(struct cfg_errors *errs, const char *name, int line, int col,
                              const char *fmt, const char *what, size_t whatlen)
{
    struct ynode at = {.type = YNODE_SCALAR, .file = name, .line = line, .col = col};
    cfg_error(errs, &at, fmt, (int)whatlen, what);
}

/* Appends the value of a variable. Inside a quoted scalar (<quote> is the quote character) the
 * value is escaped for that style, so that it arrives as it is in the environment: a password
 * with a backslash or a quote would otherwise end the string early or have its "\t" turned into
 * a tab. A default comes from the file itself and is taken as written (<quote> 0). */
static void gwconf_env__append(struct buf *out, const char *val, size_t vlen, char quote)
{
    for (size_t k = 0; k < vlen; k++) {
        char c = val[k];
        if (quote == '"' && (c == '"' || c == '\\'))
            buf_append(out, "\\", 1);
        else if (quote == '\'' && c == '\'')
            buf_append(out, "'", 1); /* '' is a quote inside '...' */
        buf_append(out, &c, 1);
    }
}

char *gwconf_env_expand(const char *text, size_t len, const char *name, size_t *outlen,
                        struct cfg_errors *errs)
{
    struct buf out = BUF_INIT;
    size_t before = errs->n;
    int line = 1;
    size_t line_start = 0;
    bool comment = false;
    char quote = 0; /* inside '...' or "..." on this line */
    for (size_t i = 0; i < len; i++) {
        char ch = text[i];
        if (ch == '\n') {
            line++;
            line_start = i + 1;
            comment = false;
            quote = 0;
            buf_append(&out, &ch, 1);
            continue;
        }
        if (!comment) {
            if (quote == 0 && ch == '#' && (i == line_start || isspace((unsigned char)text[i - 1])))
                comment = true;
            else if (quote == 0 && (ch == '"' || ch == '\'') &&
                     (i == line_start || strchr(" \t[{,:-", text[i - 1]) != NULL))
                quote = ch;
            else if (quote != 0 && ch == quote && !(quote == '"' && text[i - 1] == '\\'))
                quote = 0;
        }
        if (comment || ch != '$') {
            buf_append(&out, &ch, 1);
            continue;
        }
        if (i + 2 < len && text[i + 1] == '$' && text[i + 2] == '{') {
            buf_append(&out, "${", 2); /* $${ is a literal ${ */
            i += 2;
            continue;
        }
        if (i + 1 >= len || text[i + 1] != '{') {
            buf_append(&out, &ch, 1);
            continue;
        }
        int col = (int)(i - line_start) + 1;
        size_t j = i + 2, nstart = j;
        while (j < len && (isalnum((unsigned char)text[j]) || text[j] == '_'))
            j++;
        size_t nlen = j - nstart;
        const char *def = NULL;
        size_t deflen = 0;
        if (j + 1 < len && text[j] == ':' && text[j + 1] == '-') {
            def = text + j + 2;
            size_t k = j + 2;
            while (k < len && text[k] != '}' && text[k] != '\n')
                k++;
            deflen = k - (j + 2);
            j = k;
        }
        if (nlen == 0 || isdigit((unsigned char)text[nstart]) || j >= len || text[j] != '}') {
            size_t shown = 0; /* <text> is not NUL-terminated: stop at its end */
            while (i + shown < len && text[i + shown] != '\n' && shown < 40)
                shown++;
            gwconf_env__error(errs, name, line, col,
                              "'%.*s': bad variable reference; write ${NAME} or "
                              "${NAME:-default} (NAME: letters, digits, _), or $${ for a "
                              "literal ${", text + i, shown);
            buf_append(&out, &ch, 1);
            continue;
        }
        char vname[128];
        if (nlen >= sizeof(vname)) {
            gwconf_env__error(errs, name, line, col, "'${%.*s}': variable name too long",
                              text + nstart, 20);
            i = j;
            continue;
        }
        memcpy(vname, text + nstart, nlen);
        vname[nlen] = '\0';
        const char *val = getenv(vname);
        size_t vlen;
        if (val != NULL && (*val != '\0' || def == NULL)) {
            vlen = strlen(val);
        } else if (def != NULL) {
            val = def;
            vlen = deflen;
        } else {
            gwconf_env__error(errs, name, line, col,
                              "${%.*s}: environment variable not set; set it, or give a default "
                              "with ${NAME:-default}", vname, nlen);
            i = j;
            continue;
        }
        if (memchr(val, '\n', vlen) != NULL) {
            gwconf_env__error(errs, name, line, col,
                              "${%.*s}: the value has a line break; only one-line values can be "
                              "put in the file", vname, nlen);
            i = j;
            continue;
        }
        gwconf_env__append(&out, val, vlen, val == def ? 0 : quote);
        i = j;
    }
    if (errs->n > before) {
        buf_deinit(&out);
        return NULL;
    }
    *outlen = out.len;
    buf_append(&out, "", 1);
    char *r = xstrndup(out.data ? out.data : "", *outlen);
    buf_deinit(&out);
    return r;
}
