/*
 * cutover_admin_call: one signed call to the admin API (see the header).
 */

#include <stdint.h>
#include <time.h>

#include <curl/curl.h>

#include "common/cutover_admin_call.h"
#include "common/cutover_sign.h"


long
cutover_admin_call(const cutover_admin_client_t *cl, const char *method,
    const char *url, const char *body, cutover_admin_write_pt write,
    void *data, cutover_error_t *err)
{
    long                status = -1;
    char                auth[512];
    CURL               *curl;
    CURLcode            rc;
    struct curl_slist  *hdrs = NULL;

    if (cutover_auth_header(cl->key_id, cl->secret, cl->secret_len, method,
                            url, body, (int64_t) time(NULL), auth,
                            sizeof(auth), err) != CUTOVER_OK)
    {
        return -1;
    }

    curl = curl_easy_init();
    if (curl == NULL) {
        cutover_error_set(err, "no_memory", "cannot set up libcurl");
        return -1;
    }

    hdrs = curl_slist_append(hdrs, auth);
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    hdrs = curl_slist_append(hdrs, "Expect:");

    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, write);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, data);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, cl->timeout_ms);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, cl->timeout_ms / 2);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);

    if (body) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    }

    rc = curl_easy_perform(curl);

    if (rc != CURLE_OK) {
        cutover_error_set(err, "unreachable", "%s", curl_easy_strerror(rc));

    } else {
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    }

    curl_slist_free_all(hdrs);
    curl_easy_cleanup(curl);

    return status;
}
