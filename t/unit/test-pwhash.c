/*
 * test-pwhash.c - unit tests for src/pwhash.c: every scheme verifies its
 * own hashes and hashes made by Dovecot's `doveadm pw` (fixtures below),
 * wrong passwords fail, malformed values are errors, and - when doveadm is
 * installed - Dovecot accepts the hashes we make.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pwhash.h"
#include "tap.h"

/* `doveadm pw -s SCHEME -p secret` (Dovecot 2.3.19, Debian 12) */
static const char *const dovecot_fixtures[] = {
	"{SHA512-CRYPT}$6$Q1tvaZVwqoBh0g9t$o8PW6y6v7jB2eM7kBB0FgFeN5HPW3Qwf6EYobapa9pktVVJXn2FC5lB2VE5byIVaViEK7poGgkaXV702j.ZOm/",
	"{SHA256-CRYPT}$5$TBZZhoxf6JFX.UgT$9meLVHol/EOQJu75v/VgmfC05jxAxKmPgTzjRN4qx.7",
	"{BLF-CRYPT}$2y$05$GvDSTPtr6FU93z6NSbeURu5f5kOVv4u/YvcVebUEa5WdlH4S6ADr.",
	"{MD5-CRYPT}$1$mgGBQ5yk$gdUMt9f./hjzegjLQ1jRY0",
	"{PLAIN}secret",
	/* stored SCRAM secrets: doveadm pw -s SCRAM-SHA-256 / SCRAM-SHA-1 */
	"{SCRAM-SHA-256}4096,pXktsWCrsWiS6KT3T52Omg==,CwB5ICGFpQ/eu6gsQ5oAnGLvgiTEHljRqzQG2FiMDe8=,0P+x7Zk7KLJ/2Za/af1GD6teQtW8saZSo7MDShe6ot8=",
	"{SCRAM-SHA-1}4096,8lQ+F/OlD9844PWPhp4fKQ==,BdJ9SRhSW0XD6pjd3ogcHNAagp4=,zWothRukKkEmhPmjNkEPUR+ksN4=",
#ifdef HAVE_ARGON2
	"{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$aR4o0ZtJo/wVW596JSBfrQ$eA6euDpKPFS0Yqw6KBXzgm0TRczHhmwVta+cX6VKllA",
#endif
};

static const char *const make_schemes[] = {
	"SHA512-CRYPT", "SHA256-CRYPT", "BLF-CRYPT", "PLAIN",
	"SCRAM-SHA-256", "SCRAM-SHA-1",
#ifdef HAVE_ARGON2
	"ARGON2ID",
#endif
};

/* doveadm_accepts - `doveadm pw -t HASH -p PASSWORD` exit status 0? */
static int
doveadm_accepts(const char *hash, const char *password)
{
	char cmd[1024];
	int rc;

	snprintf(cmd, sizeof(cmd), "doveadm pw -t '%s' -p '%s' >/dev/null 2>&1",
	    hash, password);
	rc = system(cmd);
	return rc == 0;
}

