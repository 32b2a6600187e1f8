/* The jb-shepherd program's bytes, built into jobbridge (private to src/handlers). */
#ifndef JOBBRIDGE_HANDLERS_SHEPHERD_IMAGE_H
#define JOBBRIDGE_HANDLERS_SHEPHERD_IMAGE_H

extern const char jb_shepherd_image[];
extern const char jb_shepherd_image_end[];

#endif
