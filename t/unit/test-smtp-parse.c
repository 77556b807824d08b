/*
 * test-smtp-parse.c - unit tests of the SMTP command parsers
 * (src/smtp-parse.c): verbs, MAIL/RCPT paths and parameters, limits,
 * bad input.
 */
#include <string.h>

#include "smtp-parse.h"
#include "tap.h"

/* The reply's first 9 characters ("501 5.1.7"), or "OK". */
static const char *
code(const char *reply)
{
	static char buf[16];

	if (reply == NULL)
		return "OK";
	snprintf(buf, sizeof(buf), "%.9s", reply);
	return buf;
}

static void
test_verbs(void)
{
	char verb[16];
	const char *args;

	ok(smtp_split_verb("ehlo foo.example", verb, sizeof(verb), &args) &&
	   strcmp(verb, "EHLO") == 0 && strcmp(args, "foo.example") == 0,
	   "verb upper-cased, args split");
	ok(smtp_split_verb("QUIT", verb, sizeof(verb), &args) && *args == '\0',
	   "verb alone");
	ok(smtp_split_verb("MaIl FROM:<a@b>", verb, sizeof(verb), &args) &&
	   strcmp(verb, "MAIL") == 0 && strcmp(args, "FROM:<a@b>") == 0,
	   "mixed case");
	ok(!smtp_split_verb("", verb, sizeof(verb), &args), "empty line");
	ok(!smtp_split_verb(" EHLO", verb, sizeof(verb), &args), "leading space");
	ok(!smtp_split_verb("EH\x01LO", verb, sizeof(verb), &args), "control char");
	ok(!smtp_split_verb("ABCDEFGHIJKLMNOPQRSTUVWXYZ", verb, sizeof(verb), &args),
	   "too long verb");
	ok(!smtp_split_verb("M4IL x", verb, sizeof(verb), &args), "digit in verb");
	ok(smtp_is_http("GET / HTTP/1.1"), "GET is http");
	ok(smtp_is_http("POST /x HTTP/1.0"), "POST is http");
	ok(smtp_is_http("CONNECT host:25 HTTP/1.1"), "CONNECT is http");
	ok(!smtp_is_http("GETX"), "GETX is not");
	ok(!smtp_is_http("EHLO get"), "EHLO is not");
}

static void
mail(const char *args, long long max, const char *want, const char *addr)
{
	struct smtp_mail_args m;
	const char *r = smtp_parse_mail(args, max, &m);

	is_str(code(r), want, "MAIL %s -> %s", args, want);
	if (addr && r == NULL)
		is_str(m.from.addr, addr, "MAIL %s address", args);
}

static void
rcpt(const char *args, int utf8, const char *want, const char *addr,
     const char *domain)
{
	struct smtp_rcpt_args r;
	const char *e = smtp_parse_rcpt(args, utf8, &r);

	is_str(code(e), want, "RCPT %s -> %s", args, want);
	if (addr && e == NULL) {
		is_str(r.to.addr, addr, "RCPT %s address", args);
		is_str(r.to.domain, domain, "RCPT %s domain", args);
	}
}

