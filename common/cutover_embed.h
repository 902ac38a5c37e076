/*
 * cutover_embed: a project file linked into a library as a NUL-terminated
 * string (schemas are applied from the one versioned .sql file).  The path
 * is relative to the repository root, where every build runs.
 */

#ifndef CUTOVER_EMBED_H
#define CUTOVER_EMBED_H

#define CUTOVER_EMBED_FILE(symbol, path)                                     \
    __asm__(                                                                 \
        "    .section .rodata\n"                                             \
        "    .global " #symbol "\n"                                          \
        "    .type " #symbol ", @object\n"                                   \
        #symbol ":\n"                                                        \
        "    .incbin \"" path "\"\n"                                         \
        "    .byte 0\n"                                                      \
        "    .size " #symbol ", . - " #symbol "\n"                           \
        "    .previous\n")

#endif /* CUTOVER_EMBED_H */
