/*
 * compare_store_int.h: what the result store's files share (not a
 * public interface: see compare_store.h).
 */

#ifndef COMPARE_STORE_INT_H
#define COMPARE_STORE_INT_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <bson/bson.h>

#include "compare/compare_diff.h"
#include "compare/compare_store.h"


#define COMPARE_PAIR_COLS    16
#define COMPARE_DIFF_COLS    6
#define COMPARE_PAIR_CHUNK   200
#define COMPARE_DIFF_CHUNK   500
#define COMPARE_RETRY_US     250000
#define COMPARE_RETRY_MAX_US 2000000

struct compare_store_s {
    char       *conninfo;
    char       *outbox;
    PGconn     *conn;
    int         schema_ok;
    bson_t    **queue;
    size_t      nqueue;
    size_t      capqueue;
    uint64_t    pending;
    uint64_t    written;
    uint64_t    rejected;
    uint64_t    seq;
    uint64_t    outbox_max;
    int64_t     next_try;
    int64_t     backoff;      /* doubles while PostgreSQL stays away */
};


int compare_store_fail(compare_error_t *err, const char *what, const char *why);
int64_t compare_now_us(void);
int compare_prepare(PGconn *conn, compare_error_t *err);
int compare_store_insert(compare_store_t *st, bson_t **recs, size_t n,
    compare_error_t *err);
void compare_outbox_count(compare_store_t *st);
int compare_outbox_write(compare_store_t *st, bson_t **recs, size_t n,
    compare_error_t *err);
int compare_outbox_drain(compare_store_t *st, compare_error_t *err);

#endif /* COMPARE_STORE_INT_H */
