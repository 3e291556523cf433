/* Configuration <-> YAML through libyaml: the event-stream reader that walks the two-level
 * document (sections of keys, plus top-level `seed`), rejects unknown and duplicate keys and
 * keys not implemented yet (or skips those in a checkpoint's text) and hands each value to
 * the typed conversion of config.c; `--set key=value` (the value parsed
 * by libyaml too); and the emitter that writes the resolved config back (to a string for
 * checkpoints, or to a file through a temporary name and a rename). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "io/config_internal.h"
#include "util/atomic_file.h"
#include "util/check.h"

#define CONFIG_FILE_MAX (4u << 20) /* bytes: a config is a few KiB; refuse anything huge */

/* ---- reader ------------------------------------------------------------------------------ */

typedef struct reader {
    yaml_parser_t parser;
    yaml_event_t ev;
    bool have_ev;
    const char *text;   /* the input, to look at the character a syntax error points to */
    size_t len;
    const char *origin; /* file name or "--set" for messages */
    const char *key;    /* --set: the key whose value is parsed; NULL for a file */
    bool lines;         /* messages carry line numbers (false for --set) */
    bool skip_later;    /* drop the values of keys not implemented yet instead of refusing them */
} reader;

static int ev_line(const reader *r) { return r->lines ? (int)r->ev.start_mark.line + 1 : 0; }

/* Byte offset of libyaml's mark in the input (len when it is not found) and of the start
 * of its line. The mark counts lines (\n, \r\n or \r) and, within a line, characters, not
 * bytes; a UTF-8 BOM is not counted. Other encodings are not located (libyaml also reads
 * UTF-16). */
static size_t mark_offset(const reader *r, yaml_mark_t m, size_t *line_start) {
    const unsigned char *t = (const unsigned char *)r->text;
    size_t i = 0, n = r->len;
    if (n >= 3 && t[0] == 0xEF && t[1] == 0xBB && t[2] == 0xBF) i = 3;
    for (size_t line = 0; line < m.line && i < n; i++) {
        if (t[i] == '\r' && i + 1 < n && t[i + 1] == '\n') i++;
        if (t[i] == '\n' || t[i] == '\r') line++;
    }
    *line_start = i;
    for (size_t col = 0; col < m.column && i < n; col++)
        for (i++; i < n && (t[i] & 0xC0) == 0x80; i++) {} /* skip UTF-8 continuation bytes */
    return i < n ? i : n;
}

/* libyaml reports a tab where YAML allows none as "found character that cannot start any
 * token" (a tab in indentation) or "found a tab character that violates indentation", with
 * the line but not the column; say "tab" and where it is. Returns PFGM_OK when the error
 * is not about a tab. */
static pfgm_status tab_error(const reader *r) {
    const yaml_parser_t *p = &r->parser;
    size_t line_start = 0, at = mark_offset(r, p->problem_mark, &line_start);
    bool is_tab = at < r->len && r->text[at] == '\t';
    if (!is_tab && !(p->problem && strstr(p->problem, "tab"))) return PFGM_OK;
    int col = (int)p->problem_mark.column + 1;
    if (!r->lines)
        return pfgm_cfg_error(r->origin, 0, r->key,
                              "YAML syntax error: tab character at column %d of the value (use "
                              "spaces, not tabs)", col);
    bool indent = is_tab; /* only blanks before it on its line */
    for (size_t i = line_start; indent && i < at; i++)
        indent = r->text[i] == ' ' || r->text[i] == '\t';
    return pfgm_error(PFGM_ERR_CONFIG, "%s:%d: YAML syntax error: tab character at column %d (%s)",
                      r->origin, (int)p->problem_mark.line + 1, col,
                      indent ? "indent with spaces: YAML does not allow tabs in indentation"
                             : "use spaces, not tabs");
}

