/* compare/report.css and compare/report.js compiled into the library. */

#include "common/cutover_embed.h"

CUTOVER_EMBED_FILE(compare_html_css, "compare/report.css");
CUTOVER_EMBED_FILE(compare_html_js, "compare/report.js");
