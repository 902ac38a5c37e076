/*
 * shadow_dlcmd: "cutover-shadowd dead-letter list|replay|discard": what an
 * operator does with the records cutover-shadowd parked.
 *
 * list prints JSON lines (one per key, or one per record with --key);
 * replay hands a key's records back to the daemon (<stem>.dl becomes
 * <stem>.replay: the daemon replays them in order, before anything newer of
 * the key, then deletes the file); discard sets them aside under
 * discarded/.  Every replay and discard is appended to actions.log.
 */

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "common/cutover_json.h"
#include "shadow/shadow_daemon.h"
#include "shadow/shadow_deadletter.h"


typedef struct {
    const char  *state;
    int          detail;        /* one line per record */
    long         n;
    char         key[1024];
    char         first[40];
    char         last[40];
    int64_t      first_us;
    char         reason[64];
} shadow_dlcmd_file_t;


static int shadow_dlcmd_entry(void *ctx, const shadow_dl_entry_t *e);
static int shadow_dlcmd_file(shadow_dl_t *dl, const char *action,
    const char *name, const char *only_key, const char *note);
static void shadow_dlcmd_time(int64_t us, char *buf, size_t cap);
static int shadow_dlcmd_move(shadow_dl_t *dl, const char *action,
    const char *name, shadow_dlcmd_file_t *f, shadow_error_t *err);
static void shadow_dlcmd_usage(FILE *out);


static void
shadow_dlcmd_usage(FILE *out)
{
    fprintf(out,
        "usage: cutover-shadowd dead-letter list|replay|discard [--key K]\n"
        "                      [--reason TEXT] --config FILE\n"
        "\n"
        "list     parked keys as JSON lines (with --key: each record)\n"
        "replay   hand the records back to cutover-shadowd, which replays\n"
        "         them in order before anything newer of the key\n"
        "discard  set them aside under discarded/ (the key goes on)\n"
        "Without --key, every parked key.  Actions are logged in\n"
        "<dead_letter>/actions.log.  Exit 0 done, 1 a key could not be\n"
        "acted on, 2 usage or configuration error.\n");
}


static void
shadow_dlcmd_time(int64_t us, char *buf, size_t cap)
{
    time_t     t = (time_t) (us / 1000000);
    struct tm  tm;

    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}


static int
shadow_dlcmd_entry(void *ctx, const shadow_dl_entry_t *e)
{
    char                  at[32];
    cutover_record_t      rec;
    shadow_error_t        err;
    shadow_dlcmd_file_t  *f = ctx;

    memset(&rec, 0, sizeof(rec));
    if (shadow_record_decode(e->payload, e->len, &rec, &err) != SHADOW_OK) {
        rec.id.data = "?";
        rec.id.len = 1;
    }

    if (f->n == 0) {
        snprintf(f->key, sizeof(f->key), "%.*s", (int) e->key_len, e->key);
        snprintf(f->first, sizeof(f->first), "%s", rec.id.data);
        snprintf(f->reason, sizeof(f->reason), "%s",
                 e->reason ? e->reason : "");
        f->first_us = e->parked_us;
    }

    snprintf(f->last, sizeof(f->last), "%s", rec.id.data);
    f->n++;

    if (f->detail) {
        shadow_dlcmd_time(e->parked_us, at, sizeof(at));
        printf("{\"key\": ");
        cutover_json_fprint(stdout, f->key);
        printf(", \"state\": \"%s\", \"id\": \"%s\", \"method\": ",
               f->state, rec.id.data);
        cutover_json_fprint(stdout, rec.method.data ? rec.method.data : "");
        printf(", \"uri\": ");
        cutover_json_fprint(stdout, rec.uri.data ? rec.uri.data : "");
        printf(", \"side\": \"%s\", \"status\": %d, \"parked_at\": \"%s\", "
               "\"reason\": ", rec.side.data ? rec.side.data : "",
               (int) rec.status, at);
        cutover_json_fprint(stdout, e->reason ? e->reason : "");
        printf(", \"attempts\": %d}\n", e->attempts);
    }

    shadow_record_clear(&rec);
    return 0;
}


/* <stem>.dl -> <stem>.replay, or -> discarded/<stem>.<us>.dl */
static int
shadow_dlcmd_move(shadow_dl_t *dl, const char *action, const char *name,
    shadow_dlcmd_file_t *f, shadow_error_t *err)
{
    char            from[4096], to[4096];
    size_t          stem = strlen(name) - 3;
    struct timeval  tv;

    snprintf(from, sizeof(from), "%s/%s", shadow_dl_dir(dl), name);

    if (strcmp(action, "replay") == 0) {
        snprintf(to, sizeof(to), "%s/%.*s.replay", shadow_dl_dir(dl),
                 (int) stem, name);
        if (shadow_dl_exists(to)) {
            return shadow_error_set(err, SHADOW_ERROR, "key \"%s\" is still "
                                    "being replayed (%s): try again once it "
                                    "is gone", f->key, to);
        }

    } else {
        snprintf(to, sizeof(to), "%s/discarded", shadow_dl_dir(dl));
        if (mkdir(to, 0755) == -1 && errno != EEXIST) {
            return shadow_error_set(err, SHADOW_ERROR, "\"%s\": %s", to,
                                    strerror(errno));
        }

        gettimeofday(&tv, NULL);
        snprintf(to, sizeof(to), "%s/discarded/%.*s.%lld%06ld.dl",
                 shadow_dl_dir(dl), (int) stem, name,
                 (long long) tv.tv_sec, (long) tv.tv_usec);
    }

    if (rename(from, to) == -1) {
        return shadow_error_set(err, SHADOW_ERROR, "cannot move \"%s\": %s",
                                from, strerror(errno));
    }

    return SHADOW_OK;
}


