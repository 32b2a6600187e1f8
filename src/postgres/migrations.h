/* The list of schema migrations (src/postgres/migrations.c). */
#ifndef JB_PG_MIGRATIONS_H
#define JB_PG_MIGRATIONS_H

typedef struct jb_migration {
  int version;
  const char *name;
  const char *sql;
} jb_migration;

extern const jb_migration jb_migrations[];
extern const int jb_migrations_len;

#endif
