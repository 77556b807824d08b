/*
 * test-passwd-file.c - unit tests for the passwd-file backend and the
 * backend registry/chain: parsing (comments, blank lines, optional fields,
 * bad lines reported as PATH:LINE, limits), lookups (domains, default
 * domain, unknown users), reload on change and on request, and the
 * not-yet-implemented drivers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "log.h"
#include "tap.h"

static char dir[] = "/tmp/msagate-test-pf.XXXXXX";

static char *
write_file(const char *name, const char *content)
{
	char *path;
	FILE *fp;

	if (asprintf(&path, "%s/%s", dir, name) < 0)
		abort();
	fp = fopen(path, "w");
	if (fp == NULL)
		abort();
	fputs(content, fp);
	fclose(fp);
	return path;
}

/* check_msg - backend_check on a file with `content`; the error or NULL. */
static char *
check_msg(const char *content)
{
	struct backend_cfg b = { .driver = "passwd-file" };
	char *err = NULL;

	b.path = write_file("check", content);
	if (backend_check(&b, &err) == 0) {
		free(err);
		err = NULL;
	}
	free(b.path);
	return err;
}

static void
test_check(void)
{
	char *e, want[256];
	struct backend_cfg b = { .driver = "passwd-file" };
	char *longline;

	e = check_msg("# comment\n\n   \n  # indented comment\nalice:{PLAIN}x\n"
	    "bob@example.test:{SHA512-CRYPT}$6$Q1tvaZVwqoBh0g9t$o8PW6y6v7jB2eM7kBB0FgFeN5HPW3Qwf6EYobapa9pktVVJXn2FC5lB2VE5byIVaViEK7poGgkaXV702j.ZOm/:1000:1000:Bob:/home/bob:/bin/sh:nodelay allow_nets=127.0.0.1\n"
	    "carol:$2y$05$GvDSTPtr6FU93z6NSbeURu5f5kOVv4u/YvcVebUEa5WdlH4S6ADr.\nempty:\n");
	ok(e == NULL, "valid file passes the check%s%s", e ? ": " : "", e ? e : "");
	free(e);
	e = NULL;

	e = check_msg("alice:{PLAIN}x\nnocolon\n");
	snprintf(want, sizeof(want), "%s/check:2: missing ':' after the user name", dir);
	is_str(e, want, "missing colon reported as PATH:LINE");
	free(e);
	e = NULL;

	e = check_msg("alice:{NOSUCH}x\n");
	ok(e && strstr(e, "check:1: unknown password scheme"), "unknown scheme: %s", e ? e : "");
	free(e);
	e = NULL;

	e = check_msg(":{PLAIN}x\n");
	ok(e && strstr(e, "check:1: empty user name"), "empty user: %s", e ? e : "");
	free(e);
	e = NULL;

	e = check_msg("al ice:{PLAIN}x\n");
	ok(e && strstr(e, "check:1: invalid user name"), "space in user: %s", e ? e : "");
	free(e);
	e = NULL;

	e = check_msg("alice:{PLAIN}x\nalice:{PLAIN}y\n");
	ok(e && strstr(e, "check:2: user listed more than once"), "duplicate: %s", e ? e : "");
	free(e);
	e = NULL;

	e = check_msg("alice:secret\n");
	ok(e && strstr(e, "check:1: password without a {SCHEME} prefix"), "no scheme: %s", e ? e : "");
	free(e);
	e = NULL;

	e = check_msg("alice:{SHA512-CRYPT}$6$abc$tooshort\n");
	ok(e && strstr(e, "check:1: malformed or truncated password hash"), "truncated: %s", e ? e : "");
	free(e);
	e = NULL;

	e = check_msg("alice:{SHA512-CRYPT}$6$rounds=5000$Q1tvaZVwqoBh0g9t$o8PW6y6v7jB2eM7kBB0FgFeN5HPW3Qwf6EYobapa9pktVVJXn2FC5lB2VE5byIVaViEK7poGgkaXV702j.ZOm/\n"
	    "bob:$2y$05$GvDSTPtr6FU93z6NSbeURu5f5kOVv4u/YvcVebUEa5WdlH4S6ADr.\n");
	ok(e == NULL, "rounds= and bare $2y$ hashes accepted%s%s", e ? ": " : "", e ? e : "");
	free(e);
	e = NULL;

	e = check_msg("alice:{PLAIN\n");
	ok(e && strstr(e, "check:1: password has '{' but no '}'"), "no brace: %s", e ? e : "");
	free(e);
	e = NULL;

	longline = malloc(5000);
	memset(longline, 'a', 4999);
	longline[4999] = '\0';
	longline[3] = ':';
	{
		char *content;
		if (asprintf(&content, "ok:{PLAIN}x\n%s\n", longline) < 0)
			abort();
		e = check_msg(content);
		free(content);
	}
	ok(e && strstr(e, "check:2: line too long"), "long line: %s", e ? e : "");
	free(e);
	e = NULL;
	free(longline);

	b.path = "/nonexistent/users";
	ok(backend_check(&b, &e) != 0 && e && strstr(e, "/nonexistent/users: No such file"),
	    "missing file reported: %s", e ? e : "");
	free(e);
	e = NULL;

	b.path = NULL;
	ok(backend_check(&b, &e) != 0 && e && strstr(e, "needs a path"), "no path: %s", e ? e : "");
	free(e);
	e = NULL;
}

