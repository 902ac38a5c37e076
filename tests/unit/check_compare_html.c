/*
 * check_compare_html: the HTML report's escaping of recorded strings
 * (markup, </script>, control characters, invalid UTF-8) and the page's
 * embedded script and style.
 */

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compare/compare_html.h"

extern const char compare_html_css[];
extern const char compare_html_js[];

typedef struct {
    const char  *in;
    size_t       len;
    const char  *out;
} html_case_t;

#define CASE(in, out)  { in, sizeof(in) - 1, out }

static const html_case_t cases[] = {
    CASE("plain text 12.50", "plain text 12.50"),
    CASE("", ""),
    CASE("<script>alert(1)</script>",
         "&lt;script&gt;alert(1)&lt;/script&gt;"),
    CASE("</script><img src=x onerror=alert(1)>",
         "&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"),
    CASE("a \"quoted\" 'v' & b", "a &quot;quoted&quot; &#39;v&#39; &amp; b"),
    CASE("&lt; stays text", "&amp;lt; stays text"),
    /* control characters as their pictures, NUL included */
    CASE("a\x01" "b\x1b[31m", "a&#x2401;b&#x241B;[31m"),
    CASE("nul\0end", "nul&#x2400;end"),
    CASE("tab\tnl\ncr\r", "tab&#x2409;nl&#x240A;cr&#x240D;"),
    CASE("del\x7f", "del&#x2421;"),
    /* UTF-8 passes, C1 controls and invalid bytes do not */
    CASE("\xe9\x97\xa8\xe5\xba\x97 caf\xc3\xa9 \xf0\x9f\x9b\x92",
         "\xe9\x97\xa8\xe5\xba\x97 caf\xc3\xa9 \xf0\x9f\x9b\x92"),
    CASE("c1\xc2\x85", "c1&#xFFFD;"),
    CASE("bad\xff\xfe", "bad&#xFFFD;&#xFFFD;"),
    CASE("cut\xe9\x97", "cut&#xFFFD;&#xFFFD;"),
    CASE("overlong\xc0\xbc", "overlong&#xFFFD;&#xFFFD;"),
    CASE("overlong3\xe0\x80\xbc", "overlong3&#xFFFD;&#xFFFD;&#xFFFD;"),
    CASE("surrogate\xed\xa0\x80", "surrogate&#xFFFD;&#xFFFD;&#xFFFD;"),
    CASE("big\xf4\x90\x80\x80", "big&#xFFFD;&#xFFFD;&#xFFFD;&#xFFFD;"),
    /* an invalid lead byte does not swallow the markup after it */
    CASE("\xe9<b>", "&#xFFFD;&lt;b&gt;")
};


static char *
escape(const char *in, size_t len)
{
    char    *buf = NULL;
    size_t   n = 0;
    FILE    *f = open_memstream(&buf, &n);

    ck_assert_ptr_nonnull(f);
    compare_html_text(f, in, len);
    ck_assert_int_eq(fclose(f), 0);
    return buf;
}


START_TEST(test_escape_table)
{
    char  *got = escape(cases[_i].in, cases[_i].len);

    ck_assert_msg(strcmp(got, cases[_i].out) == 0, "case %d: \"%s\" != \"%s\"",
                  _i, got, cases[_i].out);
    free(got);
}
END_TEST


/* Whatever bytes come in, what goes out holds no markup character, no
 * control character and only valid UTF-8. */
START_TEST(test_escape_every_byte)
{
    unsigned char   in[3];
    char           *got;
    size_t          i;
    int             a, b;

    for (a = 0; a < 256; a++) {
        for (b = 0; b < 256; b += 17) {
            in[0] = (unsigned char) a;
            in[1] = (unsigned char) b;
            in[2] = '<';
            got = escape((const char *) in, sizeof(in));
            for (i = 0; got[i]; i++) {
                ck_assert_msg(strchr("<>\"'", got[i]) == NULL
                              && (unsigned char) got[i] >= 0x20
                              && got[i] != 0x7f, "0x%02x 0x%02x: %s", a, b,
                              got);
            }
            ck_assert_msg(strstr(got, "&lt;") != NULL, "%02x %02x", a, b);
            free(got);
        }
    }
}
END_TEST


/* The inline script cannot end its own element early, and the style
 * fetches nothing (no url(), no @import). */
START_TEST(test_assets_self_contained)
{
    ck_assert_ptr_null(strstr(compare_html_js, "</"));
    ck_assert_ptr_null(strstr(compare_html_js, "innerHTML"));
    ck_assert_ptr_null(strstr(compare_html_css, "</"));
    ck_assert_ptr_null(strstr(compare_html_css, "url("));
    ck_assert_ptr_null(strstr(compare_html_css, "@import"));
    ck_assert_ptr_null(strstr(compare_html_js, "fetch("));
    ck_assert_ptr_null(strstr(compare_html_js, "XMLHttpRequest"));
    ck_assert_uint_gt(strlen(compare_html_js), 100);
    ck_assert_uint_gt(strlen(compare_html_css), 100);
}
END_TEST


static Suite *
compare_html_suite(void)
{
    Suite  *s = suite_create("compare_html");
    TCase  *tc = tcase_create("escape");

    tcase_add_loop_test(tc, test_escape_table, 0,
                        (int) (sizeof(cases) / sizeof(cases[0])));
    tcase_add_test(tc, test_escape_every_byte);
    tcase_add_test(tc, test_assets_self_contained);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    return s;
}


int
main(void)
{
    SRunner  *sr = srunner_create(compare_html_suite());
    int       failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
