/* Configuration: one schema table per daemon (type, default, bounds,
 * reloadable, description) over libconfig files, JETSCHED_* environment
 * overrides, precise `file:line: key: reason` errors, and printing of the
 * effective configuration for --check-config.
 *
 * A schema is a NULL-terminated list of key tables, each table terminated by
 * an entry whose path is NULL, so daemons compose shared tables (nats,
 * postgres, log, jetstream) with their own. */
#ifndef JETSCHED_CONFIG_H
#define JETSCHED_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <jetsched/status.h>

typedef enum jet_cfg_type {
    JET_CFG_BOOL,
    JET_CFG_INT,        /* 64-bit integer */
    JET_CFG_DURATION,   /* string like "30s", stored as ms */
    JET_CFG_SIZE,       /* integer bytes or string "64MB"/"1GiB", stored as bytes */
    JET_CFG_STRING,
    JET_CFG_ENUM,       /* string, one of `choices` ("a|b|c") */
    JET_CFG_STRLIST,    /* array of strings: [ "a", "b" ] */
    JET_CFG_GROUPLIST,  /* list of groups: ( { ... }, { ... } ), each checked against `sub` */
} jet_cfg_type;

enum {
    JET_CFG_RELOADABLE = 1u << 0, /* takes effect on SIGHUP */
    JET_CFG_SECRET     = 1u << 1, /* never printed or logged */
    JET_CFG_REQUIRED   = 1u << 2, /* must be set (file or env) */
    JET_CFG_CREDENTIALS = 1u << 3, /* a URL/DSN that may embed a password: printed through jet_redact */
    JET_CFG_DEPRECATED = 1u << 4, /* kept so old files load; setting it gets a warning (jet_config_deprecated_set) */
};

typedef struct jet_cfg_key {
    const char *path;          /* dotted: "nats.url"; NULL ends a table */
    jet_cfg_type type;
    const char *def;           /* default in file syntax ("30s", "4", "true", "a,b"); NULL: unset */
    int64_t min, max;          /* bounds for INT/DURATION(ms)/SIZE(bytes); checked when min <= max */
    const char *choices;       /* ENUM: "text|json"; STRLIST: optional pattern name, see config.c */
    unsigned flags;
    const char *env;           /* extra environment name, e.g. "JETSCHED_PG_DSN" */
    const struct jet_cfg_key *sub; /* GROUPLIST: the element schema (one table) */
    const char *desc;
} jet_cfg_key;

typedef const jet_cfg_key *const jet_cfg_schema[];

typedef struct jet_config jet_config;

/* Loads `file` (NULL: defaults and environment only) against `schema`.
 * On error returns JET_ERR_INVALID (or JET_ERR_IO) with every problem found,
 * one per line, as "file:line: key: reason" (or "env NAME: key: reason"). */
jet_status jet_config_load(const jet_cfg_key *const *schema, const char *file,
                           jet_config **out, jet_err *err);
void jet_config_free(jet_config *cfg);

/* Accessors. An unknown path is a programming error and aborts. */
bool        jet_cfg_bool(const jet_config *cfg, const char *path);
int64_t     jet_cfg_int(const jet_config *cfg, const char *path);   /* INT, DURATION (ms), SIZE (bytes) */
const char *jet_cfg_str(const jet_config *cfg, const char *path);   /* STRING/ENUM; NULL when unset */
size_t      jet_cfg_list_len(const jet_config *cfg, const char *path);
const char *jet_cfg_list_at(const jet_config *cfg, const char *path, size_t i);
size_t      jet_cfg_groups(const jet_config *cfg, const char *path);
const jet_config *jet_cfg_group_at(const jet_config *cfg, const char *path, size_t i);
bool        jet_cfg_is_set(const jet_config *cfg, const char *path); /* set by file or env */
const char *jet_config_file(const jet_config *cfg);                  /* NULL when none */

/* Prints the effective configuration in libconfig syntax, each key with a
 * comment saying where its value came from; secrets are shown as "<redacted>". */
void jet_config_print(const jet_config *cfg, FILE *out);

/* Prints the schema as annotated documentation (used to check conf/ files). */
void jet_config_print_schema(const jet_cfg_key *const *schema, FILE *out);

/* After a reload: reports (as warnings in *err, one per line) the
 * non-reloadable keys whose value changed; returns the number of them. */
int jet_config_nonreloadable_changes(const jet_config *old_cfg, const jet_config *new_cfg, jet_err *err);

/* Reports (in *err, one per line, "file:line: key: deprecated (description)"
 * or "env NAME: ...") the JET_CFG_DEPRECATED keys set by the file or the
 * environment; returns the number of them. jet_daemon_start logs each as a
 * warning at start and prints them for --check-config. */
int jet_config_deprecated_set(const jet_config *cfg, jet_err *err);

/* ---- typed settings (like Fluent Bit's config map) ----
 * A daemon binds its configuration to a settings struct once, at load and
 * on SIGHUP, instead of looking keys up by path where it uses them. Each
 * field names a schema key, the C type it is stored as and its offset;
 * defaults stay in the schema (the one place they are stated). */
typedef enum jet_cfg_ctype {
    JET_CT_BOOL,   /* bool            <- BOOL */
    JET_CT_I64,    /* int64_t         <- INT, DURATION (ms), SIZE (bytes) */
    JET_CT_INT,    /* int             <- INT (checked to fit) */
    JET_CT_STR,    /* const char *    <- STRING, ENUM (NULL when unset); points into the jet_config */
    JET_CT_CHOICE, /* int             <- ENUM: index of the value in the key's choices ("a|b": 0, 1) */
} jet_cfg_ctype;

typedef struct jet_cfg_field {
    const char *path;          /* NULL ends a map */
    jet_cfg_ctype ctype;
    size_t offset;
} jet_cfg_field;

#define JET_CFG_FIELD(path, ctype, type, member) {path, ctype, offsetof(type, member)}

/* Stores every field of `map` from cfg into the struct at `out`. A path
 * missing from the schema or a type mismatch is a programming error and
 * aborts (as the accessors do). Strings stay valid while cfg lives. */
void jet_cfg_bind(const jet_config *cfg, const jet_cfg_field *map, void *out);
/* The list of groups at `path` bound into a new array of *n structs of
 * elem_size bytes each (caller frees). With `default_one`, an empty list
 * gives one element holding the group schema's defaults. */
void *jet_cfg_bind_groups(const jet_config *cfg, const char *path, const jet_cfg_field *map, size_t elem_size,
                          bool default_one, size_t *n);

/* Reads a secret from a file: trims one trailing newline. NULL on error (err set). */
char *jet_read_secret_file(const char *path, jet_err *err);

/* Shared schema tables. */
extern const jet_cfg_key jet_cfg_keys_log[];
extern const jet_cfg_key jet_cfg_keys_nats[];
extern const jet_cfg_key jet_cfg_keys_jetstream[];
extern const jet_cfg_key jet_cfg_keys_postgres[];

#endif
