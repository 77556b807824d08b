/*
 * test-smtp-client.c - unit tests of the onward-relay client's parsers
 * (src/deliver-smtp.c): relay.relayhost forms and the credentials file
 * (format, and refusal when group or others may read it).
 */
#include <sys/stat.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deliver-smtp.h"
#include "tap.h"

static void
relayhost(const char *s, const char *want_host, const char *want_port)
{
	char *h = NULL, *p = NULL;
	int r = smtp_parse_relayhost(s, &h, &p);

	if (want_host == NULL) {
		ok(r == -1 && h == NULL && p == NULL, "relayhost \"%s\" refused", s);
		return;
	}
	ok(r == 0, "relayhost \"%s\" parsed", s);
	is_str(h ? h : "(null)", want_host, "host of \"%s\"", s);
	is_str(p ? p : "(null)", want_port, "port of \"%s\"", s);
	free(h);
	free(p);
}

static int
cred(const char *content, mode_t mode, char *user, char *pass, char *why)
{
	char path[] = "/tmp/test-smtp-cred-XXXXXX";
	int fd = mkstemp(path), r;

	if (fd < 0)
		return -2;
	if (write(fd, content, strlen(content)) < 0)
		return -2;
	fchmod(fd, mode);
	close(fd);
	r = smtp_read_credentials(path, user, 128, pass, 128, why, 256);
	unlink(path);
	return r;
}

int
main(void)
{
	char u[128], p[128], why[256];

	relayhost("[127.0.0.1]:2525", "127.0.0.1", "2525");
	relayhost("[smart.example.net]", "smart.example.net", "25");
	relayhost("smart.example.net:587", "smart.example.net", "587");
	relayhost("smart.example.net", "smart.example.net", "25");
	relayhost("[::1]:2525", "::1", "2525");
	relayhost("", NULL, NULL);
	relayhost("[]:25", NULL, NULL);
	relayhost("[host:25", NULL, NULL);
	relayhost("[host]x", NULL, NULL);
	relayhost("host:", NULL, NULL);
	relayhost("host:0", NULL, NULL);
	relayhost("host:65536", NULL, NULL);
	relayhost("host:25x", NULL, NULL);
	relayhost(":25", NULL, NULL);
	relayhost("::1:25", NULL, NULL);

	is_int(cred("relay-user:s3cr:et\n", 0600, u, p, why), 0, "credentials read");
	is_str(u, "relay-user", "user");
	is_str(p, "s3cr:et", "password keeps its colons");
	is_int(cred("relay-user:pw", 0600, u, p, why), 0, "no final newline");
	is_str(p, "pw", "password without newline");
	is_int(cred("relay-user:pw\r\n", 0600, u, p, why), 0, "CRLF line");
	is_str(p, "pw", "CR stripped");
	is_int(cred("relay-user:pw\n", 0640, u, p, why), -1, "group-readable refused");
	ok(strstr(why, "group or others") != NULL && strstr(why, "pw") == NULL,
	    "reason given, no secret: %s", why);
	is_int(cred("relay-user:pw\n", 0604, u, p, why), -1, "world-readable refused");
	is_int(cred("no-colon\n", 0600, u, p, why), -1, "no colon refused");
	is_int(cred(":pw\n", 0600, u, p, why), -1, "empty user refused");
	is_int(smtp_read_credentials("/nonexistent/cred", u, 128, p, 128, why, 256), -1,
	    "missing file");
	return done_testing();
}
