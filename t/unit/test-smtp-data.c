/*
 * test-smtp-data.c - unit tests of the DATA filter (src/smtp-data.c):
 * dot-unstuffing, end-of-data detection across every chunking, the bare
 * CR / bare LF smuggling variants, NUL octets, the size limit and header
 * tracking.
 */
#include <stdlib.h>
#include <string.h>

#include "smtp-data.h"
#include "tap.h"

struct result {
	char out[8192];
	size_t outlen;
	size_t consumed;     /* input octets up to and including the end */
	struct smtp_data d;
};

/*
 * Run the filter over in[0..n) in chunks: chunk == 0 means random sizes
 * (seeded), otherwise fixed size.
 */
static void
run(const char *in, size_t n, size_t chunk, long long max, unsigned seed,
    struct result *r)
{
	size_t pos = 0;
	char buf[sizeof(r->out) + SMTP_DATA_SLACK];

	memset(r, 0, sizeof(*r));
	smtp_data_init(&r->d, max);
	srand(seed);
	while (pos < n && !r->d.done) {
		size_t len = chunk ? chunk : (size_t)(rand() % 7) + 1, got, used;

		if (len > n - pos)
			len = n - pos;
		used = smtp_data_feed(&r->d, in + pos, len, buf, &got);
		if (r->outlen + got < sizeof(r->out))
			memcpy(r->out + r->outlen, buf, got);
		r->outlen += got;
		pos += used;
		if (used < len && !r->d.done)
			break;  /* must not happen */
	}
	r->consumed = pos;
	r->out[r->outlen < sizeof(r->out) ? r->outlen : 0] = '\0';
}

/* Check a case in every chunking: whole, 1, 2, 3 and random. */
static void
check(const char *name, const char *in, int want_done, const char *want_out,
      int want_bare, size_t want_consumed)
{
	static const size_t chunks[] = { 100000, 1, 2, 3, 0, 0, 0 };
	size_t n = strlen(in);
	struct result r;

	for (size_t k = 0; k < sizeof(chunks) / sizeof(chunks[0]); k++) {
		run(in, n, chunks[k], 0, (unsigned)k, &r);
		ok(r.d.done == want_done && r.d.bare == want_bare &&
		   (!want_out || strcmp(r.out, want_out) == 0) &&
		   (!want_done || r.consumed == want_consumed),
		   "%s (chunk %zu)", name, chunks[k]);
		if (r.d.done != want_done || r.d.bare != want_bare)
			printf("#   done=%d bare=%d\n", r.d.done, r.d.bare);
		if (want_out && strcmp(r.out, want_out) != 0)
			printf("#   out='%s'\n", r.out);
	}
}

static void
test_basic(void)
{
	check("simple message", "Subject: x\r\n\r\nhello\r\n.\r\nQUIT\r\n",
	      1, "Subject: x\r\n\r\nhello\r\n", 0, 24);
	check("empty message", ".\r\n", 1, "", 0, 3);
	check("dot-unstuffing", "a\r\n..b\r\n.c\r\n...\r\n.\r\n",
	      1, "a\r\n.b\r\nc\r\n..\r\n", 0, 20);
	check("dot at line start only", "a.b\r\n. x\r\n.\r\n",
	      1, "a.b\r\n x\r\n", 0, 13);
	check("not ended yet", "a\r\nb\r\n", 0, "a\r\nb\r\n", 0, 0);
	check("pending dot not ended", "a\r\n.", 0, "a\r\n", 0, 0);
	check("pending dot CR not ended", "a\r\n.\r", 0, "a\r\n", 0, 0);
	check("end right after DATA then command", ".\r\nMAIL FROM:<>\r\n",
	      1, "", 0, 3);
	check("line of dots", "..\r\n.\r\n", 1, ".\r\n", 0, 7);
}

/* Every smuggling variant: never an end, always bare, until CRLF.CRLF. */
static void
test_smuggling(void)
{
	static const struct {
		const char *name, *in;
		int done;
		size_t consumed;
	} v[] = {
		{ "LF.LF", "a\n.\nMAIL FROM:<x>\r\n", 0, 0 },
		{ "LF.CRLF", "a\n.\r\nMAIL FROM:<x>\r\n", 0, 0 },
		{ "CRLF.LF", "a\r\n.\nMAIL FROM:<x>\r\n", 0, 0 },
		{ "CR.CR", "a\r.\rMAIL FROM:<x>\r\n", 0, 0 },
		{ "CR.CRLF", "a\r.\r\nMAIL FROM:<x>\r\n", 0, 0 },
		{ "CRLF.CR", "a\r\n.\rMAIL FROM:<x>\r\n", 0, 0 },
		{ "bare LF then real end", "a\nb\r\n.\r\n", 1, 8 },
		{ "bare CR then real end", "a\rb\r\n.\r\n", 1, 8 },
		{ "LF.LF then real end", "a\n.\nX\r\n.\r\n", 1, 10 },
		{ "CRLF.LF then real end", "a\r\n.\nX\r\n.\r\n", 1, 11 },
		{ "LF at start", "\n.\r\n.\r\n", 1, 7 },
		{ "CR at end before LF-dot", "a\r\r\n.\r\n", 1, 7 },
		{ "CRCRLF.CRLF", "a\r\r\n.\r\n", 1, 7 },
		{ "DOT CR CR LF", "a\r\n.\r\r\n.\r\n", 1, 10 },
	};

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		check(v[i].name, v[i].in, v[i].done, NULL, 1, v[i].consumed);
}