static void
test_registry(void)
{
	struct backend_cfg pam = { .driver = "pam", .service = "../x", .workers = 1 };
	struct backend_cfg dc = { .driver = "dovecot", .socket = "/run/x", .workers = 4 };
	struct backend_cfg nope = { .driver = "ldap" };
	struct backend_chain *c;
	char *e = NULL;

	ok(backend_find("passwd-file") != NULL, "passwd-file registered");
	ok(backend_find("pam") != NULL, "pam registered");
	ok(backend_find("dovecot") != NULL, "dovecot registered");
#ifdef HAVE_PAM
	ok(backend_check(&pam, &e) != 0 && e && strstr(e, "invalid service name"),
	    "pam: %s", e ? e : "");
#else
	ok(backend_check(&pam, &e) != 0 && e && strstr(e, "not compiled in"),
	    "pam: %s", e ? e : "");
#endif
	free(e);
	e = NULL;
	ok(backend_check(&dc, &e) == 0, "dovecot: socket need not exist yet");
	free(e);
	e = NULL;
	ok(backend_check(&nope, &e) != 0 && e && strstr(e, "unknown auth backend driver 'ldap'"),
	    "unknown driver: %s", e ? e : "");
	free(e);
	e = NULL;
	c = backend_chain_new(&nope, 1, &e);
	ok(c == NULL && e && strstr(e, "unknown auth backend driver"),
	    "chain refuses an unknown driver: %s", e ? e : "");
	free(e);
	e = NULL;
}

