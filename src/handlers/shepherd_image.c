/* The jb-shepherd program's bytes (built by CMake from shepherd_exe.c and shepherd.c, static,
 * path in JB_SHEPHERD_BIN), between jb_shepherd_image and jb_shepherd_image_end. */
#include "handlers/shepherd_image.h"

#ifndef JB_SHEPHERD_BIN
#error "JB_SHEPHERD_BIN: the path of the built jb-shepherd program"
#endif

__asm__(
    ".section .rodata\n"
    ".balign 16\n"
    ".globl jb_shepherd_image\n"
    ".hidden jb_shepherd_image\n"
    "jb_shepherd_image:\n"
    ".incbin \"" JB_SHEPHERD_BIN
    "\"\n"
    ".globl jb_shepherd_image_end\n"
    ".hidden jb_shepherd_image_end\n"
    "jb_shepherd_image_end:\n"
    ".previous\n");