static void
test_size(void)
{
	struct result r;
	const char *msg = "0123456789\r\n.\r\n";

	run(msg, strlen(msg), 1, 12, 0, &r);
	ok(r.d.done && !r.d.too_big && r.d.size == 12, "size at the limit is ok");
	run(msg, strlen(msg), 1, 11, 0, &r);
	ok(r.d.done && r.d.too_big, "size over the limit is too big");
	run(msg, strlen(msg), 0, 0, 3, &r);
	ok(r.d.done && !r.d.too_big, "0 means unlimited");
	run("..\r\n.\r\n", 7, 1, 3, 0, &r);
	ok(r.d.done && !r.d.too_big && r.d.size == 3, "size counted after unstuffing");
}

static void
headers(const char *name, const char *in, int msgid, int date, long long end)
{
	struct result r;

	for (unsigned k = 0; k < 4; k++) {
		run(in, strlen(in), k == 0 ? 100000 : k == 1 ? 1 : 0, 0, k, &r);
		ok(r.d.done && !r.d.in_headers && r.d.have_msgid == msgid &&
		   r.d.have_date == date && r.d.header_end == end,
		   "headers: %s (%u)", name, k);
		if (r.d.header_end != end || r.d.have_msgid != msgid ||
		    r.d.have_date != date)
			printf("#   msgid=%d date=%d end=%lld\n", r.d.have_msgid,
			       r.d.have_date, r.d.header_end);
	}
}

static void
test_headers(void)
{
	headers("none found", "Subject: a\r\n\r\nbody\r\n.\r\n", 0, 0, 12);
	headers("both", "Date: x\r\nMessage-ID: <a@b>\r\n\r\nb\r\n.\r\n", 1, 1, 28);
	headers("case-insensitive", "DATE: x\r\nmessage-id: <a@b>\r\n\r\n.\r\n", 1, 1, 28);
	headers("folded", "Subject: a\r\n b\r\nDate: x\r\n\r\n.\r\n", 0, 1, 25);
	headers("not in body", "Subject: a\r\n\r\nDate: x\r\nMessage-ID: y\r\n.\r\n", 0, 0, 12);
	headers("not in a value", "Subject: Date: x\r\n\r\n.\r\n", 0, 0, 18);
	headers("prefix is not enough", "Dated: x\r\nMessage-IDs: x\r\n\r\n.\r\n", 0, 0, 26);
	headers("obsolete space before colon", "Date : x\r\n\r\n.\r\n", 0, 1, 10);
	headers("no blank line", "Subject: a\r\n.\r\n", 0, 0, 12);
	headers("empty message", ".\r\n", 0, 0, 0);
	headers("body without headers", "hello world\r\n.\r\n", 0, 0, 0);
	headers("non-header line ends", "Subject: a\r\nhello\r\nDate: x\r\n.\r\n", 0, 0, 12);
	headers("dot-stuffed header line", "Subject: a\r\n..x\r\n.\r\n", 0, 0, 12);
	headers("header starting with space", " x: y\r\n.\r\n", 0, 0, 0);
}

/* Received: fields counted for the hop limit: only real ones, header section only. */
static void
test_received(void)
{
	static const char in[] =
	    "Received: from a by b\r\n"
	    "RECEIVED: from b\r\n by c\r\n"
	    "Received-SPF: pass\r\n"
	    "X-Received: x\r\n"
	    "Received : from c by d\r\n"
	    "Subject: Received: no\r\n"
	    "\r\n"
	    "Received: in the body\r\n.\r\n";
	struct result r;

	for (unsigned k = 0; k < 4; k++) {
		run(in, sizeof(in) - 1, k == 0 ? 100000 : k == 1 ? 1 : 0, 0, k, &r);
		is_int((int)r.d.received, 3, "Received: fields counted (%u)", k);
	}
}

/* A NUL anywhere marks the message (it still ends at CRLF.CRLF only). */
static void
test_nul(void)
{
	static const struct { const char *name; const char *in; size_t n; int nul; } t[] = {
		{ "NUL in the body", "a\0b\r\n.\r\n", 8, 1 },
		{ "NUL before a dot line", "a\r\n\0.\r\n.\r\n", 10, 1 },
		{ "NUL in a header", "X: \0\r\n\r\nb\r\n.\r\n", 14, 1 },
		{ "no NUL", "a\r\nb\r\n.\r\n", 9, 0 },
	};
	struct result r;

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		for (unsigned k = 0; k < 4; k++) {
			run(t[i].in, t[i].n, k == 0 ? 100000 : k == 1 ? 1 : 0, 0, k, &r);
			ok(r.d.done && r.consumed == t[i].n && r.d.nul == t[i].nul && !r.d.bare,
			   "%s: %s, ends at CRLF.CRLF (chunking %u)", t[i].name,
			   t[i].nul ? "marked" : "not marked", k);
		}
}

int
main(void)
{
	test_basic();
	test_smuggling();
	test_nul();
	test_size();
	test_headers();
	test_received();
	return done_testing();
}
