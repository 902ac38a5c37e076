/*
 * corpus.h: walks the JSONTestSuite parsing cases (../shared/corpus, or
 * $CUTOVER_CORPUS) for the tests of every JSON front end.
 *
 *     corpus_t  c;
 *
 *     corpus_open(&c);
 *     while (corpus_next(&c)) {
 *         ... c.name ("y_..." / "n_..." / "i_..."), c.doc, c.len ...
 *     }
 *     ck_assert_int_ge(c.count, 318);
 */

#ifndef CUTOVER_TESTS_CORPUS_H
#define CUTOVER_TESTS_CORPUS_H

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
    DIR     *dir;
    char     path[1024];
    char     name[256];
    char    *doc;           /* NUL-terminated; freed by the next call */
    size_t   len;
    int      count;
} corpus_t;


static inline void
corpus_open(corpus_t *c)
{
    const char  *root = getenv("CUTOVER_CORPUS");

    snprintf(c->path, sizeof(c->path), "%s/JSONTestSuite/test_parsing",
             root ? root : "../shared/corpus");
    c->dir = opendir(c->path);
    c->doc = NULL;
    c->count = 0;
    ck_assert_msg(c->dir != NULL, "no corpus at %s (set CUTOVER_CORPUS)",
                  c->path);
}


/* The next case (1), or 0 once all were seen. */
static inline int
corpus_next(corpus_t *c)
{
    long            n;
    char            file[1300];
    FILE           *f;
    struct dirent  *de;

    free(c->doc);
    c->doc = NULL;

    while ((de = readdir(c->dir)) != NULL) {
        if (de->d_name[0] != 'y' && de->d_name[0] != 'n'
            && de->d_name[0] != 'i')
        {
            continue;
        }

        snprintf(c->name, sizeof(c->name), "%s", de->d_name);
        snprintf(file, sizeof(file), "%s/%s", c->path, de->d_name);

        f = fopen(file, "rb");
        ck_assert_msg(f != NULL, "cannot open %s", file);
        fseek(f, 0, SEEK_END);
        n = ftell(f);
        fseek(f, 0, SEEK_SET);

        c->doc = malloc((size_t) n + 1);
        ck_assert_ptr_nonnull(c->doc);
        c->len = fread(c->doc, 1, (size_t) n, f);
        c->doc[c->len] = '\0';
        fclose(f);

        c->count++;
        return 1;
    }

    closedir(c->dir);
    c->dir = NULL;
    return 0;
}

#endif /* CUTOVER_TESTS_CORPUS_H */
