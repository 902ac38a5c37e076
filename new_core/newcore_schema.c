/* schema.sql compiled into the library as newcore_schema_sql. */

#include "new_core/newcore_db.h"

__asm__(
    "    .section .rodata\n"
    "    .global newcore_schema_sql\n"
    "    .type newcore_schema_sql, @object\n"
    "newcore_schema_sql:\n"
    "    .incbin \"new_core/schema.sql\"\n"
    "    .byte 0\n"
    "    .size newcore_schema_sql, . - newcore_schema_sql\n"
    "    .previous\n");