static pfgm_status syntax_error(const reader *r) {
    const yaml_parser_t *p = &r->parser;
    if (p->error == YAML_MEMORY_ERROR)
        return pfgm_error(PFGM_ERR_NOMEM, "%s: out of memory while parsing YAML", r->origin);
    const char *problem = p->problem ? p->problem : "malformed YAML";
    int line = (int)p->problem_mark.line + 1;
    if (p->error == YAML_READER_ERROR)
        return pfgm_error(PFGM_ERR_CONFIG, "%s: YAML error: %s at byte %zu", r->origin, problem,
                          p->problem_offset);
    pfgm_status st = tab_error(r);
    if (st != PFGM_OK) return st;
    if (!r->lines)
        return pfgm_cfg_error(r->origin, 0, r->key, "YAML syntax error: %s%s%s",
                              p->context ? p->context : "", p->context ? ", " : "", problem);
    if (p->context)
        return pfgm_error(PFGM_ERR_CONFIG, "%s:%d: YAML syntax error: %s (%s at line %d)", r->origin,
                          line, problem, p->context, (int)p->context_mark.line + 1);
    return pfgm_error(PFGM_ERR_CONFIG, "%s:%d: YAML syntax error: %s", r->origin, line, problem);
}

static pfgm_status rd_next(reader *r) {
    if (r->have_ev) {
        yaml_event_delete(&r->ev);
        r->have_ev = false;
    }
    if (!yaml_parser_parse(&r->parser, &r->ev)) return syntax_error(r);
    r->have_ev = true;
    return PFGM_OK;
}

/* key: the --set key whose value `text` is (NULL for a file, whose messages carry lines). */
static pfgm_status rd_open(reader *r, const char *text, size_t len, const char *origin,
                           const char *key) {
    memset(r, 0, sizeof *r);
    if (!yaml_parser_initialize(&r->parser))
        return pfgm_error(PFGM_ERR_NOMEM, "%s: cannot initialise the YAML parser", origin);
    yaml_parser_set_input_string(&r->parser, (const unsigned char *)text, len);
    r->text = text;
    r->len = len;
    r->origin = origin;
    r->key = key;
    r->lines = key == NULL;
    return PFGM_OK;
}

static void rd_close(reader *r) {
    if (r->have_ev) yaml_event_delete(&r->ev);
    yaml_parser_delete(&r->parser);
}