static void
test_lookups(void)
{
	struct backend_cfg b[2] = {
		{ .driver = "passwd-file" }, { .driver = "passwd-file" },
	};
	struct backend_chain *c;
	struct backend_reply r;
	char *e = NULL, *plain = NULL;

	b[0].path = write_file("users",
	    "# users\n"
	    "alice:{PLAIN}secret\n"
	    "Bob@Example.TEST:{SHA512-CRYPT}$6$Q1tvaZVwqoBh0g9t$o8PW6y6v7jB2eM7kBB0FgFeN5HPW3Qwf6EYobapa9pktVVJXn2FC5lB2VE5byIVaViEK7poGgkaXV702j.ZOm/::::::nodelay quota_rule=*:storage=1G\n"
	    "nopass:\n"
	    "broken line\n"
	    "badhash:{CRYPT}$9$unknown-method$x\n");
	b[1].path = write_file("users2", "alice:{PLAIN}other\ncarl:{PLAIN}pw2\n");
	c = backend_chain_new(b, 2, &e);
	ok(c != NULL, "chain of two passwd-files: %s", e ? e : "ok");
	free(e);
	e = NULL;
	if (c == NULL)
		return;

	is_int(backend_chain_verify_plain(c, "alice", "secret", &r), BACKEND_OK, "alice ok");
	is_str(r.user, "alice", "canonical name");
	is_int(backend_chain_verify_plain(c, "alice", "other", &r), BACKEND_MISMATCH,
	    "first backend that knows the user decides");
	is_int(backend_chain_verify_plain(c, "carl", "pw2", &r), BACKEND_OK, "second backend");
	is_int(backend_chain_verify_plain(c, "zed", "x", &r), BACKEND_UNKNOWN_USER, "unknown user");
	is_int(backend_chain_verify_plain(c, "Alice", "secret", &r), BACKEND_UNKNOWN_USER,
	    "local part is case-sensitive");
	is_int(backend_chain_verify_plain(c, "Bob@example.test", "secret", &r), BACKEND_OK,
	    "domain is case-insensitive");
	is_str(r.user, "Bob@example.test", "domain lower-cased in the canonical name");
	is_str(r.extra, "quota_rule=*:storage=1G", "extra fields returned (internal nodelay left out)");
	is_int(backend_chain_verify_plain(c, "bob@example.test", "secret", &r), BACKEND_UNKNOWN_USER,
	    "local part of a domain user is case-sensitive");
	is_int(backend_chain_verify_plain(c, "nopass", "", &r), BACKEND_MISMATCH,
	    "empty password field never matches");
	is_int(backend_chain_verify_plain(c, "badhash", "x", &r), BACKEND_TEMPFAIL,
	    "malformed hash is a temporary failure, not a mismatch");
	is_int(backend_chain_verify_plain(c, "bad user", "x", &r), BACKEND_UNKNOWN_USER,
	    "invalid name is unknown");

	ok(backend_chain_can_lookup_plain(c), "passwd-file can hand out plaintext");
	is_int(backend_chain_lookup_plain(c, "alice", &plain, &r), BACKEND_OK, "lookup_plain alice");
	is_str(plain, "secret", "plaintext credential");
	free(plain);
	is_int(backend_chain_lookup_plain(c, "Bob@example.test", &plain, &r), BACKEND_MISMATCH,
	    "hashed user has no plaintext");
	ok(plain == NULL, "no plaintext returned");
	is_int(backend_chain_lookup_plain(c, "zed", &plain, &r), BACKEND_UNKNOWN_USER,
	    "lookup_plain unknown");

	/* change the file: noticed on lookup (after the 1 s stat interval) */
	free(write_file("users2", "carl:{PLAIN}pw3\n"));
	sleep(1);
	usleep(100 * 1000);
	is_int(backend_chain_verify_plain(c, "carl", "pw3", &r), BACKEND_OK, "changed file re-read");

	/* explicit reload; a broken replacement keeps the old data */
	free(write_file("users2", "carl:{PLAIN}pw4\n"));
	is_int(backend_chain_reload(c), 0, "reload ok");
	is_int(backend_chain_verify_plain(c, "carl", "pw4", &r), BACKEND_OK, "reloaded data used");
	unlink(b[1].path);
	is_int(backend_chain_reload(c), 1, "reload of a missing file fails");
	is_int(backend_chain_verify_plain(c, "carl", "pw4", &r), BACKEND_OK,
	    "old data kept when the file vanished");

	backend_chain_free(c);
	free(b[0].path);
	free(b[1].path);
}

static void
test_default_domain(void)
{
	struct backend_cfg b = { .driver = "passwd-file", .default_domain = "Example.Test" };
	struct backend_chain *c;
	struct backend_reply r;
	char *e = NULL;

	b.path = write_file("users3", "dora:{PLAIN}pw\nerik@other.test:{PLAIN}pw\n");
	c = backend_chain_new(&b, 1, &e);
	ok(c != NULL, "chain with default_domain");
	free(e);
	e = NULL;
	if (c == NULL)
		return;
	is_int(backend_chain_verify_plain(c, "dora", "pw", &r), BACKEND_OK, "bare name");
	is_str(r.user, "dora@example.test", "default domain appended");
	is_int(backend_chain_verify_plain(c, "dora@EXAMPLE.test", "pw", &r), BACKEND_OK,
	    "full name matches too");
	is_int(backend_chain_verify_plain(c, "erik@other.test", "pw", &r), BACKEND_OK,
	    "other domains unchanged");
	backend_chain_free(c);
	free(b.path);
}

/* test_extra_fields - nologin and allow_nets refuse like a wrong password,
 * with a reason for the log; internal fields are never handed out. */
