/*
 * test-auth-proto.c - unit tests for the Dovecot auth protocol line
 * helpers (src/auth-proto.c): line finding and the length limit, TAB
 * splitting, tab-(un)escaping, parameters, ids and base64 checks.
 */
#include <stdlib.h>
#include <string.h>

#include "auth-proto.h"
#include "util.h"
#include "tap.h"

static void
test_line(void)
{
	size_t n = 0;
	char *big;

	is_int(auth_proto_line("VERSION\t1\t2\nCPID", 16, 100, &n), 1, "line found");
	is_int(n, 12, "line length includes LF");
	is_int(auth_proto_line("VERSION\t1", 9, 100, &n), 0, "partial line: need more");
	is_int(auth_proto_line("", 0, 100, &n), 0, "empty buffer: need more");
	is_int(auth_proto_line("abcdefghij", 10, 10, &n), -1, "no LF within max: too long");
	is_int(auth_proto_line("abcdefghi\n", 10, 10, &n), 1, "LF as the max-th byte is fine");

	big = malloc(AUTH_PROTO_MAX_LINE + 10);
	memset(big, 'a', AUTH_PROTO_MAX_LINE + 10);
	big[AUTH_PROTO_MAX_LINE - 1] = '\n';
	is_int(auth_proto_line(big, AUTH_PROTO_MAX_LINE + 10, AUTH_PROTO_MAX_LINE, &n), 1,
	    "16384-byte line (LF included) accepted");
	big[AUTH_PROTO_MAX_LINE - 1] = 'a';
	big[AUTH_PROTO_MAX_LINE] = '\n';
	is_int(auth_proto_line(big, AUTH_PROTO_MAX_LINE + 10, AUTH_PROTO_MAX_LINE, &n), -1,
	    "16385-byte line refused");
	free(big);
}

static void
test_split(void)
{
	char l1[] = "AUTH\t1\tPLAIN\tservice=smtp\t\tresp=AAAA";
	char l2[] = "CONT\t7\tab\tcd";
	char l3[] = "DONE";
	char *argv[8];
	size_t n;

	n = auth_proto_split(l1, argv, 8);
	is_int(n, 6, "split: six fields");
	is_str(argv[0], "AUTH", "field 0");
	is_str(argv[3], "service=smtp", "field 3");
	is_str(argv[4], "", "empty field kept");
	is_str(argv[5], "resp=AAAA", "last field");

	n = auth_proto_split(l2, argv, 3);
	is_int(n, 3, "split limited to 3");
	is_str(argv[2], "ab\tcd", "rest of the line kept with its TAB");

	n = auth_proto_split(l3, argv, 8);
	is_int(n, 1, "single field");
	is_str(argv[0], "DONE", "single field value");
}

static void
test_escape(void)
{
	struct sbuf b;
	char s1[] = "a\001tb\001nc\0011d\001re\0010f";
	char s2[] = "plain";
	char s3[] = "dangling\001";
	char s4[] = "\001x";
	char rt[64];
	size_t len;

	sbuf_init(&b, 0);
	auth_proto_escape(&b, "a\tb\nc\001d\re");
	is_str(b.s, "a\001tb\001nc\0011d\001re", "escape TAB LF \\001 CR");
	snprintf(rt, sizeof(rt), "%s", b.s);
	ok(auth_proto_unescape(rt), "round trip unescape ok");
	is_str(rt, "a\tb\nc\001d\re", "round trip value");
	sbuf_free(&b);

	ok(auth_proto_unescape_len(s1, &len), "unescape with NUL");
	is_int(len, 11, "decoded length counts the NUL");
	ok(memcmp(s1, "a\tb\nc\001d\re\0f", 11) == 0, "decoded bytes");
	ok(auth_proto_unescape(s2) && strcmp(s2, "plain") == 0, "no escapes: unchanged");
	ok(!auth_proto_unescape(s3), "dangling escape at the end refused");
	is_str(s3, "dangling", "dangling escape dropped");
	ok(auth_proto_unescape(s4) && strcmp(s4, "x") == 0, "unknown escape stands for itself");
}

static void
test_params(void)
{
	uint32_t id = 0;
	unsigned int u;

	is_str(auth_proto_param("service=smtp", "service"), "smtp", "key=value");
	is_str(auth_proto_param("secured", "secured"), "", "bare boolean");
	ok(auth_proto_param("services=x", "service") == NULL, "longer key does not match");
	ok(auth_proto_param("serv", "service") == NULL, "shorter key does not match");
	is_str(auth_proto_param("resp=", "resp"), "", "empty value");
	ok(auth_proto_param("Service=smtp", "service") == NULL, "case-sensitive");

	ok(auth_proto_parse_id("1", &id) && id == 1, "id 1");
	ok(auth_proto_parse_id("4294967295", &id) && id == 4294967295u, "id 2^32-1");
	ok(!auth_proto_parse_id("0", &id), "id 0 refused");
	ok(!auth_proto_parse_id("4294967296", &id), "id 2^32 refused");
	ok(!auth_proto_parse_id("-1", &id), "negative id refused");
	ok(!auth_proto_parse_id(" 1", &id), "space refused");
	ok(!auth_proto_parse_id("", &id), "empty id refused");
	ok(!auth_proto_parse_id("1x", &id), "trailing junk refused");
	ok(auth_proto_parse_uint("0", &u) && u == 0, "uint 0 allowed");
}

static void
test_b64(void)
{
	ok(auth_proto_b64_ok(""), "empty base64 ok");
	ok(auth_proto_b64_ok("="), "'=' (empty response) ok");
	ok(auth_proto_b64_ok("AGFsaWNlAHNlY3JldA=="), "PLAIN payload ok");
	ok(!auth_proto_b64_ok("AGFsaWNlAHNlY3JldA="), "bad padding refused");
	ok(!auth_proto_b64_ok("!!!!"), "bad alphabet refused");
	ok(!auth_proto_b64_ok("AAA"), "bad length refused");
	ok(!auth_proto_b64_ok("AA AA"), "space refused");
}

int
main(void)
{
	test_line();
	test_split();
	test_escape();
	test_params();
	test_b64();
	return done_testing();
}