/* One file of the store: 0 listed or acted on, -1 not one to act on (not
 * the key's, not parked), 1 failed. */
static int
shadow_dlcmd_file(shadow_dl_t *dl, const char *action, const char *name,
    const char *only_key, const char *note)
{
    char                 path[4096], at[32];
    off_t                bad;
    size_t               len = strlen(name);
    shadow_error_t       err;
    shadow_dlcmd_file_t  f;

    memset(&f, 0, sizeof(f));
    if (len > 3 && strcmp(name + len - 3, ".dl") == 0) {
        f.state = "parked";

    } else if (len > 7 && strcmp(name + len - 7, ".replay") == 0) {
        f.state = "replaying";

    } else {
        return -1;
    }

    if (only_key != NULL) {
        char  stem[SHADOW_DL_STEM_MAX + 1];

        shadow_dl_stem(only_key, strlen(only_key), stem);
        if (strncmp(name, stem, strlen(stem)) != 0
            || name[strlen(stem)] != '.')
        {
            return -1;
        }
    }

    f.detail = strcmp(action, "list") == 0 && only_key != NULL;
    snprintf(path, sizeof(path), "%s/%s", shadow_dl_dir(dl), name);

    if (shadow_dl_read(path, shadow_dlcmd_entry, &f, &bad, &err) < 0) {
        fprintf(stderr, "cutover-shadowd: %s\n", err.message);
        return 1;
    }

    if (strcmp(action, "list") == 0) {
        if (!f.detail) {
            shadow_dlcmd_time(f.first_us, at, sizeof(at));
            printf("{\"key\": ");
            cutover_json_fprint(stdout, f.key);
            printf(", \"state\": \"%s\", \"records\": %ld, \"first_id\": "
                   "\"%s\", \"last_id\": \"%s\", \"parked_at\": \"%s\", "
                   "\"reason\": ", f.state, f.n, f.first, f.last, at);
            cutover_json_fprint(stdout, f.reason);
            printf("%s}\n", bad >= 0 ? ", \"torn_tail\": true" : "");
        }

        return 0;
    }

    if (strcmp(f.state, "parked") != 0) {
        return -1;
    }

    if (shadow_dlcmd_move(dl, action, name, &f, &err) != SHADOW_OK) {
        fprintf(stderr, "cutover-shadowd: %s\n", err.message);
        return 1;
    }

    if (shadow_dl_audit(dl, action, f.key, f.n, f.first, f.last, note, &err)
        != SHADOW_OK)
    {
        fprintf(stderr, "cutover-shadowd: %s\n", err.message);
        return 1;
    }

    printf("{\"key\": ");
    cutover_json_fprint(stdout, f.key);
    printf(", \"action\": \"%s\", \"records\": %ld, \"first_id\": \"%s\", "
           "\"last_id\": \"%s\"}\n", action, f.n, f.first, f.last);
    return 0;
}


/*
 * Kept whole (past 80 lines): the options and the sub-commands are one
 * switch with one cleanup path.
 */
int
shadow_dead_letter_main(int argc, char **argv)
{
    int               c, rc = 0, i, n, r, acted = 0;
    const char       *config = NULL, *key = NULL, *note = NULL, *action;
    shadow_dl_t      *dl = NULL;
    shadow_error_t    err;
    shadow_config_t   cfg;
    struct dirent   **names = NULL;
    static struct option  opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "key", required_argument, NULL, 'k' },
        { "reason", required_argument, NULL, 'r' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };

    if (argc < 2) {
        shadow_dlcmd_usage(stderr);
        return 2;
    }

    action = argv[1];
    optind = 2;
    while ((c = getopt_long(argc, argv, "c:k:r:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 'k':
            key = optarg;
            break;
        case 'r':
            note = optarg;
            break;
        case 'h':
            shadow_dlcmd_usage(stdout);
            return 0;
        default:
            shadow_dlcmd_usage(stderr);
            return 2;
        }
    }

    if (config == NULL || optind != argc
        || (strcmp(action, "list") != 0 && strcmp(action, "replay") != 0
            && strcmp(action, "discard") != 0))
    {
        shadow_dlcmd_usage(stderr);
        return 2;
    }

    if (shadow_config_load(config, &cfg, &err) != SHADOW_OK) {
        fprintf(stderr, "cutover-shadowd: %s: %s\n", config, err.message);
        return 2;
    }

    dl = shadow_dl_open(cfg.dead_letter, &err);
    if (dl == NULL || shadow_dl_lock(dl, 1, &err) != SHADOW_OK) {
        fprintf(stderr, "cutover-shadowd: %s\n", err.message);
        rc = 2;
        goto cleanup;
    }

    n = scandir(cfg.dead_letter, &names, NULL, alphasort);
    if (n < 0) {
        fprintf(stderr, "cutover-shadowd: \"%s\": %s\n", cfg.dead_letter,
                strerror(errno));
        rc = 2;
        goto cleanup;
    }

    for (i = 0; i < n; i++) {
        r = shadow_dlcmd_file(dl, action, names[i]->d_name, key, note);
        if (r > 0) {
            rc = 1;

        } else if (r == 0) {
            acted++;
        }

        free(names[i]);
    }

    free(names);

    if (key != NULL && acted == 0 && rc == 0) {
        fprintf(stderr, "cutover-shadowd: no %srecords of key \"%s\" in "
                "\"%s\"\n", strcmp(action, "list") ? "parked " : "", key,
                cfg.dead_letter);
        rc = 1;
    }

cleanup:

    if (dl != NULL) {
        shadow_dl_unlock(dl);
    }

    shadow_dl_free(dl);
    shadow_config_clear(&cfg);
    return rc;
}