int
main(void)
{
	size_t i;
	bool have_doveadm = access("/usr/bin/doveadm", X_OK) == 0;

	for (i = 0; i < sizeof(dovecot_fixtures) / sizeof(dovecot_fixtures[0]); i++) {
		const char *h = dovecot_fixtures[i];
		is_int(pwhash_verify(h, "secret"), PWHASH_OK, "doveadm hash verifies: %.20s", h);
		is_int(pwhash_verify(h, "Secret"), PWHASH_MISMATCH, "wrong password fails: %.20s", h);
		is_int(pwhash_verify(h, ""), PWHASH_MISMATCH, "empty password fails: %.20s", h);
	}

	/* malformed stored SCRAM secrets are errors, never a match */
	is_int(pwhash_verify("{SCRAM-SHA-256}4096,pXktsWCrsWiS6KT3T52Omg==,CwB5ICGFpQ", "secret"),
	    PWHASH_ERROR, "SCRAM: missing field");
	is_int(pwhash_verify("{SCRAM-SHA-256}0,pXktsWCrsWiS6KT3T52Omg==,CwB5ICGFpQ/eu6gsQ5oAnGLvgiTEHljRqzQG2FiMDe8=,0P+x7Zk7KLJ/2Za/af1GD6teQtW8saZSo7MDShe6ot8=", "secret"),
	    PWHASH_ERROR, "SCRAM: zero iterations");
	is_int(pwhash_verify("{SCRAM-SHA-256}99999999,pXktsWCrsWiS6KT3T52Omg==,CwB5ICGFpQ/eu6gsQ5oAnGLvgiTEHljRqzQG2FiMDe8=,0P+x7Zk7KLJ/2Za/af1GD6teQtW8saZSo7MDShe6ot8=", "secret"),
	    PWHASH_ERROR, "SCRAM: absurd iteration count refused");
	is_int(pwhash_verify("{SCRAM-SHA-1}4096,8lQ+F/OlD9844PWPhp4fKQ==,CwB5ICGFpQ/eu6gsQ5oAnGLvgiTEHljRqzQG2FiMDe8=,zWothRukKkEmhPmjNkEPUR+ksN4=", "secret"),
	    PWHASH_ERROR, "SCRAM: key of the wrong length");
	is_int(pwhash_verify("{SCRAM-SHA-1}4096,8lQ+F/OlD9844PWPhp4fKQ==,BdJ9SRhSW0XD6pjd3ogcHNAagp4=,zWothRukKkEmhPmjNkEPUR+ksN4=,x", "secret"),
	    PWHASH_ERROR, "SCRAM: too many fields");
	is_int(pwhash_verify("{SCRAM-SHA-1}4096,8lQ+F/OlD9844PWPhp4fKQ==,BdJ9SRhSW0XD6pjd3ogcHNAagp4!,zWothRukKkEmhPmjNkEPUR+ksN4=", "secret"),
	    PWHASH_ERROR, "SCRAM: bad base64");

	/* stored SCRAM secrets in Cyrus' authPassword form, for SCRAM logins */
	{
		char *sec = pwhash_scram_secret("{SCRAM-SHA-256}4096,pXktsWCrsWiS6KT3T52Omg==,CwB5ICGFpQ/eu6gsQ5oAnGLvgiTEHljRqzQG2FiMDe8=,0P+x7Zk7KLJ/2Za/af1GD6teQtW8saZSo7MDShe6ot8=",
		    "SCRAM-SHA-256");
		is_str(sec ? sec : "(null)", "SCRAM-SHA-256$4096:pXktsWCrsWiS6KT3T52Omg==$CwB5ICGFpQ/eu6gsQ5oAnGLvgiTEHljRqzQG2FiMDe8=:0P+x7Zk7KLJ/2Za/af1GD6teQtW8saZSo7MDShe6ot8=",
		    "scram secret: SCRAM-SHA-256 in authPassword form");
		free(sec);
		sec = pwhash_scram_secret("{SCRAM-SHA-1}4096,8lQ+F/OlD9844PWPhp4fKQ==,BdJ9SRhSW0XD6pjd3ogcHNAagp4=,zWothRukKkEmhPmjNkEPUR+ksN4=",
		    "scram-sha-1");
		is_str(sec ? sec : "(null)", "SCRAM-SHA-1$4096:8lQ+F/OlD9844PWPhp4fKQ==$BdJ9SRhSW0XD6pjd3ogcHNAagp4=:zWothRukKkEmhPmjNkEPUR+ksN4=",
		    "scram secret: SCRAM-SHA-1, mechanism name case-insensitive");
		free(sec);
		ok(pwhash_scram_secret("{SCRAM-SHA-1}4096,8lQ+F/OlD9844PWPhp4fKQ==,BdJ9SRhSW0XD6pjd3ogcHNAagp4=,zWothRukKkEmhPmjNkEPUR+ksN4=",
		    "SCRAM-SHA-256") == NULL, "scram secret: other hash: none");
		ok(pwhash_scram_secret("{PLAIN}secret", "SCRAM-SHA-256") == NULL,
		    "scram secret: {PLAIN}: none");
		ok(pwhash_scram_secret("{SCRAM-SHA-256}4096,pXktsWCrsWiS6KT3T52Omg==,CwB5ICGFpQ", "SCRAM-SHA-256") == NULL,
		    "scram secret: malformed: none");
		ok(pwhash_scram_secret("{SCRAM-SHA-256}0,pXktsWCrsWiS6KT3T52Omg==,CwB5ICGFpQ/eu6gsQ5oAnGLvgiTEHljRqzQG2FiMDe8=,0P+x7Zk7KLJ/2Za/af1GD6teQtW8saZSo7MDShe6ot8=", "SCRAM-SHA-256") == NULL,
		    "scram secret: zero iterations: none");
	}

	for (i = 0; i < sizeof(make_schemes) / sizeof(make_schemes[0]); i++) {
		const char *s = make_schemes[i];
		char *h = pwhash_make(s, "p4ss word");
		char prefix[40];

		ok(h != NULL, "make %s", s);
		if (h == NULL)
			continue;
		snprintf(prefix, sizeof(prefix), "{%s}", s);
		ok(strncmp(h, prefix, strlen(prefix)) == 0, "%s hash has its {SCHEME}", s);
		is_int(pwhash_verify(h, "p4ss word"), PWHASH_OK, "%s: own hash verifies", s);
		is_int(pwhash_verify(h, "p4ss word "), PWHASH_MISMATCH, "%s: wrong password fails", s);
		if (have_doveadm)
			ok(doveadm_accepts(h, "p4ss word"), "%s: doveadm pw -t accepts our hash", s);
		free(h);
	}
	{
		char *a = pwhash_make("SHA512-CRYPT", "x"), *b = pwhash_make("SHA512-CRYPT", "x");
		ok(a && b && strcmp(a, b) != 0, "salts differ between hashes");
		ok(a && strncmp(a, "{SHA512-CRYPT}$6$", 17) == 0 && strstr(a, "rounds=") == NULL,
		    "SHA512-CRYPT uses the default 5000 rounds like Dovecot");
		free(a);
		free(b);
		a = pwhash_make("BLF-CRYPT", "x");
		ok(a && strncmp(a, "{BLF-CRYPT}$2y$10$", 18) == 0, "BLF-CRYPT cost 10");
		free(a);
	}

	/* lower-case scheme names and bare crypt strings */
	is_int(pwhash_verify("{sha512-crypt}$6$Q1tvaZVwqoBh0g9t$o8PW6y6v7jB2eM7kBB0FgFeN5HPW3Qwf6EYobapa9pktVVJXn2FC5lB2VE5byIVaViEK7poGgkaXV702j.ZOm/", "secret"),
	    PWHASH_OK, "scheme name is case-insensitive");
	is_int(pwhash_verify("$5$TBZZhoxf6JFX.UgT$9meLVHol/EOQJu75v/VgmfC05jxAxKmPgTzjRN4qx.7", "secret"),
	    PWHASH_OK, "bare $5$ crypt string verifies");
	is_int(pwhash_verify("{CLEAR}secret", "secret"), PWHASH_OK, "CLEAR is PLAIN");

	/* errors */
	is_int(pwhash_verify("{NOPE}abc", "secret"), PWHASH_ERROR, "unknown scheme is an error");
	is_int(pwhash_verify("{SHA512-CRYPT", "secret"), PWHASH_ERROR, "missing '}' is an error");
	is_int(pwhash_verify("secret", "secret"), PWHASH_ERROR, "no scheme, not crypt: error");
	is_int(pwhash_verify("{SHA512-CRYPT}", "secret"), PWHASH_ERROR, "empty hash is an error");
	is_int(pwhash_verify("{SHA512-CRYPT}$6$", "secret"), PWHASH_ERROR, "truncated hash is an error");
	is_int(pwhash_verify("{BLF-CRYPT}$2y$99$abc", "secret"), PWHASH_ERROR, "bad cost is an error");
#ifdef HAVE_ARGON2
	is_int(pwhash_verify("{ARGON2ID}$argon2id$v=19$garbage", "secret"), PWHASH_ERROR,
	    "malformed ARGON2ID is an error");
#endif
	ok(pwhash_make("NOPE", "x") == NULL, "make: unknown scheme");
	ok(pwhash_make("MD5-CRYPT", "x") == NULL, "make: verify-only scheme refused");
	ok(pwhash_make("PLAIN", "a:b") == NULL, "make: PLAIN with ':' refused (passwd-file field)");

	/* helpers */
	ok(pwhash_scheme_known("SHA512-CRYPT"), "known: SHA512-CRYPT");
	ok(pwhash_scheme_known("blf-crypt"), "known: blf-crypt (case)");
	ok(!pwhash_scheme_known("SSHA"), "not known: SSHA");
	is_str(pwhash_plaintext("{PLAIN}pw"), "pw", "plaintext of {PLAIN}");
	is_str(pwhash_plaintext("{clear}pw"), "pw", "plaintext of {clear}");
	ok(pwhash_plaintext("{SHA512-CRYPT}$6$x$y") == NULL, "no plaintext of a hash");
	ok(pwhash_scheme_known(pwhash_default_scheme()), "default scheme is known");
#ifdef HAVE_ARGON2
	is_str(pwhash_default_scheme(), "ARGON2ID", "default is ARGON2ID with libargon2");
#endif
	return done_testing();
}
