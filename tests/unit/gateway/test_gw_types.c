/* The shared gateway helpers of gateway/gw_types.h: exact and case-insensitive comparison,
 * header lookup (first match wins, names compare case-insensitively, values never do). */
#include "gateway/gw_types.h"
#include "tests/tap.h"

int main(void)
{
    struct gw_str s = {.p = "Content-Length: 5", .n = 14};
    ok(gw_str_eq(s, "Content-Length"), "exact match on a prefix slice");
    ok(!gw_str_eq(s, "content-length"), "exact match is case-sensitive");
    ok(gw_str_ieq(s, "content-length"), "case-insensitive match");
    ok(!gw_str_ieq(s, "content-lengt"), "a shorter literal does not match");
    ok(!gw_str_ieq(s, "content-length:"), "a longer literal does not match");
    ok(gw_str_eq(GW_STR("abc"), "abc"), "GW_STR literal");

    struct gw_header hs[] = {
        {GW_STR("Host"), GW_STR("example")},
        {GW_STR("X-Amz-Meta-A"), GW_STR("1")},
        {GW_STR("x-amz-meta-a"), GW_STR("2")},
    };
    struct gw_request_head h = {.method = GW_STR("GET"), .headers = hs, .n_headers = 3};
    const struct gw_header *f = gw_header_find(&h, "HOST");
    ok(f == &hs[0], "lookup ignores case");
    f = gw_header_find(&h, "x-amz-meta-a");
    ok(f == &hs[1], "the first of repeated headers");
    ok(f && gw_str_eq(f->value, "1"), "its value");
    ok(gw_header_find(&h, "x-amz-meta") == NULL, "no prefix match");
    ok(gw_header_find(&h, "") == NULL, "empty name matches nothing");
    struct gw_request_head empty = {.n_headers = 0};
    ok(gw_header_find(&empty, "host") == NULL, "no headers");
    return tap_done();
}
