/* schema.sql compiled into the library as newcore_schema_sql. */

#include "common/cutover_embed.h"

CUTOVER_EMBED_FILE(newcore_schema_sql, "new_core/schema.sql");