static bool is_null_word(const char *s) {
    return !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

/* Copies the current scalar event into *s. Explicit tags other than !!str are refused so that
 * a value is always typed by its key. */
static pfgm_status take_scalar(reader *r, const char *key, pfgm_cfg_scalar *s) {
    const yaml_event_t *e = &r->ev;
    const char *tag = (const char *)e->data.scalar.tag;
    int line = ev_line(r);
    if (tag && strcmp(tag, YAML_STR_TAG) != 0)
        return pfgm_cfg_error(r->origin, line, key, "explicit YAML tag '%s' is not supported (only !!str)",
                              tag);
    size_t len = e->data.scalar.length;
    if (memchr(e->data.scalar.value, '\0', len))
        return pfgm_cfg_error(r->origin, line, key, "value contains a NUL character");
    s->text = malloc(len + 1);
    if (!s->text) return pfgm_error(PFGM_ERR_NOMEM, "%s: out of memory", r->origin);
    memcpy(s->text, e->data.scalar.value, len);
    s->text[len] = '\0';
    s->len = len;
    s->quoted = e->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || tag != NULL;
    s->null = !s->quoted && (len == 0 || is_null_word(s->text));
    s->line = line;
    return PFGM_OK;
}

/* Reads the value whose first event is current: a scalar, or a flat sequence of scalars. */
static pfgm_status read_value(reader *r, const pfgm_cfg_key *k, pfgm_cfg_value *v) {
    memset(v, 0, sizeof *v);
    v->line = ev_line(r);
    switch (r->ev.type) {
    case YAML_SCALAR_EVENT:
        return take_scalar(r, k->full, &v->scalar);
    case YAML_SEQUENCE_START_EVENT:
        v->is_list = true;
        for (;;) {
            PFGM_TRY(rd_next(r));
            if (r->ev.type == YAML_SEQUENCE_END_EVENT) return PFGM_OK;
            if (r->ev.type != YAML_SCALAR_EVENT)
                return pfgm_cfg_error(r->origin, ev_line(r), k->full,
                                      "list entries must be plain values, not lists or mappings");
            if (v->n_items == PFGM_CONFIG_LIST_MAX)
                return pfgm_cfg_error(r->origin, ev_line(r), k->full, "too many entries (at most %d)",
                                      PFGM_CONFIG_LIST_MAX);
            PFGM_TRY(take_scalar(r, k->full, &v->items[v->n_items]));
            v->n_items++;
        }
    case YAML_MAPPING_START_EVENT:
        return pfgm_cfg_error(r->origin, v->line, k->full, "expected %s, got a mapping",
                              pfgm_cfg_type_phrase(k));
    case YAML_ALIAS_EVENT:
        return pfgm_cfg_error(r->origin, v->line, k->full, "YAML aliases (*name) are not supported");
    default:
        return pfgm_cfg_error(r->origin, v->line, k->full, "unexpected YAML structure");
    }
}

static unsigned next_seq(const pfgm_cfg_origin *origins) {
    size_t n;
    unsigned seq = 0;
    pfgm_cfg_keys(&n);
    for (size_t i = 0; origins && i < n; i++)
        if (origins[i].seq > seq) seq = origins[i].seq;
    return seq + 1;
}

/* Steps over the value whose first event is current, nested or not. */
static pfgm_status skip_value(reader *r) {
    for (int depth = 0;;) {
        yaml_event_type_t t = r->ev.type;
        if (t == YAML_SEQUENCE_START_EVENT || t == YAML_MAPPING_START_EVENT) depth++;
        if (t == YAML_SEQUENCE_END_EVENT || t == YAML_MAPPING_END_EVENT) depth--;
        if (depth == 0) return PFGM_OK;
        PFGM_TRY(rd_next(r));
    }
}

/* Reads and applies the value of key k (its first event is current). A key not implemented
 * yet is refused at its own line, whatever the value, or skipped (r->skip_later). */
static pfgm_status read_key(reader *r, const pfgm_cfg_key *k, pfgm_config *cfg,
                            pfgm_cfg_origin *origins, int key_line) {
    if (k->type == PFGM_CFG_LATER) {
        if (r->skip_later) return skip_value(r);
        pfgm_cfg_value later = {.line = key_line};
        return pfgm_cfg_apply(cfg, k, &later, r->origin);
    }
    pfgm_cfg_value v;
    pfgm_status st = read_value(r, k, &v);
    if (st == PFGM_OK) st = pfgm_cfg_apply(cfg, k, &v, r->origin);
    pfgm_cfg_value_free(&v);
    if (st == PFGM_OK && origins)
        origins[pfgm_cfg_index(k)] = (pfgm_cfg_origin){r->origin, key_line, next_seq(origins)};
    return st;
}

/* The current event is a mapping key; copies its name (refusing non-scalar keys). */
static pfgm_status key_name(reader *r, const char *where, char *buf, size_t n) {
    if (r->ev.type != YAML_SCALAR_EVENT)
        return pfgm_cfg_error(r->origin, ev_line(r), where, "keys must be plain names");
    snprintf(buf, n, "%.*s", (int)r->ev.data.scalar.length, (const char *)r->ev.data.scalar.value);
    return PFGM_OK;
}

static pfgm_status read_section(reader *r, const char *sec, pfgm_config *cfg,
                                pfgm_cfg_origin *origins, int *seen) {
    char name[96], full[256], hint[192];
    for (;;) {
        PFGM_TRY(rd_next(r));
        if (r->ev.type == YAML_MAPPING_END_EVENT) return PFGM_OK;
        PFGM_TRY(key_name(r, sec, name, sizeof name));
        int line = ev_line(r);
        const pfgm_cfg_key *k = pfgm_cfg_find(sec, name);
        snprintf(full, sizeof full, "%s.%s", sec, name);
        if (!k) {
            pfgm_cfg_suggest(sec, name, hint, sizeof hint);
            return pfgm_cfg_error(r->origin, line, full, "unknown key%s", hint);
        }
        size_t idx = pfgm_cfg_index(k);
        if (seen[idx])
            return pfgm_cfg_error(r->origin, line, full, "duplicate key (first given at line %d)",
                                  seen[idx]);
        seen[idx] = line;
        PFGM_TRY(rd_next(r));
        PFGM_TRY(read_key(r, k, cfg, origins, line));
    }
}

static pfgm_status read_root(reader *r, pfgm_config *cfg, pfgm_cfg_origin *origins) {
    int seen_key[PFGM_CFG_MAX_KEYS] = {0};
    int seen_sec[16] = {0};
    const char *const *sections = pfgm_cfg_sections();
    char name[96], hint[192];
    for (;;) {
        PFGM_TRY(rd_next(r));
        if (r->ev.type == YAML_MAPPING_END_EVENT) return PFGM_OK;
        PFGM_TRY(key_name(r, "(top level)", name, sizeof name));
        int line = ev_line(r);
        const pfgm_cfg_key *k = pfgm_cfg_find(NULL, name);
        if (k) { /* a top-level key (seed) */
            size_t idx = pfgm_cfg_index(k);
            if (seen_key[idx])
                return pfgm_cfg_error(r->origin, line, name, "duplicate key (first given at line %d)",
                                      seen_key[idx]);
            seen_key[idx] = line;
            PFGM_TRY(rd_next(r));
            PFGM_TRY(read_key(r, k, cfg, origins, line));
            continue;
        }
        size_t s = 0;
        while (sections[s] && strcmp(sections[s], name) != 0) s++;
        if (!sections[s]) {
            pfgm_cfg_suggest(NULL, name, hint, sizeof hint);
            return pfgm_cfg_error(r->origin, line, name, "unknown section%s", hint);
        }
        if (seen_sec[s])
            return pfgm_cfg_error(r->origin, line, name, "duplicate section (first given at line %d)",
                                  seen_sec[s]);
        seen_sec[s] = line;
        PFGM_TRY(rd_next(r));
        if (r->ev.type == YAML_SCALAR_EVENT && r->ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
            (r->ev.data.scalar.length == 0 || is_null_word((const char *)r->ev.data.scalar.value)))
            continue; /* "section:" with every key commented out */
        if (r->ev.type != YAML_MAPPING_START_EVENT)
            return pfgm_cfg_error(r->origin, ev_line(r), name, "expected a mapping of %s keys", name);
        PFGM_TRY(read_section(r, name, cfg, origins, seen_key));
    }
}

static pfgm_status read_stream(reader *r, pfgm_config *cfg, pfgm_cfg_origin *origins) {
    PFGM_TRY(rd_next(r)); /* stream start */
    PFGM_TRY(rd_next(r));
    if (r->ev.type == YAML_STREAM_END_EVENT)
        return pfgm_error(PFGM_ERR_CONFIG, "%s: empty file (no configuration keys)", r->origin);
    PFGM_TRY(rd_next(r)); /* past document start */
    if (r->ev.type == YAML_SCALAR_EVENT && r->ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
        (r->ev.data.scalar.length == 0 || is_null_word((const char *)r->ev.data.scalar.value)))
        return pfgm_error(PFGM_ERR_CONFIG, "%s: empty file (no configuration keys)", r->origin);
    if (r->ev.type != YAML_MAPPING_START_EVENT)
        return pfgm_error(PFGM_ERR_CONFIG, "%s:%d: expected a mapping of sections at the top level",
                          r->origin, ev_line(r));
    PFGM_TRY(read_root(r, cfg, origins));
    PFGM_TRY(rd_next(r)); /* document end */
    PFGM_TRY(rd_next(r));
    if (r->ev.type != YAML_STREAM_END_EVENT)
        return pfgm_error(PFGM_ERR_CONFIG, "%s:%d: more than one YAML document", r->origin, ev_line(r));
    return PFGM_OK;
}

pfgm_status pfgm_cfg_read_yaml(const char *text, size_t len, const char *origin, pfgm_config *cfg,
                               pfgm_cfg_origin *origins, bool skip_later) {
    reader r;
    PFGM_TRY(rd_open(&r, text, len, origin, NULL));
    r.skip_later = skip_later;
    pfgm_status st = read_stream(&r, cfg, origins);
    rd_close(&r);
    return st;
}

/* ---- --set ----------------------------------------------------------------------------- */

pfgm_status pfgm_cfg_set_at(pfgm_config *cfg, const char *assignment, pfgm_cfg_origin *origins) {
    const char *eq = strchr(assignment, '=');
    if (!eq)
        return pfgm_error(PFGM_ERR_CONFIG, "--set: '%s': expected section.key=value", assignment);
    const char *b = assignment, *e = eq;
    while (b < e && (*b == ' ' || *b == '\t')) b++;
    while (e > b && (e[-1] == ' ' || e[-1] == '\t')) e--;
    char full[160], sec[160], name[160], hint[192];
    snprintf(full, sizeof full, "%.*s", (int)(e - b), b);
    const char *dot = strchr(full, '.');
    const pfgm_cfg_key *k = NULL;
    if (dot) {
        snprintf(sec, sizeof sec, "%.*s", (int)(dot - full), full);
        snprintf(name, sizeof name, "%s", dot + 1);
        k = pfgm_cfg_find(sec, name);
    } else {
        snprintf(name, sizeof name, "%s", full);
        k = pfgm_cfg_find(NULL, name);
    }
    if (!k && !dot && pfgm_cfg_is_section(name))
        return pfgm_cfg_error("--set", 0, name, "is a section; write %s.key=value", name);
    if (!k) {
        pfgm_cfg_suggest(dot ? sec : NULL, name, hint, sizeof hint);
        return pfgm_cfg_error("--set", 0, full[0] ? full : "''", "unknown key%s", hint);
    }
    const char *value = eq + 1;
    reader r;
    PFGM_TRY(rd_open(&r, value, strlen(value), "--set", k->full));
    pfgm_status st = PFGM_OK;
    PFGM_TRY_GOTO(rd_next(&r), done); /* stream start */
    PFGM_TRY_GOTO(rd_next(&r), done);
    if (r.ev.type == YAML_STREAM_END_EVENT) {
        st = pfgm_cfg_error("--set", 0, k->full, "no value (expected %s)", pfgm_cfg_type_phrase(k));
        goto done;
    }
    PFGM_TRY_GOTO(rd_next(&r), done); /* past document start */
    PFGM_TRY_GOTO(read_key(&r, k, cfg, origins, 0), done);
    PFGM_TRY_GOTO(rd_next(&r), done); /* document end */
    PFGM_TRY_GOTO(rd_next(&r), done);
    if (r.ev.type != YAML_STREAM_END_EVENT)
        st = pfgm_cfg_error("--set", 0, k->full, "the value is more than one YAML document");
done:
    rd_close(&r);
    return st;
}

/* ---- public loading API ---------------------------------------------------------------- */

static pfgm_status read_file(const char *path, char **text, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return pfgm_error(PFGM_ERR_IO, "%s: cannot open config: %s", path, strerror(errno));
    char *buf = malloc(CONFIG_FILE_MAX + 1);
    if (!buf) {
        fclose(f);
        return pfgm_error(PFGM_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t n = fread(buf, 1, CONFIG_FILE_MAX + 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return pfgm_error(PFGM_ERR_IO, "%s: read error", path);
    }
    if (n > CONFIG_FILE_MAX) {
        free(buf);
        return pfgm_error(PFGM_ERR_CONFIG, "%s: larger than %u bytes; not a pfgm config", path,
                          CONFIG_FILE_MAX);
    }
    buf[n] = '\0';
    *text = buf;
    *len = n;
    return PFGM_OK;
}

pfgm_status pfgm_config_resolve(const char *path, const char *const *sets, size_t n_sets,
                                pfgm_config *cfg) {
    if (!cfg || (n_sets && !sets))
        return pfgm_error(PFGM_ERR_INVALID_ARG, "pfgm_config_resolve: NULL argument");
    pfgm_config tmp;
    pfgm_cfg_origin origins[PFGM_CFG_MAX_KEYS];
    memset(origins, 0, sizeof origins);
    pfgm_config_defaults(&tmp);
    if (path) {
        char *text = NULL;
        size_t len = 0;
        PFGM_TRY(read_file(path, &text, &len));
        pfgm_status st = pfgm_cfg_read_yaml(text, len, path, &tmp, origins, false);
        free(text);
        PFGM_TRY(st);
    }
    for (size_t i = 0; i < n_sets; i++) PFGM_TRY(pfgm_cfg_set_at(&tmp, sets[i], origins));
    PFGM_TRY(pfgm_cfg_validate_at(&tmp, origins));
    *cfg = tmp;
    return PFGM_OK;
}

pfgm_status pfgm_config_load(const char *path, pfgm_config *cfg) {
    if (!path) return pfgm_error(PFGM_ERR_INVALID_ARG, "pfgm_config_load: path is NULL");
    return pfgm_config_resolve(path, NULL, 0, cfg);
}

pfgm_status pfgm_config_load_string(const char *text, const char *origin_name, pfgm_config *cfg) {
    if (!text || !cfg) return pfgm_error(PFGM_ERR_INVALID_ARG, "pfgm_config_load_string: NULL argument");
    const char *origin = origin_name ? origin_name : "(config text)";
    pfgm_config tmp;
    pfgm_cfg_origin origins[PFGM_CFG_MAX_KEYS];
    memset(origins, 0, sizeof origins);
    pfgm_config_defaults(&tmp);
    /* a checkpoint of an earlier pfgm holds the keys not implemented yet: dropped here */
    PFGM_TRY(pfgm_cfg_read_yaml(text, strlen(text), origin, &tmp, origins, true));
    PFGM_TRY(pfgm_cfg_validate_at(&tmp, origins));
    *cfg = tmp;
    return PFGM_OK;
}

pfgm_status pfgm_config_set(pfgm_config *cfg, const char *assignment) {
    if (!cfg || !assignment) return pfgm_error(PFGM_ERR_INVALID_ARG, "pfgm_config_set: NULL argument");
    pfgm_config tmp = *cfg;
    PFGM_TRY(pfgm_cfg_set_at(&tmp, assignment, NULL));
    *cfg = tmp;
    return PFGM_OK;
}

/* ---- emitter --------------------------------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf;

static int sbuf_put(void *data, unsigned char *bytes, size_t size) {
    sbuf *b = data;
    if (b->len + size + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + size + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return 0;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, bytes, size);
    b->len += size;
    b->p[b->len] = '\0';
    return 1;
}

static int emit_scalar(yaml_emitter_t *em, const char *text, bool quoted) {
    yaml_event_t ev;
    if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)text, (int)strlen(text), 1, 1,
                                      quoted ? YAML_DOUBLE_QUOTED_SCALAR_STYLE : YAML_PLAIN_SCALAR_STYLE))
        return 0;
    return yaml_emitter_emit(em, &ev); /* the emitter owns and frees the event */
}

static int emit_simple(yaml_emitter_t *em, yaml_event_type_t type) {
    yaml_event_t ev;
    int ok = 0;
    switch (type) {
    case YAML_STREAM_START_EVENT: ok = yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING); break;
    case YAML_STREAM_END_EVENT: ok = yaml_stream_end_event_initialize(&ev); break;
    case YAML_DOCUMENT_START_EVENT: ok = yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1); break;
    case YAML_DOCUMENT_END_EVENT: ok = yaml_document_end_event_initialize(&ev, 1); break;
    case YAML_MAPPING_START_EVENT:
        ok = yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE);
        break;
    case YAML_MAPPING_END_EVENT: ok = yaml_mapping_end_event_initialize(&ev); break;
    case YAML_SEQUENCE_START_EVENT:
        ok = yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_FLOW_SEQUENCE_STYLE);
        break;
    case YAML_SEQUENCE_END_EVENT: ok = yaml_sequence_end_event_initialize(&ev); break;
    default: return 0;
    }
    return ok ? yaml_emitter_emit(em, &ev) : 0;
}