static void
test_mail(void)
{
	char buf[600];
	struct smtp_mail_args m;

	mail("FROM:<alice@example.test>", 0, "OK", "alice@example.test");
	mail("from:<alice@example.test>", 0, "OK", "alice@example.test");
	mail("FROM: <alice@example.test>", 0, "OK", "alice@example.test");
	mail("FROM:<>", 0, "OK", "");
	mail("FROM:<\"a b\"@example.test>", 0, "OK", "\"a b\"@example.test");
	mail("FROM:<\"a\\\"b\"@example.test>", 0, "OK", "\"a\\\"b\"@example.test");
	mail("FROM:<@relay.test,@r2.test:a@example.test>", 0, "OK", "a@example.test");
	mail("FROM:<a@[192.0.2.1]>", 0, "OK", "a@[192.0.2.1]");
	mail("FROM:<a@[IPv6:2001:db8::1]>", 0, "OK", "a@[IPv6:2001:db8::1]");
	mail("FROM:<a.b+c@sub.example-x.test>", 0, "OK", "a.b+c@sub.example-x.test");
	mail("FROM:<a@example.test> SIZE=1000", 2000, "OK", NULL);
	mail("FROM:<a@example.test> SIZE=1000 BODY=8BITMIME", 2000, "OK", NULL);
	mail("FROM:<a@example.test> body=7bit smtputf8 AUTH=<>", 0, "OK", NULL);
	mail("FROM:<a@example.test> AUTH=alice+40example.test", 0, "OK", NULL);
	mail("FROM:<a@example.test>  ", 0, "OK", NULL);

	mail("TO:<a@example.test>", 0, "501 5.5.4", NULL);
	mail("FROM:", 0, "501 5.1.7", NULL);
	mail("FROM:a@example.test", 0, "501 5.1.7", NULL);
	mail("FROM:<a@example.test", 0, "501 5.1.7", NULL);
	mail("FROM:<a@@example.test>", 0, "501 5.1.7", NULL);
	mail("FROM:<a..b@example.test>", 0, "501 5.1.7", NULL);
	mail("FROM:<.a@example.test>", 0, "501 5.1.7", NULL);
	mail("FROM:<a.@example.test>", 0, "501 5.1.7", NULL);
	mail("FROM:<a b@example.test>", 0, "501 5.1.7", NULL);
	mail("FROM:<a@example..test>", 0, "501 5.1.7", NULL);
	mail("FROM:<a@-example.test>", 0, "501 5.1.7", NULL);
	mail("FROM:<a@example-.test>", 0, "501 5.1.7", NULL);
	mail("FROM:<a@example.test.>", 0, "501 5.1.7", NULL);
	mail("FROM:<a@>", 0, "501 5.1.7", NULL);
	mail("FROM:<@example.test>", 0, "501 5.1.7", NULL);
	mail("FROM:<alice>", 0, "501 5.1.7", NULL);
	mail("FROM:<a\r@example.test>", 0, "501 5.1.7", NULL);
	mail("FROM:<a\x01@example.test>", 0, "501 5.1.7", NULL);
	mail("FROM:<\"a\x01\"@example.test>", 0, "501 5.1.7", NULL);
	mail("FROM:<\"unterminated@example.test>", 0, "501 5.1.7", NULL);
	mail("FROM:<a@[300.1.1.1]>", 0, "501 5.1.7", NULL);
	mail("FROM:<a@[1.2.3.4>", 0, "501 5.1.7", NULL);
	mail("FROM:<a@example.test>x", 0, "501 5.5.4", NULL);
	mail("FROM:<a@example.test> SIZE=", 0, "501 5.5.4", NULL);
	mail("FROM:<a@example.test> SIZE=12a", 0, "501 5.5.4", NULL);
	mail("FROM:<a@example.test> SIZE=-1", 0, "501 5.5.4", NULL);
	mail("FROM:<a@example.test> SIZE=999999999999999999999", 0, "501 5.5.4", NULL);
	mail("FROM:<a@example.test> SIZE=1 SIZE=2", 0, "501 5.5.4", NULL);
	mail("FROM:<a@example.test> BODY=BINARYMIME", 0, "501 5.5.4", NULL);
	mail("FROM:<a@example.test> SMTPUTF8=yes", 0, "501 5.5.4", NULL);
	mail("FROM:<a@example.test> AUTH=a=b", 0, "501 5.5.4", NULL);
	mail("FROM:<a@example.test> AUTH=a+4", 0, "501 5.5.4", NULL);
	mail("FROM:<a@example.test> =x", 0, "501 5.5.4", NULL);
	mail("FROM:<a@example.test> RET=FULL", 0, "555 5.5.4", NULL);
	mail("FROM:<a@example.test> SIZE=2001", 2000, "552 5.3.4", NULL);
	mail("FROM:<a@example.test> SIZE=2001", 0, "OK", NULL);
	/* RFC 1870: up to 20 digits; past the limit is 552, not a syntax error */
	mail("FROM:<a@example.test> SIZE=9999999999999999999", 2000, "552 5.3.4", NULL);
	mail("FROM:<a@example.test> SIZE=99999999999999999999", 2000, "552 5.3.4", NULL);
	mail("FROM:<a@example.test> SIZE=00000000000000002000", 2000, "OK", NULL);

	/* UTF-8 (RFC 6531) */
	mail("FROM:<j\xc3\xb6rg@example.test> SMTPUTF8", 0, "OK", "j\xc3\xb6rg@example.test");
	mail("FROM:<j\xc3\xb6rg@\xc3\xa9xample.test> SMTPUTF8", 0, "OK", NULL);
	mail("FROM:<j\xc3\xb6rg@example.test>", 0, "553 5.6.7", NULL);
	mail("FROM:<j\xc3@example.test> SMTPUTF8", 0, "501 5.1.7", NULL);
	mail("FROM:<j\xc0\xafrg@example.test> SMTPUTF8", 0, "501 5.1.7", NULL);
	mail("FROM:<j\xed\xa0\x80@example.test> SMTPUTF8", 0, "501 5.1.7", NULL);

	/* length limits */
	memset(buf, 0, sizeof(buf));
	strcpy(buf, "FROM:<");
	memset(buf + 6, 'a', 64);
	strcat(buf, "@example.test>");
	mail(buf, 0, "OK", NULL);
	memset(buf, 0, sizeof(buf));
	strcpy(buf, "FROM:<");
	memset(buf + 6, 'a', 65);
	strcat(buf, "@example.test>");
	mail(buf, 0, "501 5.1.7", NULL);
	memset(buf, 0, sizeof(buf));
	strcpy(buf, "FROM:<a@");
	for (int i = 0; i < 60; i++)
		strcat(buf, "abcd.");
	strcat(buf, "test>");
	mail(buf, 0, "501 5.1.7", NULL);
	ok(smtp_parse_mail(buf, 0, &m) != NULL &&
	   strstr(smtp_parse_mail(buf, 0, &m), "too long") != NULL,
	   "over-long path says too long");
}

