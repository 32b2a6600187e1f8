/* The declaration of every config key (config_keys.c) and the types that declare them, shared by
 * config.c, which loads, validates and dumps the config by walking these tables. */
#ifndef JB_CORE_CONFIG_KEYS_H
#define JB_CORE_CONFIG_KEYS_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
  K_STRING,  /* char *, "null" default allowed */
  K_NSTRING, /* char *, null allowed whatever the default (null turns a feature off) */
  K_INT,     /* int */
  K_NUMBER,  /* double; a "null" default allows null, stored as NAN (unset) */
  K_BOOL,    /* bool */
  K_STRINGS, /* char ** NULL-terminated, with a size_t length at len_off */
  K_STRLIST, /* as K_STRINGS, but one string or a non-empty array of non-empty strings */
  K_OBJECT,  /* json_t * (a JSON object), "null" default allowed */
  K_ARRAY,   /* an array of tables: elements of `sub` (elem_size bytes each), len at len_off */
  K_MAP,     /* a map of tables: a JSON object whose members are tables of `sub`, each element
                named by its key (char * at name_off in the element), len at len_off */
} key_type;

struct table;

typedef struct key_decl {
  const char *path;
  key_type type;
  size_t off;
  size_t len_off;  /* K_STRINGS, K_ARRAY, K_MAP */
  const char *def; /* JSON text of the default; NULL: required */
  double min, max; /* K_INT / K_NUMBER bounds */
  bool reloadable;
  const char *doc;
  const struct table *sub; /* K_ARRAY, K_MAP: the declaration table of one element */
  size_t elem_size;        /* K_ARRAY, K_MAP */
  size_t name_off;         /* K_MAP: where the element's name (its key, owned) is held */
} key_decl;

/* A declaration table: the keys of the root or of one element of an array or map of tables. */
typedef struct table {
  const key_decl *keys;
  size_t n;
  const char *shown; /* how the table's root is named in docs: "", "mappings[].", "job_types.*." */
  const char *noun;  /* what one element is called in messages: "mapping", "job type" */
} table;

#define NKEYS(t) (sizeof(t) / sizeof((t)[0]))

/* The root table: every top-level key, with the tables of mappings[] and job_types.* beneath. */
extern const table jb_config_root;

#endif
