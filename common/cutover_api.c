/*
 * cutover_api: the canonical API's input rules (see cutover_api.h).
 */

#include "common/cutover_api.h"


int
cutover_api_id_valid(const char *s, size_t len)
{
    size_t  i;

    if (s == NULL || len == 0 || len > CUTOVER_API_ID_MAX) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')
              || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-'
              || s[i] == '.'))
        {
            return 0;
        }
    }

    return 1;
}


int
cutover_api_idem_key_valid(const char *s)
{
    size_t  i;

    if (s == NULL) {
        return 0;
    }

    for (i = 0; s[i]; i++) {
        if (s[i] < 0x21 || s[i] > 0x7e || i == CUTOVER_API_IDEM_KEY_MAX) {
            return 0;
        }
    }

    return i > 0;
}
