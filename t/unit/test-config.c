/*
 * test-config.c - unit tests for src/config.c: defaults, types, unknown
 * keys, CIDR parsing and matching, octal socket modes, FILE:LINE errors.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "tap.h"
#include "config.h"

static char path[] = "/tmp/msagate-test-config-XXXXXX";

static struct msagate_config *
load(const char *text, struct config_errors *errs)
{
	FILE *fp = fopen(path, "w");
	fputs(text, fp);
	fclose(fp);
	memset(errs, 0, sizeof(*errs));
	return config_load(path, errs);
}

static bool
has_error(const struct config_errors *errs, const char *needle, int line)
{
	char prefix[128];
	size_t i;

	snprintf(prefix, sizeof(prefix), "%s:%d: ", path, line);
	for (i = 0; i < errs->n; i++)
		if (strstr(errs->msg[i], needle) &&
		    (line == 0 || strncmp(errs->msg[i], prefix, strlen(prefix)) == 0))
			return true;
	for (i = 0; i < errs->n; i++)
		printf("# error: %s\n", errs->msg[i]);
	return false;
}

#define MIN "tls = { cert = \"/c\"; key = \"/k\"; };\n" \
	"listen = ( { address = \"127.0.0.1\"; port = 587; role = \"submission\"; tls = \"starttls\"; } );\n" \
	"auth = { backends = ( { driver = \"passwd-file\"; path = \"/u\"; } ); };\n"

static void
test_defaults(void)
{
	struct config_errors e;
	struct msagate_config *c = load("hostname = \"mx.example.test\";\n" MIN, &e);

	ok(c != NULL && e.n == 0, "minimal configuration loads without errors");
	if (!c)
		return;
	is_str(c->user, "msagate", "default user");
	is_int(c->relay.message_size_limit, 26214400, "default message_size_limit");
	is_int(c->auth.failure_delay_ms, 2000, "default failure delay 2 s");
	is_int(c->auth.min_time_ms, 0, "default min_time 0: successes answered at once");
	is_int(c->auth.n_mechanisms, 2, "default mechanisms PLAIN LOGIN");
	is_int(c->auth.socket_mode, 0660, "default socket mode 0660");
	is_int(c->smtp.max_line, 512, "default command line limit 512");
	is_int(c->tls.min_protocol, 0x0303, "default min protocol TLSv1.2");
	is_int(c->relay.n_mynetworks, 2, "default mynetworks: loopback v4 and v6");
	is_int(c->listen[0].tls, LISTEN_TLS_STARTTLS, "listener tls starttls");
	config_free(c);
	config_errors_free(&e);
}

static void
test_errors(void)
{
	struct config_errors e;
	struct msagate_config *c;

	c = load("hostname = \"h.example\";\n" MIN "bogus = 1;\n", &e);
	ok(has_error(&e, "unknown key \"bogus\"", 5), "unknown key at its line");
	config_free(c);
	config_errors_free(&e);

	c = load(MIN "relay = { mynetworks = [ \"10.0.0.0/33\", \"10.1.0.0/16\" ]; };\n", &e);
	ok(has_error(&e, "10.0.0.0/33", 4), "bad CIDR prefix reported at its line");
	ok(c && c->relay.n_mynetworks == 1, "the good network is kept");
	config_free(c);
	config_errors_free(&e);

	c = load(MIN "smtp = { max_recipients = \"ten\"; };\n", &e);
	ok(has_error(&e, "must be an integer", 4), "type error reported");
	config_free(c);
	config_errors_free(&e);

	c = load(MIN "smtp = { max_errors = 0; };\n", &e);
	ok(has_error(&e, "out of range", 4), "range error reported");
	config_free(c);
	config_errors_free(&e);

	c = load("listen = ( \n", &e);
	ok(c == NULL && e.n == 1 && has_error(&e, "", 0), "syntax error: NULL and one message");
	config_errors_free(&e);

	c = load(MIN "auth.x = 1;\n", &e);
	ok(c == NULL || e.n > 0, "garbage is refused");
	config_free(c);
	config_errors_free(&e);
}

static void
test_socket_mode(void)
{
	struct config_errors e;
	struct msagate_config *c;

	c = load("tls = { cert = \"/c\"; key = \"/k\"; };\n"
	    "listen = ( { port = 587; tls = \"starttls\"; } );\n"
	    "auth = { socket_mode = 0600; backends = ( { driver = \"pam\"; } ); };\n", &e);
	ok(c && c->auth.socket_mode == 0600, "socket_mode 0600 read as octal");
	config_free(c);
	config_errors_free(&e);
	c = load("tls = { cert = \"/c\"; key = \"/k\"; };\n"
	    "listen = ( { port = 587; tls = \"starttls\"; } );\n"
	    "auth = { socket_mode = 0680; backends = ( { driver = \"pam\"; } ); };\n", &e);
	ok(has_error(&e, "octal", 3), "socket_mode 0680 refused");
	config_free(c);
	config_errors_free(&e);
}

static void
test_cidr(void)
{
	struct cidr c;
	struct sockaddr_in s4 = { .sin_family = AF_INET };
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6 };

	ok(cidr_parse("192.0.2.0/24", &c) == 0, "parse v4 /24");
	inet_pton(AF_INET, "192.0.2.77", &s4.sin_addr);
	ok(cidr_match(&c, (struct sockaddr *)&s4), "192.0.2.77 in 192.0.2.0/24");
	inet_pton(AF_INET, "192.0.3.1", &s4.sin_addr);
	ok(!cidr_match(&c, (struct sockaddr *)&s4), "192.0.3.1 not in 192.0.2.0/24");
	inet_pton(AF_INET6, "::ffff:192.0.2.9", &s6.sin6_addr);
	ok(cidr_match(&c, (struct sockaddr *)&s6), "v4-mapped v6 address matches v4 network");
	ok(cidr_parse("192.0.2.1/24", &c) != 0, "host bits set refused");
	ok(cidr_parse("192.0.2.0/", &c) != 0, "empty prefix refused");
	ok(cidr_parse("300.0.0.0/8", &c) != 0, "bad address refused");
	ok(cidr_parse("127.0.0.1", &c) == 0 && c.prefix == 128, "bare v4 address is /32");
	ok(cidr_parse("2001:db8::/32", &c) == 0, "parse v6 /32");
	inet_pton(AF_INET6, "2001:db8:1::5", &s6.sin6_addr);
	ok(cidr_match(&c, (struct sockaddr *)&s6), "2001:db8:1::5 in 2001:db8::/32");
	inet_pton(AF_INET6, "2001:db9::5", &s6.sin6_addr);
	ok(!cidr_match(&c, (struct sockaddr *)&s6), "2001:db9::5 not in 2001:db8::/32");
	ok(cidr_parse("0.0.0.0/0", &c) == 0, "0.0.0.0/0 parses");
	inet_pton(AF_INET6, "2001:db9::5", &s6.sin6_addr);
	ok(!cidr_match(&c, (struct sockaddr *)&s6), "0.0.0.0/0 does not match IPv6");
}

int
main(void)
{
	int fd = mkstemp(path);
	if (fd < 0)
		return 1;
	close(fd);
	test_defaults();
	test_errors();
	test_socket_mode();
	test_cidr();
	unlink(path);
	return done_testing();
}