static int emit_key_value(yaml_emitter_t *em, const pfgm_config *cfg, const pfgm_cfg_key *k) {
    char buf[PFGM_CONFIG_PATH_MAX + 8];
    if (!emit_scalar(em, k->name, false)) return 0;
    if (k->type != PFGM_CFG_INT_LIST) {
        pfgm_cfg_format(cfg, k, buf, sizeof buf);
        return emit_scalar(em, buf, pfgm_cfg_is_free_string(k));
    }
    const pfgm_int_list *l = (const pfgm_int_list *)(const void *)((const char *)cfg + k->offset);
    if (!emit_simple(em, YAML_SEQUENCE_START_EVENT)) return 0;
    for (size_t i = 0; i < l->n; i++) {
        snprintf(buf, sizeof buf, "%lld", (long long)l->v[i]);
        if (!emit_scalar(em, buf, false)) return 0;
    }
    return emit_simple(em, YAML_SEQUENCE_END_EVENT);
}

static int emit_config(yaml_emitter_t *em, const pfgm_config *cfg) {
    size_t n;
    const pfgm_cfg_key *keys = pfgm_cfg_keys(&n);
    const char *const *sections = pfgm_cfg_sections();
    if (!emit_simple(em, YAML_STREAM_START_EVENT) || !emit_simple(em, YAML_DOCUMENT_START_EVENT) ||
        !emit_simple(em, YAML_MAPPING_START_EVENT))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!keys[i].section && !emit_key_value(em, cfg, &keys[i])) return 0;
    for (size_t s = 0; sections[s]; s++) {
        size_t in_section = 0; /* none in a section of keys not implemented yet (eval) */
        for (size_t i = 0; i < n; i++)
            in_section += keys[i].section && !strcmp(keys[i].section, sections[s]);
        if (!in_section) continue;
        if (!emit_scalar(em, sections[s], false) || !emit_simple(em, YAML_MAPPING_START_EVENT)) return 0;
        for (size_t i = 0; i < n; i++)
            if (keys[i].section && !strcmp(keys[i].section, sections[s]) &&
                !emit_key_value(em, cfg, &keys[i]))
                return 0;
        if (!emit_simple(em, YAML_MAPPING_END_EVENT)) return 0;
    }
    return emit_simple(em, YAML_MAPPING_END_EVENT) && emit_simple(em, YAML_DOCUMENT_END_EVENT) &&
           emit_simple(em, YAML_STREAM_END_EVENT) && yaml_emitter_flush(em);
}

