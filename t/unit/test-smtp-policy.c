/*
 * test-smtp-policy.c - unit tests of src/smtp-policy.c beyond the golden
 * files (t/unit/test-relay-policy.c): domain matching, the PENDING
 * protocol of the user-existence callback, and the From: header check
 * with the RFC 5322 address-list parser (smtp_parse_header_addrs), and
 * the sender_logins file parser (src/sender-logins.c).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "sender-logins.h"
#include "smtp-parse.h"
#include "smtp-policy.h"
#include "tap.h"

static const char *pending_answer;   /* name that has an answer, or NULL */

/* Knows nothing until told: like the session before a userdb answer. */
static enum policy_user
pending_user(void *ctx, const char *user)
{
	(void)ctx;
	if (pending_answer && strcmp(user, pending_answer) == 0)
		return POLICY_USER_UNKNOWN;
	return POLICY_USER_PENDING;
}

/* Load a sender_logins file with text; NULL and *err on failure. */
static struct sender_logins *
sl_load(const char *text, char **err)
{
	char path[] = "/tmp/msagate-sl-XXXXXX";
	int fd = mkstemp(path);
	struct sender_logins *m;

	if (fd < 0 || write(fd, text, strlen(text)) < 0)
		return NULL;
	close(fd);
	m = sender_logins_load(path, err);
	unlink(path);
	return m;
}

static int
addrs(const char *v, struct smtp_addr *out)
{
	return smtp_parse_header_addrs(v, out, SMTP_HDR_ADDRS_MAX);
}

/* policy_from_header on one value; "OK" or the first 9 characters. */
static const char *
from_hdr(struct policy_client *pc, const char *value)
{
	static char out[16];
	char list[1024], buf[600];
	size_t n = strlen(value);

	memcpy(list, value, n);
	list[n] = '\0';
	list[n + 1] = '\0';
	if (policy_from_header(pc, value ? list : NULL, buf, sizeof(buf)) == POLICY_OK)
		return "OK";
	snprintf(out, sizeof(out), "%.9s", buf);
	return out;
}

