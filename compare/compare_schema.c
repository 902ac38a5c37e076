/*
 * compare_schema: the text of compare/schema.sql, linked into the library
 * so a program creates its schema from the one versioned file.
 */

__asm__(
    "    .section .rodata\n"
    "    .global compare_schema_sql\n"
    "    .type compare_schema_sql, @object\n"
    "compare_schema_sql:\n"
    "    .incbin \"compare/schema.sql\"\n"
    "    .byte 0\n"
    "    .size compare_schema_sql, . - compare_schema_sql\n"
    "    .previous\n"
);