pfgm_status pfgm_config_to_yaml_string(const pfgm_config *cfg, char **text, size_t *len) {
    if (!cfg || !text) return pfgm_error(PFGM_ERR_INVALID_ARG, "pfgm_config_to_yaml_string: NULL argument");
    static const char header[] = "# pfgm configuration (every key: docs/config-reference.md)\n";
    sbuf b = {0};
    if (!sbuf_put(&b, (unsigned char *)header, sizeof header - 1))
        return pfgm_error(PFGM_ERR_NOMEM, "config: out of memory emitting YAML");
    yaml_emitter_t em;
    if (!yaml_emitter_initialize(&em)) {
        free(b.p);
        return pfgm_error(PFGM_ERR_NOMEM, "config: cannot initialise the YAML emitter");
    }
    yaml_emitter_set_output(&em, sbuf_put, &b);
    yaml_emitter_set_unicode(&em, 1);
    yaml_emitter_set_width(&em, -1); /* never fold long paths */
    int ok = emit_config(&em, cfg);
    pfgm_status st = PFGM_OK;
    if (!ok)
        st = pfgm_error(em.error == YAML_MEMORY_ERROR || em.error == YAML_WRITER_ERROR ? PFGM_ERR_NOMEM
                                                                                     : PFGM_ERR_YAML,
                        "config: YAML emitter failed: %s", em.problem ? em.problem : "out of memory");
    yaml_emitter_delete(&em);
    if (st != PFGM_OK) {
        free(b.p);
        return st;
    }
    *text = b.p;
    if (len) *len = b.len;
    return PFGM_OK;
}

pfgm_status pfgm_config_write_yaml(const pfgm_config *cfg, const char *path) {
    if (!cfg || !path) return pfgm_error(PFGM_ERR_INVALID_ARG, "pfgm_config_write_yaml: NULL argument");
    char *text;
    size_t len;
    PFGM_TRY(pfgm_config_to_yaml_string(cfg, &text, &len));
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    if (!tmp) {
        free(text);
        return pfgm_error(PFGM_ERR_NOMEM, "%s: out of memory", path);
    }
    snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
    pfgm_status st = PFGM_OK;
    int fd = mkstemp(tmp);
    if (fd < 0) {
        st = pfgm_error(PFGM_ERR_IO, "%s: cannot create a temporary file: %s", path, strerror(errno));
        goto out;
    }
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, text + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        done += (size_t)w;
    }
    if (done < len || fchmod(fd, 0644) != 0) {
        st = pfgm_error(PFGM_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        close(fd);
        unlink(tmp);
        goto out;
    }
    if (close(fd) != 0) {
        st = pfgm_error(PFGM_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
        unlink(tmp);
        goto out;
    }
    st = pfgm_atomic_publish(tmp, path); /* fsync, rename, directory fsync */
out:
    free(tmp);
    free(text);
    return st;
}