static void
test_rcpt(void)
{
	rcpt("TO:<bob@example.test>", 0, "OK", "bob@example.test", "example.test");
	rcpt("to: <bob@Example.TEST>", 0, "OK", "bob@Example.TEST", "Example.TEST");
	rcpt("TO:<Postmaster>", 0, "OK", "Postmaster", "");
	rcpt("TO:<postmaster>", 0, "OK", "postmaster", "");
	rcpt("TO:<bob>", 0, "501 5.1.3", NULL, NULL);
	rcpt("TO:<>", 0, "501 5.1.3", NULL, NULL);
	rcpt("FROM:<bob@example.test>", 0, "501 5.5.4", NULL, NULL);
	rcpt("TO:<bob@example.test> NOTIFY=NEVER", 0, "555 5.5.4", NULL, NULL);
	rcpt("TO:<b\xc3\xb6" "b@example.test>", 0, "553 5.6.7", NULL, NULL);
	rcpt("TO:<b\xc3\xb6" "b@example.test>", 1, "OK", "b\xc3\xb6" "b@example.test", "example.test");
	rcpt("TO:<bob@example.test", 0, "501 5.1.3", NULL, NULL);
	rcpt("TO:<bob@example.test>\r", 0, "501 5.5.4", NULL, NULL);
}

static void
test_helo(void)
{
	is_str(code(smtp_parse_helo("client.example.test")), "OK", "helo domain");
	is_str(code(smtp_parse_helo("[192.0.2.1]")), "OK", "helo literal");
	is_str(code(smtp_parse_helo("")), "501 5.5.4", "helo empty");
	is_str(code(smtp_parse_helo("a b")), "501 5.5.4", "helo space");
	is_str(code(smtp_parse_helo("a\x01")), "501 5.5.4", "helo control");
	is_str(code(smtp_parse_helo("a(b)")), "501 5.5.4", "helo parens");
	is_str(code(smtp_parse_helo("h\xc3\xb6st")), "501 5.5.4", "helo 8bit");
}

int
main(void)
{
	test_verbs();
	test_mail();
	test_rcpt();
	test_helo();
	return done_testing();
}
