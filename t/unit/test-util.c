/*
 * test-util.c - unit tests for src/util.c: base64 (strict decoding),
 * Dovecot tab-escaping, constant-time comparison, sbuf bounds, numbers,
 * descriptor passing.
 */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>
#include "tap.h"
#include "util.h"

static void
test_base64(void)
{
	static const struct { const char *plain, *b64; } v[] = {
		{ "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
		{ "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
	};
	static const char *bad[] = { "Zg=", "Z===", "Zm9v!", "Zm=v", "Zh==", "Zm9=",
		"=Zm9", "Zm9vYg=a", " Zm9v", "Zm9v\n" };
	char enc[64];
	unsigned char dec[64];
	size_t i;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		ssize_t n;
		b64_encode((const unsigned char *)v[i].plain, strlen(v[i].plain), enc);
		is_str(enc, v[i].b64, "b64 encode \"%s\"", v[i].plain);
		n = b64_decode(v[i].b64, strlen(v[i].b64), dec);
		ok(n == (ssize_t)strlen(v[i].plain) && memcmp(dec, v[i].plain, (size_t)n) == 0,
		    "b64 decode \"%s\"", v[i].b64);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ok(b64_decode(bad[i], strlen(bad[i]), dec) < 0 && !b64_valid(bad[i], strlen(bad[i])),
		    "b64 rejects \"%s\"", bad[i]);
	/* binary round trip including NULs */
	{
		unsigned char bin[256];
		char big[400];
		unsigned char back[300];
		for (i = 0; i < 256; i++)
			bin[i] = (unsigned char)i;
		b64_encode(bin, 256, big);
		is_int(strlen(big), b64_encoded_len(256), "encoded length");
		ok(b64_decode(big, strlen(big), back) == 256 && memcmp(back, bin, 256) == 0,
		    "binary round trip");
	}
}

static void
test_tabescape(void)
{
	struct sbuf b;
	char s[64];

	sbuf_init(&b, 0);
	tab_escape(&b, "a\tb\nc\rd\001e");
	is_str(b.s, "a\001tb\001nc\001rd\0011e", "tab_escape escapes TAB LF CR and \\001");
	strcpy(s, b.s);
	ok(tab_unescape(s), "tab_unescape ok");
	is_str(s, "a\tb\nc\rd\001e", "round trip");
	strcpy(s, "x\001zy");
	ok(tab_unescape(s) && strcmp(s, "xzy") == 0, "unknown escape yields the byte");
	strcpy(s, "x\001");
	ok(!tab_unescape(s), "dangling escape refused");
	sbuf_free(&b);
}

static void
test_ct_equal(void)
{
	ok(ct_equal("secret", 6, "secret", 6), "equal strings");
	ok(!ct_equal("secreT", 6, "secret", 6), "different last byte");
	ok(!ct_equal("secre", 5, "secret", 6), "prefix is not equal");
	ok(!ct_equal("secrets", 7, "secret", 6), "longer is not equal");
	ok(!ct_equal("", 0, "x", 1), "empty vs non-empty");
	ok(ct_equal("", 0, "", 0), "empty vs empty");
}

static void
test_sbuf(void)
{
	struct sbuf b;
	int i;
	bool all = true;

	sbuf_init(&b, 10);
	ok(sbuf_addstr(&b, "0123456789"), "fill to the cap");
	ok(!sbuf_addstr(&b, "x"), "one more byte refused");
	is_int(b.len, 10, "length stays at the cap");
	sbuf_reset(&b);
	ok(sbuf_printf(&b, "%d-%s", 42, "ab") && strcmp(b.s, "42-ab") == 0, "sbuf_printf");
	sbuf_free(&b);
	sbuf_init(&b, 0);
	for (i = 0; i < 1000; i++)
		all = all && sbuf_addstr(&b, "abcdefghij");
	ok(all && b.len == 10000, "uncapped sbuf grows");
	sbuf_free(&b);
}

static void
test_numbers(void)
{
	unsigned long long v;

	ok(parse_uint("0", 10, &v) && v == 0, "0");
	ok(parse_uint("4294967295", 4294967295ULL, &v) && v == 4294967295ULL, "max");
	ok(!parse_uint("4294967296", 4294967295ULL, &v), "max+1 refused");
	ok(!parse_uint("", 10, &v), "empty refused");
	ok(!parse_uint("1a", 100, &v), "junk refused");
	ok(!parse_uint("-1", 100, &v), "sign refused");
	ok(!parse_uint("99999999999999999999999", ~0ULL, &v), "overflow refused");
}

/* a descriptor and its tag across a SOCK_SEQPACKET pair (reloads) */
static void
test_fd_passing(void)
{
	int sv[2], p[2], fd = -2;
	char tag = 0, buf[8] = "";

	ok(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) == 0 && pipe(p) == 0, "setup");
	ok(recv_fd(sv[1], &fd, &tag) == -1 && errno == EAGAIN, "nothing yet: EAGAIN");
	ok(send_fd(sv[0], p[0], 'R') == 0, "send_fd");
	close(p[0]);
	ok(recv_fd(sv[1], &fd, &tag) == 1 && tag == 'R' && fd >= 0, "recv_fd: tag and fd");
	ok(write(p[1], "hi", 2) == 2 && read(fd, buf, sizeof(buf)) == 2 &&
	    memcmp(buf, "hi", 2) == 0, "the descriptor received is the pipe's");
	ok((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0, "received close-on-exec");
	close(fd);
	ok(write(sv[0], "X", 1) == 1 && recv_fd(sv[1], &fd, &tag) == 1 && fd == -1 &&
	    tag == 'X', "a message without a descriptor: fd -1");
	close(sv[0]);
	ok(recv_fd(sv[1], &fd, &tag) == 0, "EOF: 0");
	close(sv[1]);
	close(p[1]);
}

int
main(void)
{
	test_base64();
	test_tabescape();
	test_ct_equal();
	test_sbuf();
	test_numbers();
	test_fd_passing();
	return done_testing();
}
