/*
 * test-smtp-policy.c - unit tests of the SMTP role's relay decision
 * (src/smtp-policy.c): submission vs relay listeners, local and relay
 * domains (case-insensitive), mynetworks, <Postmaster>.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "config.h"
#include "smtp-parse.h"
#include "smtp-policy.h"
#include "smtp-session.h"
#include "tap.h"

static struct msagate_config cfg;
static struct smtp_server srv;
static struct listen_cfg lc_sub = { .role = LISTEN_SUBMISSION, .tls = LISTEN_TLS_STARTTLS };
static struct listen_cfg lc_relay = { .role = LISTEN_RELAY, .tls = LISTEN_TLS_STARTTLS };

static void
session(struct smtp_session *s, const struct listen_cfg *lc, const char *ip,
        unsigned flags)
{
	memset(s, 0, sizeof(*s));
	s->srv = &srv;
	s->lc = lc;
	s->flags = flags;
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&s->peer;

		sin6->sin6_family = AF_INET6;
		inet_pton(AF_INET6, ip, &sin6->sin6_addr);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&s->peer;

		sin->sin_family = AF_INET;
		inet_pton(AF_INET, ip, &sin->sin_addr);
	}
}

/* "OK" or the reply's first 9 characters. */
static const char *
rcpt(struct smtp_session *s, const char *addr)
{
	static char out[16];
	struct smtp_rcpt_args r;
	char args[300], buf[400];
	const char *e;

	snprintf(args, sizeof(args), "TO:<%s>", addr);
	if (smtp_parse_rcpt(args, false, &r) != NULL)
		return "PARSE";
	e = smtp_policy_rcpt(s, &r.to, buf, sizeof(buf));
	if (e == NULL)
		return "OK";
	snprintf(out, sizeof(out), "%.9s", e);
	return out;
}

int
main(void)
{
	static char *local[] = { "example.test" };
	static char *relay[] = { "relayed.test" };
	struct cidr nets[2];
	struct smtp_session s;

	cidr_parse("192.0.2.0/24", &nets[0]);
	cidr_parse("2001:db8::/32", &nets[1]);
	cfg.relay.local_domains = local;
	cfg.relay.n_local_domains = 1;
	cfg.relay.relay_domains = relay;
	cfg.relay.n_relay_domains = 1;
	cfg.relay.mynetworks = nets;
	cfg.relay.n_mynetworks = 2;
	srv.cfg = &cfg;

	session(&s, &lc_sub, "198.51.100.1", SF_TLS | SF_AUTH);
	is_str(rcpt(&s, "bob@anywhere.example"), "OK", "submission, authenticated: any domain");

	session(&s, &lc_relay, "198.51.100.1", 0);
	is_str(rcpt(&s, "bob@example.test"), "OK", "relay: local domain from anyone");
	is_str(rcpt(&s, "bob@EXAMPLE.Test"), "OK", "relay: local domain, case-insensitive");
	is_str(rcpt(&s, "bob@relayed.test"), "OK", "relay: relay_domains from anyone");
	is_str(rcpt(&s, "Postmaster"), "OK", "relay: <Postmaster> is local");
	is_str(rcpt(&s, "bob@foreign.example"), "554 5.7.1", "relay: foreign domain from outside: 554");
	is_str(rcpt(&s, "bob@sub.example.test"), "554 5.7.1", "relay: subdomain is not the domain");

	session(&s, &lc_relay, "192.0.2.77", 0);
	is_str(rcpt(&s, "bob@foreign.example"), "OK", "relay: foreign domain from mynetworks");
	session(&s, &lc_relay, "2001:db8::5", 0);
	is_str(rcpt(&s, "bob@foreign.example"), "OK", "relay: foreign domain from IPv6 mynetworks");
	session(&s, &lc_relay, "2001:db9::5", 0);
	is_str(rcpt(&s, "bob@foreign.example"), "554 5.7.1", "relay: IPv6 outside mynetworks");

	session(&s, &lc_sub, "198.51.100.1", SF_TLS);
	is_str(rcpt(&s, "bob@foreign.example"), "554 5.7.1",
	       "submission without AUTH (never reached: gate) is not an open relay");
	ok(smtp_domain_in("A.B", local, 0) == false, "empty list");
	return done_testing();
}
