/*
 * test-relay-policy.c - the relay-policy golden-file driver (in the style
 * of Postfix's smtpd_check tests): every t/relay/NN-name.in file holds cases
 *
 *     CLIENT_ADDR AUTH MAIL_FROM RCPT_TO -> EXPECTED
 *
 * CLIENT_ADDR an IPv4/IPv6 address, AUTH "none" or the SASL login,
 * MAIL_FROM and RCPT_TO the paths exactly as a client writes them after
 * "MAIL FROM:" / "RCPT TO:" (angle brackets included), EXPECTED "OK" or
 * the reply's code and enhanced code ("554 5.7.1").  The first refusal
 * (MAIL parse, sender policy, RCPT parse, recipient policy) is what is
 * compared.  Directive lines: "listener relay|submission" (default
 * relay).  '#' starts a comment line.  One TAP line per case.
 *
 * The configuration is fixed here; local users come from a fake userdb;
 * aliases and the sender map from t/relay/aliases and
 * t/relay/sender_logins.  The policy functions are the real ones.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "aliases.h"
#include "config.h"
#include "sender-logins.h"
#include "smtp-parse.h"
#include "smtp-policy.h"
#include "tap.h"

#ifndef RELAY_GOLDEN_DIR
#define RELAY_GOLDEN_DIR "t/relay"
#endif

/* The userdb: who exists; "tempfail" users cannot be looked up. */
static enum policy_user
fake_user(void *ctx, const char *user)
{
	static const char *const users[] = {
		"alice@example.test", "bob", "carol@local.test", "dave@example.test",
		"ünicode@example.test",
	};

	(void)ctx;
	if (strncmp(user, "tempfail", 8) == 0)
		return POLICY_USER_TEMPFAIL;
	for (size_t i = 0; i < sizeof(users) / sizeof(users[0]); i++)
		if (strcmp(users[i], user) == 0)
			return POLICY_USER_EXISTS;
	return POLICY_USER_UNKNOWN;
}

static void
set_addr(struct sockaddr_storage *ss, const char *ip)
{
	memset(ss, 0, sizeof(*ss));
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		if (inet_pton(AF_INET6, ip, &sin6->sin6_addr) != 1)
			ss->ss_family = AF_UNSPEC;
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		if (inet_pton(AF_INET, ip, &sin->sin_addr) != 1)
			ss->ss_family = AF_UNSPEC;
	}
}

