/*
 * corpus.h: walks the hostile JSON inputs for the tests of every JSON front
 * end: the project's own cases (tests/fixtures/json, always), then the
 * JSONTestSuite parsing cases when $CUTOVER_JSONTESTSUITE names that suite's
 * folder (an extra run; .ci/run passes it where the suite is at hand).
 * File names say what a strict parser must do: y_ accept, n_ refuse,
 * i_ either, without crashing.
 *
 *     corpus_t  c;
 *
 *     corpus_open(&c);
 *     while (corpus_next(&c)) {
 *         ... c.name ("y_..." / "n_..." / "i_..."), c.doc, c.len ...
 *     }
 *     corpus_check_count(&c);
 */

#ifndef CUTOVER_TESTS_CORPUS_H
#define CUTOVER_TESTS_CORPUS_H

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>

/* Unit tests run from the repository root. */
#define CORPUS_OWN        "tests/fixtures/json"
#define CORPUS_OWN_MIN    90
#define CORPUS_SUITE_MIN  318

typedef struct {
    DIR     *dir;
    int      pass;          /* 0: our own cases, 1: JSONTestSuite */
    int      suite;         /* the suite is to be walked */
    char     path[1024];
    char     name[256];
    char    *doc;           /* NUL-terminated; freed by the next call */
    size_t   len;
    int      count;
} corpus_t;


static inline void
corpus_open(corpus_t *c)
{
    const char  *suite = getenv("CUTOVER_JSONTESTSUITE");

    c->pass = 0;
    c->suite = suite != NULL && suite[0] != '\0';
    c->doc = NULL;
    c->count = 0;
    snprintf(c->path, sizeof(c->path), "%s", CORPUS_OWN);
    c->dir = opendir(c->path);
    ck_assert_msg(c->dir != NULL, "no corpus at %s (run from the "
                  "repository root)", c->path);
}


/* Moves to the JSONTestSuite folder once our own cases are done (1), or
 * says there is nothing more to walk (0). */
static inline int
corpus_next_dir(corpus_t *c)
{
    closedir(c->dir);
    c->dir = NULL;

    if (c->pass == 1 || !c->suite) {
        return 0;
    }

    c->pass = 1;
    snprintf(c->path, sizeof(c->path), "%s/test_parsing",
             getenv("CUTOVER_JSONTESTSUITE"));
    c->dir = opendir(c->path);
    ck_assert_msg(c->dir != NULL, "CUTOVER_JSONTESTSUITE: no cases at %s",
                  c->path);
    return 1;
}


/* Every case was seen: ours, and the suite's when it was asked for. */
static inline void
corpus_check_count(const corpus_t *c)
{
    ck_assert_int_ge(c->count, CORPUS_OWN_MIN
                               + (c->suite ? CORPUS_SUITE_MIN : 0));
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

    for ( ;; ) {
        de = readdir(c->dir);
        if (de == NULL) {
            if (corpus_next_dir(c)) {
                continue;
            }

            return 0;
        }

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
}

#endif /* CUTOVER_TESTS_CORPUS_H */