int
main(void)
{
	static char *local[] = { "example.test", "Other.Test." };
	struct msagate_config cfg;
	struct policy_client pc;
	struct smtp_addr a[SMTP_HDR_ADDRS_MAX];
	struct smtp_rcpt_args r;
	struct sockaddr_in sin;
	char buf[600];

	memset(&cfg, 0, sizeof(cfg));
	cfg.relay.local_domains = local;
	cfg.relay.n_local_domains = 2;
	cfg.relay.recipient_delimiter = "+";
	cfg.relay.check_from_header = true;

	ok(smtp_domain_in("EXAMPLE.test", local, 2), "domain match is case-insensitive");
	ok(smtp_domain_in("example.test.", local, 2), "a trailing dot is ignored");
	ok(smtp_domain_in("other.test", local, 2), "... on the configured side too");
	ok(!smtp_domain_in("sub.example.test", local, 2), "subdomains are not the domain");
	ok(!smtp_domain_in("[127.0.0.1]", local, 2), "address literals never match");
	ok(!smtp_domain_in("", local, 2), "empty domain never matches");
	ok(!smtp_domain_in(".", local, 2), "a lone dot never matches");
	ok(!smtp_domain_in("example.test", local, 0), "empty list");

	/* PENDING: full address first, then the bare name */
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	inet_pton(AF_INET, "198.51.100.1", &sin.sin_addr);
	memset(&pc, 0, sizeof(pc));
	pc.cfg = &cfg;
	pc.role = LISTEN_RELAY;
	pc.peer = (struct sockaddr *)&sin;
	pc.user_exists = pending_user;
	ok(smtp_parse_rcpt("TO:<Bob+Tag@Example.Test>", false, &r) == NULL, "parse rcpt");
	is_int(policy_rcpt(&pc, &r.to, buf, sizeof(buf)), POLICY_PENDING, "unknown user: PENDING");
	is_str(buf, "bob@example.test", "first lookup: lower-cased address without +tag");
	pending_answer = "bob@example.test";
	is_int(policy_rcpt(&pc, &r.to, buf, sizeof(buf)), POLICY_PENDING, "then PENDING again");
	is_str(buf, "bob", "second lookup: the bare name");

	/* header address lists */
	is_int(addrs("alice@example.test", a), 1, "bare addr-spec");
	is_str(a[0].addr, "alice@example.test", "... its address");
	is_int(addrs(" Alice <alice@example.test>", a), 1, "name-addr");
	is_int(addrs("\"Doe, Alice\" <alice@example.test>, bob@example.test (Bob)", a), 2,
	       "quoted comma, comment");
	is_str(a[1].addr, "bob@example.test", "... second address");
	is_int(addrs("=?utf-8?q?x?= <alice@example.test>", a), 1, "encoded word name");
	is_int(addrs("team: alice@example.test, bob@example.test;", a), 2, "group");
	is_int(addrs("undisclosed-recipients:;", a), 0, "empty group: no address");
	is_int(addrs("<@route.test:alice@example.test>", a), 1, "obsolete route dropped");
	is_str(a[0].addr, "alice@example.test", "... final address");
	is_int(addrs("Alice alice@example.test", a), -1, "name without brackets");
	is_int(addrs("<alice@example.test", a), -1, "unterminated <");
	is_int(addrs("(comment alice@example.test", a), -1, "unterminated comment");
	is_int(addrs("<alice@example.test> junk", a), -1, "junk after >");
	is_int(addrs("<a@b.test><c@d.test>", a), -1, "two angle addrs in one mailbox");
	is_int(addrs("<>", a), -1, "<> is no mailbox");
	is_int(addrs("alice", a), -1, "no domain");
	is_int(addrs("a@b.test@c.test", a), -1, "two @");
	is_int(addrs("\"unterminated <a@b.test>", a), -1, "unterminated quote");

	/* From: ownership */
	pc.role = LISTEN_SUBMISSION;
	pc.auth_user = "alice@example.test";
	is_str(from_hdr(&pc, "Alice <alice@example.test>"), "OK", "From: the login");
	is_str(from_hdr(&pc, "alice@EXAMPLE.test"), "OK", "From: domain case");
	is_str(from_hdr(&pc, "Bob <bob@example.test>"), "553 5.7.1", "From: someone else");
	is_str(from_hdr(&pc, "alice@example.test, bob@example.test"), "553 5.7.1",
	       "From: one of two not owned");
	is_str(from_hdr(&pc, "\"alice@example.test\" <bob@example.test>"), "553 5.7.1",
	       "From: display name trick");
	is_str(from_hdr(&pc, "bob@example.test (alice@example.test)"), "553 5.7.1",
	       "From: comment trick");
	is_str(from_hdr(&pc, "Alice <alice@example.test"), "553 5.7.1", "From: malformed");
	is_str(from_hdr(&pc, "undisclosed:;"), "553 5.7.1", "From: no address");
	{
		char b2[600];

		is_int(policy_from_header(&pc, NULL, b2, sizeof(b2)), POLICY_REJECT,
		       "no From: header at all: refused");
	}
	cfg.relay.check_from_header = false;
	is_str(from_hdr(&pc, "Bob <bob@example.test>"), "OK", "check off: not checked");
	cfg.relay.check_from_header = true;
	pc.role = LISTEN_RELAY;
	pc.auth_user = NULL;
	is_str(from_hdr(&pc, "Bob <bob@example.test>"), "OK", "relay listener: not checked");

	/* the sender map file */
	{
		struct sender_logins *m;
		char *err = NULL;
		const char *l;

		m = sl_load("# c\n\n  a@x.test\tu1,u2 ,\tU3\n@X.test u4\n"
		            "b+c@x.test u5\n", &err);
		ok(m != NULL, "sender map loads: %s", err ? err : "ok");
		l = sender_logins_find(m, "A@X.TEST", "+");
		ok(sender_logins_has(l, "u1") && sender_logins_has(l, "u2") &&
		   sender_logins_has(l, "u3") && !sender_logins_has(l, "u4"),
		   "several logins, case-insensitive; the exact key wins over @domain");
		ok(sender_logins_has(sender_logins_find(m, "a+tag@x.test", "+"), "u1"),
		   "+tag stripped");
		ok(sender_logins_has(sender_logins_find(m, "b+c@x.test", "+"), "u5"),
		   "a key with + found as written first");
		ok(sender_logins_has(sender_logins_find(m, "zz@x.test", "+"), "u4"),
		   "@domain entry");
		ok(sender_logins_find(m, "zz@y.test", "+") == NULL, "other domain: none");
		ok(sender_logins_find(m, "zz", "+") == NULL, "no domain: none");
		sender_logins_free(m);
		m = sl_load("a@x.test\n", &err);
		ok(m == NULL && err && strstr(err, ":1: no logins"), "key without logins: %s", err);
		free(err);
		m = sl_load("nodomain u1\n", &err);
		ok(m == NULL && err && strstr(err, ":1: key must be"), "bad key: %s", err);
		free(err);
		m = sl_load("a@x.test u1\nA@X.test u2\n", &err);
		ok(m == NULL && err && strstr(err, "twice"), "duplicate key: %s", err);
		free(err);
		m = sender_logins_load("/nonexistent/map", &err);
		ok(m == NULL && err != NULL, "missing file: %s", err);
		free(err);
	}
	return done_testing();
}
