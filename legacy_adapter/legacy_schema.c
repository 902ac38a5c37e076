/* schema.sql compiled into the library as legacy_sim_schema. */

#include "common/cutover_embed.h"

CUTOVER_EMBED_FILE(legacy_sim_schema, "legacy_adapter/schema.sql");
