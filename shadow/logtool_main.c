/*
 * cutover-logtool: dump the dual-run log as JSON lines, or append records
 * given as JSON lines.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shadow/shadow_json.h"


static void logtool_usage(FILE *out);
static int logtool_dump(const char *log, shadow_pos_t from);
static int logtool_write(const char *log, unsigned long long segment_size);


static void
logtool_usage(FILE *out)
{
    fprintf(out,
        "usage: cutover-logtool dump LOG [--from SEQ:OFF]\n"
        "       cutover-logtool write LOG [--segment-size BYTES] < records.jsonl\n"
        "\n"
        "dump   prints every record of the dual-run log LOG (segments\n"
        "       LOG.<20 digits>) as one JSON line; bodies as text when they\n"
        "       are UTF-8, else as <name>_b64.  Corrupt frames are reported\n"
        "       on stderr and skipped.  Exit 0, or 1 if any was corrupt.\n"
        "write  appends one record per JSON line of stdin (keys as in the\n"
        "       record; see shadow/shadow_json.h), rotating segments at\n"
        "       --segment-size (default 67108864).  Exit 1 on a bad line\n"
        "       (the lines before it are written).\n");
}


static int
logtool_dump(const char *log, shadow_pos_t from)
{
    int               rc, corrupt = 0;
    char             *line;
    shadow_frame_t    f;
    shadow_error_t    err;
    shadow_reader_t  *r;
    cutover_record_t  rec;

    r = shadow_reader_new(log, from, 0, &err);
    if (r == NULL) {
        fprintf(stderr, "cutover-logtool: %s\n", err.message);
        return 1;
    }

    for ( ;; ) {
        rc = shadow_reader_next(r, &f, &err);

        if (rc == SHADOW_CORRUPT) {
            fprintf(stderr, "cutover-logtool: %s\n", err.message);
            corrupt = 1;
            continue;
        }

        if (rc != SHADOW_OK) {
            break;
        }

        if (shadow_record_decode(f.payload, f.len, &rec, &err) != SHADOW_OK) {
            fprintf(stderr, "cutover-logtool: segment %llu offset %llu: %s\n",
                    (unsigned long long) f.at.seq,
                    (unsigned long long) f.at.off, err.message);
            corrupt = 1;
            continue;
        }

        line = shadow_json_record_dump(&rec, f.at);
        shadow_record_clear(&rec);
        if (line == NULL) {
            fprintf(stderr, "cutover-logtool: out of memory\n");
            rc = SHADOW_ERROR;
            break;
        }

        puts(line);
        free(line);
    }

    if (rc == SHADOW_ERROR) {
        fprintf(stderr, "cutover-logtool: %s\n", err.message);
        corrupt = 1;
    }

    shadow_reader_free(r);
    return corrupt;
}


static int
logtool_write(const char *log, unsigned long long segment_size)
{
    int                    rc = 0;
    char                  *line = NULL;
    size_t                 cap = 0, n, fcap = 0, flen;
    ssize_t                len;
    uint8_t               *frame = NULL, *nf;
    unsigned long          lineno = 0;
    shadow_error_t         err;
    cutover_writer_t       w;
    shadow_json_record_t   jr;

    cutover_writer_init(&w, log, segment_size);

    while ((len = getline(&line, &cap, stdin)) != -1) {
        lineno++;
        if (strspn(line, " \t\r\n") == (size_t) len) {
            continue;
        }

        if (shadow_json_record_parse(line, (size_t) len, &jr, &err)
            != SHADOW_OK)
        {
            fprintf(stderr, "cutover-logtool: line %lu: %s\n", lineno,
                    err.message);
            rc = 1;
            break;
        }

        n = cutover_record_size(&jr.rec);
        if (n > fcap) {
            nf = realloc(frame, n);
            if (nf == NULL) {
                shadow_json_record_clear(&jr);
                fprintf(stderr, "cutover-logtool: out of memory\n");
                rc = 1;
                break;
            }

            frame = nf;
            fcap = n;
        }

        if (cutover_record_frame(&jr.rec, frame, fcap, &flen) != SHADOW_OK
            || cutover_writer_append(&w, frame, flen) != SHADOW_OK)
        {
            fprintf(stderr, "cutover-logtool: line %lu: cannot append to "
                    "\"%s\": %s\n", lineno, log,
                    w.err ? strerror(w.err) : "record too large");
            shadow_json_record_clear(&jr);
            rc = 1;
            break;
        }

        shadow_json_record_clear(&jr);
    }

    cutover_writer_close(&w);
    free(line);
    free(frame);
    return rc;
}


int
main(int argc, char **argv)
{
    int                 i;
    char               *end;
    shadow_pos_t        from = { 0, 0 };
    unsigned long long  segment_size = 64ULL * 1024 * 1024;

    if (argc >= 2 && (strcmp(argv[1], "--help") == 0
                      || strcmp(argv[1], "-h") == 0))
    {
        logtool_usage(stdout);
        return 0;
    }

    if (argc < 3) {
        logtool_usage(stderr);
        return 2;
    }

    for (i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--from") == 0 && i + 1 < argc
            && strcmp(argv[1], "dump") == 0)
        {
            from.seq = strtoull(argv[++i], &end, 10);
            if (*end != ':' || from.seq == 0) {
                logtool_usage(stderr);
                return 2;
            }

            from.off = strtoull(end + 1, &end, 10);
            if (*end != '\0') {
                logtool_usage(stderr);
                return 2;
            }

        } else if (strcmp(argv[i], "--segment-size") == 0 && i + 1 < argc
                   && strcmp(argv[1], "write") == 0)
        {
            segment_size = strtoull(argv[++i], &end, 10);
            if (*end != '\0' || segment_size == 0) {
                logtool_usage(stderr);
                return 2;
            }

        } else {
            logtool_usage(stderr);
            return 2;
        }
    }

    if (strcmp(argv[1], "dump") == 0) {
        return logtool_dump(argv[2], from);
    }

    if (strcmp(argv[1], "write") == 0) {
        return logtool_write(argv[2], segment_size);
    }

    logtool_usage(stderr);
    return 2;
}