static void
test_extra_fields(void)
{
	struct backend_cfg b = { .driver = "passwd-file" };
	struct backend_chain *c;
	struct backend_reply r;
	char *err = NULL, *plain = NULL;
	struct backend_request in4 = { "192.0.2.77", "smtp" };
	struct backend_request out4 = { "198.51.100.1", "smtp" };
	struct backend_request in6 = { "2001:db8::5", "smtp" };
	struct backend_request mapped = { "::ffff:127.0.0.1", "smtp" };
	struct backend_request lo = { "127.0.0.1", "smtp" };
	struct backend_request none = { "", "smtp" };
	struct backend_request bad = { "not-an-ip", "smtp" };

	b.path = write_file("extra",
	    "nl:{PLAIN}pw::::::nologin\n"
	    "nets:{PLAIN}pw::::::allow_nets=192.0.2.0/24,2001:db8::/32,127.0.0.1 quota=1G\n"
	    "bad:{PLAIN}pw::::::allow_nets=192.0.2.1/24\n"
	    "free:{PLAIN}pw:1001:1002::/home/free::nodelay userdb_mail=maildir:~/M userdb_password=x\n");
	c = backend_chain_new(&b, 1, &err);
	ok(c != NULL, "chain with extra fields%s%s", err ? ": " : "", err ? err : "");
	if (c == NULL)
		return;
	is_int(backend_chain_verify_plain_req(c, "nl", "pw", &lo, &r), BACKEND_MISMATCH,
	    "nologin + right password: mismatch");
	is_str(r.reason, "nologin", "nologin reason");
	is_int(backend_chain_verify_plain_req(c, "nl", "wrong", &lo, &r), BACKEND_MISMATCH,
	    "nologin + wrong password: mismatch");
	is_int(backend_chain_lookup_plain_req(c, "nl", &plain, &lo, &r), BACKEND_MISMATCH,
	    "nologin: no credential for CRAM/SCRAM");
	ok(plain == NULL, "nologin: nothing handed out");

	is_int(backend_chain_verify_plain_req(c, "nets", "pw", &in4, &r), BACKEND_OK,
	    "allow_nets: IPv4 inside");
	is_str(r.extra, "quota=1G", "allow_nets not in the reply extra fields");
	is_int(backend_chain_verify_plain_req(c, "nets", "pw", &in6, &r), BACKEND_OK,
	    "allow_nets: IPv6 inside");
	is_int(backend_chain_verify_plain_req(c, "nets", "pw", &lo, &r), BACKEND_OK,
	    "allow_nets: single address");
	is_int(backend_chain_verify_plain_req(c, "nets", "pw", &mapped, &r), BACKEND_OK,
	    "allow_nets: v4-mapped IPv6 address");
	is_int(backend_chain_verify_plain_req(c, "nets", "pw", &out4, &r), BACKEND_MISMATCH,
	    "allow_nets: outside refused");
	is_str(r.reason, "allow_nets", "allow_nets reason");
	is_int(backend_chain_verify_plain_req(c, "nets", "pw", &none, &r), BACKEND_MISMATCH,
	    "allow_nets: unknown rip refused");
	is_int(backend_chain_verify_plain_req(c, "nets", "pw", &bad, &r), BACKEND_MISMATCH,
	    "allow_nets: unparsable rip refused");
	is_int(backend_chain_verify_plain(c, "nets", "pw", &r), BACKEND_MISMATCH,
	    "allow_nets: no request context refused");
	is_int(backend_chain_lookup_plain_req(c, "nets", &plain, &out4, &r), BACKEND_MISMATCH,
	    "allow_nets: credential lookup from outside refused");
	is_int(backend_chain_lookup_plain_req(c, "nets", &plain, &in4, &r), BACKEND_OK,
	    "allow_nets: credential lookup from inside");
	free(plain);
	plain = NULL;
	is_int(backend_chain_verify_plain_req(c, "bad", "pw", &in4, &r), BACKEND_MISMATCH,
	    "allow_nets: invalid network never matches");
	is_int(backend_chain_verify_plain_req(c, "free", "pw", &out4, &r), BACKEND_OK,
	    "no access fields: anywhere");
	is_str(r.extra, "userdb_mail=maildir:~/M userdb_password=x",
	    "nodelay not in the reply extra fields");

	/* userdb lookups */
	is_int(backend_chain_lookup_user(c, "free", &r), BACKEND_OK, "lookup_user: exists");
	is_str(r.user, "free", "lookup_user: canonical name");
	is_str(r.extra, "uid=1001\tgid=1002\thome=/home/free\tmail=maildir:~/M",
	    "lookup_user: uid, gid, home, userdb_ fields, no password");
	is_int(backend_chain_lookup_user(c, "nl", &r), BACKEND_OK,
	    "lookup_user: a nologin user still exists");
	is_str(r.extra, "", "lookup_user: no fields");
	is_int(backend_chain_lookup_user(c, "nobody", &r), BACKEND_UNKNOWN_USER,
	    "lookup_user: unknown");
	is_int(backend_chain_lookup_user(c, "bad name", &r), BACKEND_UNKNOWN_USER,
	    "lookup_user: invalid name is unknown");
	backend_chain_free(c);
	free(b.path);

	/* default_domain applies to userdb lookups too */
	b.path = write_file("extra2", "dd@example.test:{PLAIN}pw\n");
	b.default_domain = "example.test";
	c = backend_chain_new(&b, 1, &err);
	ok(c != NULL, "chain with default_domain");
	if (c != NULL) {
		is_int(backend_chain_lookup_user(c, "dd", &r), BACKEND_OK,
		    "lookup_user: default domain added");
		is_str(r.user, "dd@example.test", "lookup_user: canonical with domain");
		is_int(backend_chain_lookup_user(c, "dd@EXAMPLE.test", &r), BACKEND_OK,
		    "lookup_user: domain case-insensitive");
		is_int(backend_chain_lookup_user(c, "DD@example.test", &r),
		    BACKEND_UNKNOWN_USER, "lookup_user: local part exact");
		backend_chain_free(c);
	}
	free(b.path);
}