/* The first refusal for one case ("OK" when none) into out. */
static void
run_case(struct policy_client *pc, const char *from, const char *to,
         char *out, size_t olen)
{
	struct smtp_mail_args m;
	struct smtp_rcpt_args r;
	char args[600], buf[600];
	const char *e;

	snprintf(args, sizeof(args), "FROM:%s SMTPUTF8", from);
	if ((e = smtp_parse_mail(args, 0, &m)) != NULL) {
		snprintf(out, olen, "%.9s", e);
		return;
	}
	if (policy_sender(pc, &m.from, buf, sizeof(buf)) != POLICY_OK) {
		snprintf(out, olen, "%.9s", buf);
		return;
	}
	snprintf(args, sizeof(args), "TO:%s", to);
	if ((e = smtp_parse_rcpt(args, true, &r)) != NULL) {
		snprintf(out, olen, "%.9s", e);
		return;
	}
	switch (policy_rcpt(pc, &r.to, buf, sizeof(buf))) {
	case POLICY_OK:
		snprintf(out, olen, "OK");
		break;
	case POLICY_PENDING:
		snprintf(out, olen, "PENDING");
		break;
	default:
		snprintf(out, olen, "%.9s", buf);
	}
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
run_file(struct policy_client *pc, const char *path, const char *base)
{
	FILE *f = fopen(path, "r");
	char line[1024];
	int lineno = 0;
	struct sockaddr_storage peer;

	if (f == NULL) {
		ok(0, "open %s", path);
		return;
	}
	pc->role = LISTEN_RELAY;
	pc->peer = (struct sockaddr *)&peer;
	while (fgets(line, sizeof(line), f) != NULL) {
		char ip[64], auth[128], from[400], to[400], arrow[8], want[32], got[32];
		char *p = line;
		int n;

		lineno++;
		line[strcspn(line, "\r\n")] = '\0';
		p += strspn(p, " \t");
		if (*p == '\0' || *p == '#')
			continue;
		if (strncmp(p, "listener ", 9) == 0) {
			pc->role = strcmp(p + 9, "submission") == 0 ?
			    LISTEN_SUBMISSION : LISTEN_RELAY;
			continue;
		}
		n = sscanf(p, "%63s %127s %399s %399s %7s %31[^\n]", ip, auth, from, to,
		           arrow, want);
		if (n != 6 || strcmp(arrow, "->") != 0) {
			ok(0, "%s:%d: malformed case", base, lineno);
			continue;
		}
		set_addr(&peer, ip);
		pc->auth_user = strcmp(auth, "none") == 0 ? NULL : auth;
		run_case(pc, from, to, got, sizeof(got));
		if (!ok(strcmp(got, want) == 0, "%s:%d: %s %s %s %s %s -> %s", base,
		        lineno, pc->role == LISTEN_RELAY ? "relay" : "submission", ip,
		        auth, from, to, want))
			printf("#   got: %s\n", got);
	}
	fclose(f);
}

int
main(void)
{
	static char *local[] = { "example.test", "Local.Test" };
	static char *relay[] = { "relayed.test" };
	static const char *nets_s[] = { "127.0.0.0/8", "192.0.2.0/24", "::1/128",
	                                "2001:db8::/32" };
	struct cidr nets[4];
	struct msagate_config cfg;
	struct policy_client pc;
	struct aliases *al;
	struct sender_logins *sl;
	char *err = NULL, *names[64];
	size_t n_names = 0;
	DIR *d;
	struct dirent *de;

	memset(&cfg, 0, sizeof(cfg));
	for (size_t i = 0; i < 4; i++)
		if (cidr_parse(nets_s[i], &nets[i]) != 0)
			return 2;
	cfg.relay.local_domains = local;
	cfg.relay.n_local_domains = 2;
	cfg.relay.relay_domains = relay;
	cfg.relay.n_relay_domains = 1;
	cfg.relay.mynetworks = nets;
	cfg.relay.n_mynetworks = 4;
	cfg.relay.recipient_delimiter = "+";

	al = aliases_load(RELAY_GOLDEN_DIR "/aliases", &err);
	ok(al != NULL, "aliases load: %s", err ? err : "ok");
	free(err);
	sl = sender_logins_load(RELAY_GOLDEN_DIR "/sender_logins", &err);
	ok(sl != NULL, "sender_logins load: %s", err ? err : "ok");
	free(err);

	memset(&pc, 0, sizeof(pc));
	pc.cfg = &cfg;
	pc.aliases = al;
	pc.logins = sl;
	pc.user_exists = fake_user;

	if ((d = opendir(RELAY_GOLDEN_DIR)) == NULL) {
		ok(0, "open %s", RELAY_GOLDEN_DIR);
		return done_testing();
	}
	while ((de = readdir(d)) != NULL && n_names < 64) {
		size_t l = strlen(de->d_name);

		if (l > 3 && strcmp(de->d_name + l - 3, ".in") == 0)
			names[n_names++] = strdup(de->d_name);
	}
	closedir(d);
	qsort(names, n_names, sizeof(char *), name_cmp);
	ok(n_names > 0, "golden files found (%zu)", n_names);
	for (size_t i = 0; i < n_names; i++) {
		char path[1024];

		snprintf(path, sizeof(path), "%s/%s", RELAY_GOLDEN_DIR, names[i]);
		run_file(&pc, path, names[i]);
		free(names[i]);
	}

	/* a broken map is never a permit */
	pc.aliases = NULL;
	pc.aliases_broken = true;
	{
		char got[32];
		struct sockaddr_storage peer;

		set_addr(&peer, "198.51.100.7");
		pc.peer = (struct sockaddr *)&peer;
		pc.role = LISTEN_RELAY;
		pc.auth_user = NULL;
		run_case(&pc, "<x@foreign.test>", "<alice@example.test>", got, sizeof(got));
		is_str(got, "451 4.3.0", "aliases unreadable: local recipients deferred");
		pc.aliases_broken = false;
		pc.user_exists = NULL;
		run_case(&pc, "<x@foreign.test>", "<alice@example.test>", got, sizeof(got));
		is_str(got, "451 4.3.0", "no userdb: local recipients deferred");
		pc.user_exists = fake_user;
		pc.logins = NULL;
		pc.logins_broken = true;
		pc.role = LISTEN_SUBMISSION;
		pc.auth_user = "alice@example.test";
		run_case(&pc, "<sales@example.test>", "<x@foreign.test>", got, sizeof(got));
		is_str(got, "451 4.3.0", "sender map unreadable: other senders deferred");
		run_case(&pc, "<alice@example.test>", "<x@foreign.test>", got, sizeof(got));
		is_str(got, "OK", "sender map unreadable: the login itself still works");
	}
	aliases_free(al);
	sender_logins_free(sl);
	return done_testing();
}
