/* The dashboard's embedded files (ui_assets.c, generated at build time from ui/ by
 * cmake/embed_ui.cmake): name (no directory) and bytes. */
#ifndef JB_HTTP_UI_ASSETS_H
#define JB_HTTP_UI_ASSETS_H

#include <stddef.h>

typedef struct jb_ui_asset {
  const char *name;
  const char *data;
  const unsigned long *len;
} jb_ui_asset;

extern const jb_ui_asset jb_ui_assets[];
extern const size_t jb_ui_nassets;

#endif