/* test_scram - lookup_scram_req: plaintext, stored secret, other hash,
 * access fields. */
static void
test_scram(void)
{
	struct backend_cfg b = { .driver = "passwd-file" };
	struct backend_chain *c;
	struct backend_reply r;
	struct backend_request lo = { "127.0.0.1", "smtp" };
	char *err = NULL, *plain = NULL, *secret = NULL;

	b.path = write_file("scram",
	    "p:{PLAIN}pw\n"
	    "s:{SCRAM-SHA-256}4096,pXktsWCrsWiS6KT3T52Omg==,CwB5ICGFpQ/eu6gsQ5oAnGLvgiTEHljRqzQG2FiMDe8=,0P+x7Zk7KLJ/2Za/af1GD6teQtW8saZSo7MDShe6ot8=\n"
	    "nl:{SCRAM-SHA-256}4096,pXktsWCrsWiS6KT3T52Omg==,CwB5ICGFpQ/eu6gsQ5oAnGLvgiTEHljRqzQG2FiMDe8=,0P+x7Zk7KLJ/2Za/af1GD6teQtW8saZSo7MDShe6ot8=::::::nologin\n"
	    "h:$2y$05$GvDSTPtr6FU93z6NSbeURu5f5kOVv4u/YvcVebUEa5WdlH4S6ADr.\n");
	c = backend_chain_new(&b, 1, &err);
	ok(c != NULL, "chain for SCRAM lookups");
	if (c == NULL) {
		free(err);
		free(b.path);
		return;
	}
	ok(backend_chain_can_lookup_scram(c), "passwd-file can serve SCRAM");
	is_int(backend_chain_lookup_scram_req(c, "p", "SCRAM-SHA-256", &plain, &secret,
	    &lo, &r), BACKEND_OK, "scram lookup: {PLAIN} user");
	ok(plain != NULL && strcmp(plain, "pw") == 0 && secret == NULL,
	    "scram lookup: {PLAIN} user gets the plaintext");
	free(plain);
	is_int(backend_chain_lookup_scram_req(c, "s", "SCRAM-SHA-256", &plain, &secret,
	    &lo, &r), BACKEND_OK, "scram lookup: stored secret");
	ok(plain == NULL && secret != NULL &&
	    strncmp(secret, "SCRAM-SHA-256$4096:pXktsWCrsWiS6KT3T52Omg==$", 44) == 0,
	    "scram lookup: secret in authPassword form");
	free(secret);
	is_int(backend_chain_lookup_scram_req(c, "s", "SCRAM-SHA-1", &plain, &secret,
	    &lo, &r), BACKEND_MISMATCH, "scram lookup: other hash: mismatch");
	ok(plain == NULL && secret == NULL, "scram lookup: nothing handed out");
	is_int(backend_chain_lookup_scram_req(c, "nl", "SCRAM-SHA-256", &plain, &secret,
	    &lo, &r), BACKEND_MISMATCH, "scram lookup: nologin refused");
	is_str(r.reason, "nologin", "scram lookup: reason nologin");
	ok(plain == NULL && secret == NULL, "scram lookup: nologin gets nothing");
	is_int(backend_chain_lookup_scram_req(c, "h", "SCRAM-SHA-256", &plain, &secret,
	    &lo, &r), BACKEND_MISMATCH, "scram lookup: crypt hash: mismatch");
	is_int(backend_chain_lookup_scram_req(c, "zz", "SCRAM-SHA-256", &plain, &secret,
	    &lo, &r), BACKEND_UNKNOWN_USER, "scram lookup: unknown user");
	backend_chain_free(c);
	free(b.path);
}

int
main(void)
{
	log_init("test-passwd-file", true, false, NULL);
	if (mkdtemp(dir) == NULL)
		return 1;
	test_check();
	test_registry();
	test_lookups();
	test_default_domain();
	test_extra_fields();
	test_scram();
	{
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			printf("# could not remove %s\n", dir);
	}
	return done_testing();
}
