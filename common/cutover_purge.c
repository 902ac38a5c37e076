/*
 * cutover_purge: batched deletion of expired rows (see cutover_purge.h).
 */

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "common/cutover_log.h"
#include "common/cutover_purge.h"

struct cutover_purge_s {
    char             *program;
    char             *conninfo;
    char             *what;
    char             *sql;
    uint64_t          ttl;
    unsigned          every;        /* seconds between rounds */
    pthread_t         thread;
    pthread_mutex_t   lock;
    pthread_cond_t    wake;
    int               stopping;
    uint64_t          total;
    PGconn           *pg;
};


static void *cutover_purge_loop(void *arg);
static int cutover_purge_round(cutover_purge_t *p, uint64_t *deleted);
static int cutover_purge_connect(cutover_purge_t *p);
static int cutover_purge_stopping(cutover_purge_t *p);


cutover_purge_t *
cutover_purge_start(const char *program, const char *conninfo,
    const char *what, const char *sql, uint64_t ttl)
{
    cutover_purge_t  *p;

    p = calloc(1, sizeof(cutover_purge_t));
    if (p == NULL) {
        return NULL;
    }

    p->program = strdup(program);
    p->conninfo = strdup(conninfo);
    p->what = strdup(what);
    p->sql = strdup(sql);
    p->ttl = ttl;
    p->every = ttl / 4 > 60 ? 60 : ttl / 4 < 1 ? 1 : (unsigned) (ttl / 4);

    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);

    if (p->program == NULL || p->conninfo == NULL || p->what == NULL
        || p->sql == NULL
        || pthread_create(&p->thread, NULL, cutover_purge_loop, p) != 0)
    {
        pthread_cond_destroy(&p->wake);
        pthread_mutex_destroy(&p->lock);
        free(p->program);
        free(p->conninfo);
        free(p->what);
        free(p->sql);
        free(p);
        return NULL;
    }

    return p;
}


void
cutover_purge_stop(cutover_purge_t *p)
{
    if (p == NULL) {
        return;
    }

    pthread_mutex_lock(&p->lock);
    p->stopping = 1;
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->lock);
    pthread_join(p->thread, NULL);

    if (p->pg != NULL) {
        PQfinish(p->pg);
    }
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->lock);
    free(p->program);
    free(p->conninfo);
    free(p->what);
    free(p->sql);
    free(p);
}


uint64_t
cutover_purge_total(cutover_purge_t *p)
{
    uint64_t  n;

    pthread_mutex_lock(&p->lock);
    n = p->total;
    pthread_mutex_unlock(&p->lock);
    return n;
}


static int
cutover_purge_stopping(cutover_purge_t *p)
{
    int  s;

    pthread_mutex_lock(&p->lock);
    s = p->stopping;
    pthread_mutex_unlock(&p->lock);
    return s;
}


static void *
cutover_purge_loop(void *arg)
{
    cutover_purge_t  *p = arg;
    uint64_t          deleted;
    struct timespec   until;

    for ( ;; ) {
        pthread_mutex_lock(&p->lock);
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += p->every;
        while (!p->stopping
               && pthread_cond_timedwait(&p->wake, &p->lock, &until) == 0)
        {
            /* woken early and not stopping: wait on */
        }
        if (p->stopping) {
            pthread_mutex_unlock(&p->lock);
            return NULL;
        }
        pthread_mutex_unlock(&p->lock);

        deleted = 0;
        if (cutover_purge_round(p, &deleted) != 0 && p->pg != NULL) {
            PQfinish(p->pg);
            p->pg = NULL;
        }

        if (deleted > 0) {
            pthread_mutex_lock(&p->lock);
            p->total += deleted;
            pthread_mutex_unlock(&p->lock);
            cutover_log_line(p->program, "INFO", "purged %llu %s older than "
                             "%llus (%llu in all)",
                             (unsigned long long) deleted, p->what,
                             (unsigned long long) p->ttl,
                             (unsigned long long) cutover_purge_total(p));
        }
    }
}


static int
cutover_purge_connect(cutover_purge_t *p)
{
    PGresult  *res;

    if (p->pg != NULL && PQstatus(p->pg) == CONNECTION_OK) {
        return 0;
    }

    if (p->pg != NULL) {
        PQfinish(p->pg);
    }

    p->pg = PQconnectdb(p->conninfo);
    if (PQstatus(p->pg) != CONNECTION_OK) {
        cutover_log_line(p->program, "WARN", "purge of %s: cannot connect: "
                         "%s", p->what, PQerrorMessage(p->pg));
        return -1;
    }

    /* a purge waits on no writer for long: it tries again next round */
    res = PQexec(p->pg, "SET lock_timeout = '1s'");
    PQclear(res);
    return 0;
}


/* Batches until one deletes less than a batch; 0 or -1 on a failure. */
static int
cutover_purge_round(cutover_purge_t *p, uint64_t *deleted)
{
    char         ttl[24], batch[24];
    const char  *v[2];
    PGresult    *res;
    long long    n;

    if (cutover_purge_connect(p) != 0) {
        return -1;
    }

    snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long) p->ttl);
    snprintf(batch, sizeof(batch), "%d", CUTOVER_PURGE_BATCH);
    v[0] = ttl;
    v[1] = batch;

    do {
        res = PQexecParams(p->pg, p->sql, 2, NULL, v, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            cutover_log_line(p->program, "WARN", "purge of %s: %s", p->what,
                             PQresultErrorMessage(res));
            PQclear(res);
            return -1;
        }
        n = atoll(PQcmdTuples(res));
        PQclear(res);
        *deleted += (uint64_t) n;
    } while (n == CUTOVER_PURGE_BATCH && !cutover_purge_stopping(p));

    return 0;
}
