/* Private to src/io/config*.c: the key table that drives loading, --set, validation,
 * emission and comparison of pfgm_config, and the libyaml-independent value form that the
 * YAML reader hands to the typed conversion. */
#ifndef PFGM_IO_CONFIG_INTERNAL_H
#define PFGM_IO_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pfgm/config.h"

typedef enum {
    PFGM_CFG_INT,      /* int64_t */
    PFGM_CFG_FLOAT,    /* double */
    PFGM_CFG_BOOL,     /* bool */
    PFGM_CFG_STR,      /* char[size]; free text, or one of `names` when names != NULL */
    PFGM_CFG_ENUM,     /* C enum stored as int; value = index into `names` */
    PFGM_CFG_INT_LIST, /* pfgm_int_list */
    PFGM_CFG_LATER     /* an authors' key of a feature pfgm does not implement yet: no field,
                          any value is refused (config-reference.md "Keys pfgm does not
                          implement"); `later` names the feature */
} pfgm_cfg_type;

/* Range flags of float keys. */
enum { PFGM_CFG_MIN_OPEN = 1u << 0, PFGM_CFG_MAX_OPEN = 1u << 1 };

/* Which values of a boolean key pfgm implements (the authors' code accepts both). */
enum { PFGM_CFG_BOOL_BOTH = 0, PFGM_CFG_BOOL_ONLY_FALSE, PFGM_CFG_BOOL_ONLY_TRUE };

typedef struct pfgm_cfg_key {
    const char *section;     /* "training"; NULL for a top-level key (seed) */
    const char *name;        /* "batch_size" */
    const char *full;        /* "training.batch_size" (or "seed") */
    pfgm_cfg_type type;
    size_t offset;           /* offsetof(pfgm_config, ...) */
    size_t size;             /* sizeof the field */
    int64_t imin, imax;      /* INT and INT_LIST entries: inclusive range */
    bool int_support_only;   /* INT: a value outside [imin, imax] is "not supported" */
    double fmin, fmax;       /* FLOAT range (±INFINITY for none) */
    unsigned fflags;         /* PFGM_CFG_MIN_OPEN / MAX_OPEN */
    const char *const *names; /* ENUM names, or allowed STR values; NULL-terminated */
    size_t n_supported;      /* the first n_supported names are implemented, the rest are
                                the authors' values that pfgm rejects as unsupported */
    int bool_support;        /* PFGM_CFG_BOOL_* */
    size_t list_min;         /* INT_LIST: fewest entries */
    const char *later;       /* LATER: the feature that will read the key ("evaluation") */
    const char *inert;       /* non-NULL: a value other than the default would change nothing
                                in pfgm's network; the reason, for the message that refuses it */
} pfgm_cfg_key;

/* Where a key's current value came from, for messages: origin (file name, "--set") and
 * 1-based line (0: none). origin NULL means the default. */
typedef struct pfgm_cfg_origin {
    const char *origin;
    int line;
    unsigned seq; /* order of assignment (later wins when two keys conflict) */
} pfgm_cfg_origin;

#define PFGM_CFG_MAX_KEYS 96

/* A value as written, before typing: one scalar or a flat list of scalars. Scalars own
 * malloc'ed text; release with pfgm_cfg_value_free. */
typedef struct pfgm_cfg_scalar {
    char *text;
    size_t len;
    bool quoted; /* single/double-quoted, block scalar, or tagged !!str */
    bool null;   /* plain empty, ~, null */
    int line;    /* 1-based */
} pfgm_cfg_scalar;

typedef struct pfgm_cfg_value {
    bool is_list;
    pfgm_cfg_scalar scalar;                        /* when !is_list */
    pfgm_cfg_scalar items[PFGM_CONFIG_LIST_MAX];   /* when is_list */
    size_t n_items;
    int line;
} pfgm_cfg_value;

void pfgm_cfg_value_free(pfgm_cfg_value *v);

/* The key table, in emission order (sections grouped, table order within a section): the
 * *n keys with a field in pfgm_config. The LATER keys are apart: pfgm_cfg_find finds them,
 * their pfgm_cfg_index is *n and up (below PFGM_CFG_MAX_KEYS), nothing iterates them. */
const pfgm_cfg_key *pfgm_cfg_keys(size_t *n);
/* Section names in emission order, NULL-terminated. */
const char *const *pfgm_cfg_sections(void);
/* Key lookup; section NULL for top-level keys. Returns NULL when unknown. */
const pfgm_cfg_key *pfgm_cfg_find(const char *section, const char *name);
bool pfgm_cfg_is_section(const char *name);
size_t pfgm_cfg_index(const pfgm_cfg_key *k);
/* " (did you mean X?)" for an unknown key written as `section.name` (section NULL at top
 * level): the nearest keys of the table (never a LATER key) by edit distance (up to three
 * named when equally near, the typed section preferred on a tie), or "" when nothing is
 * close. */
void pfgm_cfg_suggest(const char *section, const char *name, char *buf, size_t n);
/* "an integer", "a list of integers", ... for type errors. */
const char *pfgm_cfg_type_phrase(const pfgm_cfg_key *k);

/* Records "origin:line: key: <fmt>" (or "origin: key: <fmt>" for line 0) and returns
 * PFGM_ERR_CONFIG. */
pfgm_status pfgm_cfg_error(const char *origin, int line, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Converts v to k's type and stores it in *cfg after the key's own type, range and support
 * checks. Errors name origin, v's line and k. */
pfgm_status pfgm_cfg_apply(pfgm_config *cfg, const pfgm_cfg_key *k, const pfgm_cfg_value *v,
                           const char *origin);

/* Cross-field validation; origins (indexed like the key table, may be NULL) locate errors. */
pfgm_status pfgm_cfg_validate_at(const pfgm_config *cfg, const pfgm_cfg_origin *origins);

/* The YAML text of one scalar key's value (not INT_LIST), and whether it is a free string
 * that the emitter should quote. */
void pfgm_cfg_format(const pfgm_config *cfg, const pfgm_cfg_key *k, char *buf, size_t n);
bool pfgm_cfg_is_free_string(const pfgm_cfg_key *k);

/* libyaml reading (config_yaml.c): parse `text` (len bytes) and apply it to *cfg, recording
 * origins. origin names the source in messages. skip_later: a LATER key's value is read and
 * dropped instead of refused (the config embedded in a checkpoint of an earlier pfgm, which
 * wrote every key of its table). */
pfgm_status pfgm_cfg_read_yaml(const char *text, size_t len, const char *origin, pfgm_config *cfg,
                               pfgm_cfg_origin *origins, bool skip_later);
/* One `section.key=value` applied to *cfg (origins may be NULL). */
pfgm_status pfgm_cfg_set_at(pfgm_config *cfg, const char *assignment, pfgm_cfg_origin *origins);

#endif /* PFGM_IO_CONFIG_INTERNAL_H */
