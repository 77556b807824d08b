/*
 * test-auth-server.c - the auth role's protocol server end to end over a
 * socketpair, with Cyrus SASL and a real passwd-file: the handshake,
 * PLAIN ok/fail/unknown, LOGIN and CRAM-MD5 with CONT, bad base64, CONT
 * for an unknown id, CANCEL, temp_fail from a backend error, several
 * requests in flight, the protocol errors that disconnect, failure delay
 * and min_time pacing, and the request timeout; which steps are answered
 * on the event loop ({PLAIN} entries, cache hits, the first step of a
 * mechanism without a password yet) and which go to a worker (hashes,
 * unknown users, continuations), with the same answers.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <openssl/hmac.h>

#include "auth-cache.h"
#include "auth-sasl.h"
#include "auth-server.h"
#include "backend.h"
#include "log.h"
#include "util.h"
#include "tap.h"

static struct event_base *base;
static char dir[] = "/tmp/msagate-test-as.XXXXXX";

struct peer {
	int fd;
	char buf[70000];
	size_t len;
	bool eof;
};

/* pump - run the loop a little, then read what the server sent. */
static void
pump(struct peer *p)
{
	ssize_t n;

	event_base_loop(base, EVLOOP_NONBLOCK);
	if (p->eof)
		return;
	n = read(p->fd, p->buf + p->len, sizeof(p->buf) - 1 - p->len);
	if (n > 0)
		p->len += (size_t)n;
	else if (n == 0)
		p->eof = true;
	p->buf[p->len] = '\0';
}

/* get_line - next line from the server (without LF), "<EOF>" or
 * "<TIMEOUT>"; static buffer. */
static const char *
get_line(struct peer *p, int timeout_ms)
{
	static char line[70000];
	uint64_t end = now_ms() + (uint64_t)timeout_ms;

	for (;;) {
		char *nl = memchr(p->buf, '\n', p->len);
		if (nl != NULL) {
			size_t n = (size_t)(nl - p->buf);
			memcpy(line, p->buf, n);
			line[n] = '\0';
			memmove(p->buf, nl + 1, p->len - n - 1);
			p->len -= n + 1;
			return line;
		}
		if (p->eof)
			return "<EOF>";
		if (now_ms() > end)
			return "<TIMEOUT>";
		pump(p);
		usleep(500);
	}
}

static void
say(struct peer *p, const char *s)
{
	if (write_all(p->fd, s, strlen(s)) < 0)
		printf("# write: %s\n", strerror(errno));
}

static struct peer *
connect_peer(struct auth_server *srv, bool handshake)
{
	struct peer *p = calloc(1, sizeof(*p));
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		abort();
	set_nonblock(sv[0]);
	p->fd = sv[0];
	auth_server_add_client(srv, sv[1]);
	if (handshake) {
		while (strcmp(get_line(p, 2000), "DONE") != 0)
			;
		say(p, "VERSION\t1\t2\nCPID\t4242\n");
	}
	return p;
}

static void
close_peer(struct peer *p)
{
	close(p->fd);
	free(p);
}

static char *
b64(const void *data, size_t len)
{
	char *out = malloc(b64_encoded_len(len) + 1);
	b64_encode(data, len, out);
	return out;
}

static void
auth_plain(struct peer *p, unsigned id, const char *user, const char *pass)
{
	char payload[256], line[600], *enc;
	size_t ul = strlen(user), pl = strlen(pass);

	payload[0] = '\0';
	memcpy(payload + 1, user, ul);
	payload[1 + ul] = '\0';
	memcpy(payload + 2 + ul, pass, pl);
	enc = b64(payload, 2 + ul + pl);
	snprintf(line, sizeof(line), "AUTH\t%u\tPLAIN\tservice=smtp\tnologin\tlip=127.0.0.1"
	    "\trip=192.0.2.7\tsecured\tresp=%s\n", id, enc);
	free(enc);
	say(p, line);
}

static void
test_handshake(struct auth_server *srv)
{
	struct peer *p = connect_peer(srv, false);
	const char *l;
	char want[64];

	is_str(get_line(p, 2000), "VERSION\t1\t2", "handshake: VERSION 1.2");
	is_str(get_line(p, 2000), "MECH\tPLAIN\tplaintext", "handshake: MECH PLAIN plaintext");
	is_str(get_line(p, 2000), "MECH\tLOGIN\tplaintext", "handshake: MECH LOGIN plaintext");
	l = get_line(p, 2000);
	if (strncmp(l, "MECH\tCRAM", 9) == 0) {
		is_str(l, "MECH\tCRAM-MD5\tdictionary\tactive", "handshake: MECH CRAM-MD5 flags");
		l = get_line(p, 2000);
	}
	snprintf(want, sizeof(want), "SPID\t%ld", (long)getpid());
	is_str(l, want, "handshake: SPID is our pid");
	l = get_line(p, 2000);
	ok(strncmp(l, "CUID\t", 5) == 0 && atoi(l + 5) > 0, "handshake: CUID %s", l + 5);
	l = get_line(p, 2000);
	ok(strncmp(l, "COOKIE\t", 7) == 0 && strlen(l + 7) == 32 &&
	    strspn(l + 7, "0123456789abcdef") == 32, "handshake: COOKIE 32 lower hex");
	is_str(get_line(p, 2000), "DONE", "handshake: DONE");
	close_peer(p);
}

static void
test_requests(struct auth_server *srv, bool have_cram)
{
	struct peer *p = connect_peer(srv, true);
	char line[512], *enc;
	int i, seen;

	/* Postfix-style request, minor 0 */
	close_peer(p);
	p = connect_peer(srv, false);
	while (strcmp(get_line(p, 2000), "DONE") != 0)
		;
	say(p, "VERSION\t1\t0\nCPID\t123\n");
	say(p, "AUTH\t1\tPLAIN\tservice=smtp\tnologin\tlip=127.0.0.1\trip=127.0.0.1\tsecured"
	    "\tresp=AGFsaWNlAHNlY3JldA==\n");
	is_str(get_line(p, 3000), "OK\t1\tuser=alice", "Postfix-style PLAIN ok");
	say(p, "AUTH\t2\tPLAIN\tservice=smtp\tnologin\tlip=127.0.0.1\trip=127.0.0.1\tresp=\n");
	is_str(get_line(p, 3000), "CONT\t2\t", "minor 0: empty resp= means no response");
	say(p, "CONT\t2\tAGFsaWNlAHNlY3JldA==\n");
	is_str(get_line(p, 3000), "OK\t2\tuser=alice", "PLAIN via CONT ok");
	close_peer(p);

	p = connect_peer(srv, true);
	auth_plain(p, 1, "alice", "secret");
	is_str(get_line(p, 3000), "OK\t1\tuser=alice", "PLAIN ok");
	auth_plain(p, 2, "alice", "wrong");
	is_str(get_line(p, 3000), "FAIL\t2\tuser=alice", "PLAIN wrong password");
	auth_plain(p, 3, "nosuchuser", "wrong");
	is_str(get_line(p, 3000), "FAIL\t3\tuser=nosuchuser",
	    "PLAIN unknown user looks like a wrong password");
	auth_plain(p, 4, "broken", "x");
	is_str(get_line(p, 3000), "FAIL\t4\tuser=broken\tcode=temp_fail",
	    "backend error -> code=temp_fail");
	auth_plain(p, 5, "bob@EXAMPLE.test", "hunter2");
	is_str(get_line(p, 3000), "OK\t5\tuser=bob@example.test\tquota_rule=*:storage=1G",
	    "hashed user, domain case-insensitive, extra fields (internal nodelay left out)");

	{       /* authzid != authcid refused */
		static const char pl[] = "bob\0alice\0secret";
		enc = b64(pl, sizeof(pl) - 1);
		snprintf(line, sizeof(line), "AUTH\t6\tPLAIN\tservice=smtp\tresp=%s\n", enc);
		free(enc);
		say(p, line);
		is_str(get_line(p, 3000), "FAIL\t6\tuser=alice", "authzid != authcid refused");
	}
	say(p, "AUTH\t7\tPLAIN\tservice=smtp\tresp=!!!!\n");
	is_str(get_line(p, 3000), "FAIL\t7\tcode=invalid_base64\treason=Invalid base64 data "
	    "in initial response", "bad base64 in AUTH");
	say(p, "AUTH\t8\tPLAIN\tservice=smtp\n");
	is_str(get_line(p, 3000), "CONT\t8\t", "PLAIN without resp: empty CONT");
	say(p, "CONT\t8\tnot*base64\n");
	is_str(get_line(p, 3000), "FAIL\t8\tcode=invalid_base64\treason=Invalid base64 data "
	    "in continued response", "bad base64 in CONT");
	say(p, "CONT\t999\tAAAA\n");
	is_str(get_line(p, 3000), "FAIL\t999\treason=Authentication request timed out",
	    "CONT for an unknown id");

	/* LOGIN */
	say(p, "AUTH\t10\tlogin\tservice=smtp\trip=192.0.2.7\n");
	is_str(get_line(p, 3000), "CONT\t10\tVXNlcm5hbWU6", "LOGIN asks Username:");
	say(p, "CONT\t10\tYWxpY2U=\n");
	is_str(get_line(p, 3000), "CONT\t10\tUGFzc3dvcmQ6", "LOGIN asks Password:");
	say(p, "CONT\t10\tc2VjcmV0\n");
	is_str(get_line(p, 3000), "OK\t10\tuser=alice", "LOGIN ok");
	say(p, "AUTH\t11\tLOGIN\tservice=smtp\trip=192.0.2.7\tresp=YWxpY2U=\n");
	is_str(get_line(p, 3000), "CONT\t11\tUGFzc3dvcmQ6", "LOGIN initial response = user");
	say(p, "CONT\t11\tbm9wZQ==\n");
	is_str(get_line(p, 3000), "FAIL\t11\tuser=alice", "LOGIN wrong password");

	/* CANCEL */
	say(p, "AUTH\t12\tLOGIN\tservice=smtp\n");
	is_str(get_line(p, 3000), "CONT\t12\tVXNlcm5hbWU6", "LOGIN started");
	say(p, "CANCEL\t12\nCONT\t12\tYWxpY2U=\n");
	is_str(get_line(p, 3000), "FAIL\t12\treason=Authentication request timed out",
	    "CANCEL dropped the request");

	/* CRAM-MD5 with a {PLAIN} user */
	if (have_cram) {
		const char *l;
		unsigned char chal[512], mac[EVP_MAX_MD_SIZE];
		unsigned int maclen = 0;
		char resp[600];
		ssize_t cl;
		size_t k;

		say(p, "AUTH\t13\tCRAM-MD5\tservice=smtp\n");
		l = get_line(p, 3000);
		ok(strncmp(l, "CONT\t13\t", 8) == 0, "CRAM-MD5 challenge");
		cl = b64_decode(l + 8, strlen(l + 8), chal);
		HMAC(EVP_md5(), "secret", 6, chal, (size_t)(cl > 0 ? cl : 0), mac, &maclen);
		k = (size_t)snprintf(resp, sizeof(resp), "alice ");
		for (unsigned j = 0; j < maclen; j++)
			k += (size_t)snprintf(resp + k, sizeof(resp) - k, "%02x", mac[j]);
		enc = b64(resp, k);
		snprintf(line, sizeof(line), "CONT\t13\t%s\n", enc);
		free(enc);
		say(p, line);
		is_str(get_line(p, 3000), "OK\t13\tuser=alice", "CRAM-MD5 ok");
	}

	/* many in flight on one connection */
	for (i = 0; i < 20; i++)
		auth_plain(p, 100 + (unsigned)i, "alice", i % 2 ? "secret" : "bad");
	seen = 0;
	for (i = 0; i < 20; i++) {
		const char *l = get_line(p, 5000);
		unsigned id = 0;
		if (sscanf(l, "OK\t%u\t", &id) == 1 && id % 2 == 1)
			seen++;
		else if (sscanf(l, "FAIL\t%u\t", &id) == 1 && id % 2 == 0)
			seen++;
	}
	is_int(seen, 20, "20 requests in flight, each answered correctly");
	close_peer(p);
}

/* steps - how many steps ran on the loop / on workers since *last. */
static void
steps(struct auth_server *srv, struct auth_server_stats *last,
    unsigned long long *loop, unsigned long long *worker)
{
	struct auth_server_stats st;

	auth_server_get_stats(srv, &st);
	*loop = st.steps_loop - last->steps_loop;
	*worker = st.steps_worker - last->steps_worker;
	*last = st;
}

static void
test_where(struct auth_server *srv, struct backend_chain *chain)
{
	struct peer *p = connect_peer(srv, true);
	struct auth_server_stats st;
	struct auth_cache *cache;
	unsigned long long loop, worker;

	auth_server_get_stats(srv, &st);
	auth_plain(p, 1, "alice", "secret");
	is_str(get_line(p, 3000), "OK\t1\tuser=alice", "{PLAIN} user: OK");
	steps(srv, &st, &loop, &worker);
	ok(loop == 1 && worker == 0, "{PLAIN} user: answered on the loop (%llu/%llu)",
	    loop, worker);
	auth_plain(p, 2, "alice", "wrong");
	is_str(get_line(p, 3000), "FAIL\t2\tuser=alice", "{PLAIN} user, wrong password: FAIL");
	steps(srv, &st, &loop, &worker);
	ok(loop == 0 && worker == 1,
	    "... from a worker, as for an unknown user (no quick MISMATCH)");
	auth_plain(p, 3, "nosuchuser", "x");
	is_str(get_line(p, 3000), "FAIL\t3\tuser=nosuchuser", "unknown user: FAIL");
	steps(srv, &st, &loop, &worker);
	ok(loop == 0 && worker == 1, "unknown user: a worker (the dummy hash)");
	auth_plain(p, 4, "bob@example.test", "hunter2");
	ok(strncmp(get_line(p, 3000), "OK\t4\tuser=bob@example.test", 26) == 0,
	    "hashed user: OK");
	steps(srv, &st, &loop, &worker);
	ok(loop == 0 && worker == 1, "hashed user without a cache: a worker");
	say(p, "AUTH\t5\tLOGIN\tservice=smtp\n");
	is_str(get_line(p, 3000), "CONT\t5\tVXNlcm5hbWU6", "LOGIN: Username:");
	steps(srv, &st, &loop, &worker);
	ok(loop == 1 && worker == 0, "LOGIN's first step (no password yet): the loop");
	say(p, "CONT\t5\tYWxpY2U=\n");
	is_str(get_line(p, 3000), "CONT\t5\tUGFzc3dvcmQ6", "LOGIN: Password:");
	say(p, "CONT\t5\tc2VjcmV0\n");
	is_str(get_line(p, 3000), "OK\t5\tuser=alice", "LOGIN: OK");
	steps(srv, &st, &loop, &worker);
	ok(loop == 0 && worker == 2, "LOGIN's continuations: a worker");

	/* with the credential cache: the second login of a hashed user */
	cache = auth_cache_new(10, 60000);
	backend_chain_set_cache(chain, cache, false);
	auth_plain(p, 6, "bob@example.test", "hunter2");
	ok(strncmp(get_line(p, 3000), "OK\t6\tuser=bob@example.test\tquota_rule=", 38) == 0,
	    "cache: first login OK");
	auth_plain(p, 7, "bob@example.test", "hunter2");
	is_str(get_line(p, 3000), "OK\t7\tuser=bob@example.test\tquota_rule=*:storage=1G",
	    "cache: second login OK, same extra fields");
	auth_plain(p, 8, "bob@example.test", "hunter3");
	is_str(get_line(p, 3000), "FAIL\t8\tuser=bob@example.test",
	    "cache: a wrong password still fails");
	steps(srv, &st, &loop, &worker);
	ok(loop == 1 && worker == 2,
	    "cache: the hit on the loop, the first login and the wrong password on a worker "
	    "(%llu/%llu)", loop, worker);
	backend_chain_set_cache(chain, NULL, false);
	auth_cache_free(cache);

	/* many at once: answers come back, fewer wake-ups than worker steps */
	{
		struct auth_server_stats a, b;
		int i, seen = 0;

		auth_server_get_stats(srv, &a);
		for (i = 0; i < 30; i++)
			auth_plain(p, 100 + (unsigned)i, i % 3 ? "alice" : "bob@example.test",
			    i % 3 ? "secret" : "hunter2");
		for (i = 0; i < 30; i++)
			if (strncmp(get_line(p, 5000), "OK\t", 3) == 0)
				seen++;
		is_int(seen, 30, "30 mixed requests in flight: all OK");
		auth_server_get_stats(srv, &b);
		ok(b.steps_worker - a.steps_worker == 10 && b.steps_loop - a.steps_loop == 20,
		    "10 hashed on workers, 20 {PLAIN} on the loop");
		ok(b.wakeups - a.wakeups <= 10, "%llu wake-ups for 10 worker steps",
		    b.wakeups - a.wakeups);
	}
	close_peer(p);
}

static void
expect_disconnect(struct auth_server *srv, const char *name, const char *send, bool hs)
{
	struct peer *p = connect_peer(srv, hs);
	const char *l;

	if (!hs)
		while (strcmp(get_line(p, 2000), "DONE") != 0)
			;
	say(p, send);
	while ((l = get_line(p, 2000)) && strcmp(l, "<EOF>") != 0 && strcmp(l, "<TIMEOUT>") != 0)
		;
	is_str(l, "<EOF>", "disconnect: %s", name);
	close_peer(p);
}

static void
test_errors(struct auth_server *srv)
{
	char *big;
	size_t n = 17000;

	expect_disconnect(srv, "major version 2", "VERSION\t2\t0\n", false);
	expect_disconnect(srv, "CPID 0", "VERSION\t1\t2\nCPID\t0\n", false);
	expect_disconnect(srv, "AUTH before CPID", "VERSION\t1\t2\nAUTH\t1\tPLAIN\tservice=smtp\n", false);
	expect_disconnect(srv, "unknown command", "HELLO\t1\n", true);
	expect_disconnect(srv, "id 0", "AUTH\t0\tPLAIN\tservice=smtp\n", true);
	expect_disconnect(srv, "unknown mechanism", "AUTH\t1\tGSSAPI\tservice=smtp\n", true);
	expect_disconnect(srv, "no service", "AUTH\t1\tPLAIN\trip=1.2.3.4\n", true);
	expect_disconnect(srv, "params after resp", "AUTH\t1\tPLAIN\tservice=smtp\tresp=AAAA\tx=y\n", true);
	expect_disconnect(srv, "duplicate id",
	    "AUTH\t1\tLOGIN\tservice=smtp\nAUTH\t1\tLOGIN\tservice=smtp\n", true);
	expect_disconnect(srv, "broken CANCEL", "CANCEL\tx\n", true);
	{
		char many[2048];
		size_t k = (size_t)snprintf(many, sizeof(many), "AUTH\t1\tPLAIN\tservice=smtp");
		for (int j = 0; j < 80; j++)
			k += (size_t)snprintf(many + k, sizeof(many) - k, "\tx%d", j);
		snprintf(many + k, sizeof(many) - k, "\tresp=AGFsaWNlAHNlY3JldA==\n");
		/* unknown parameters are ignored however many (as Dovecot) */
		{
			struct peer *p = connect_peer(srv, true);
			const char *l;

			say(p, many);
			l = get_line(p, 3000);
			ok(strncmp(l, "OK\t1\t", 5) == 0 || strncmp(l, "FAIL\t1", 6) == 0,
			    "80 unknown parameters: answered, not disconnected (%s)", l);
			close_peer(p);
		}
	}
	big = malloc(n + 1);
	memset(big, 'a', n);
	memcpy(big, "AUTH\t1\tPLAIN\tservice=smtp\tx=", 28);
	big[n - 1] = '\n';
	big[n] = '\0';
	expect_disconnect(srv, "line over 16384 bytes", big, true);
	free(big);
}

static void
test_pacing(struct backend_chain *chain)
{
	struct auth_server_settings set = { .failure_delay_ms = 400, .min_time_ms = 150,
		.workers = 2, .request_timeout_ms = 300 };
	struct auth_server *srv = auth_server_new(base, -1, chain, &set);
	struct peer *p = connect_peer(srv, true);
	uint64_t t;
	const char *l;

	t = now_ms();
	auth_plain(p, 1, "alice", "secret");
	l = get_line(p, 3000);
	t = now_ms() - t;
	is_str(l, "OK\t1\tuser=alice", "paced OK");
	ok(t >= 140 && t < 390, "OK waits min_time, not failure_delay (%llu ms)",
	    (unsigned long long)t);
	t = now_ms();
	auth_plain(p, 2, "alice", "nope");
	l = get_line(p, 3000);
	t = now_ms() - t;
	is_str(l, "FAIL\t2\tuser=alice", "paced FAIL");
	ok(t >= 390, "FAIL held failure_delay (%llu ms)", (unsigned long long)t);
	t = now_ms();
	say(p, "AUTH\t3\tPLAIN\tservice=smtp\tresp=!!!!\n");
	l = get_line(p, 3000);
	ok(now_ms() - t < 100 && strncmp(l, "FAIL\t3\tcode=invalid_base64", 26) == 0,
	    "invalid base64 answered at once");

	/* request timeout */
	say(p, "AUTH\t4\tPLAIN\tservice=smtp\n");
	is_str(get_line(p, 3000), "CONT\t4\t", "CONT before the timeout");
	is_str(get_line(p, 600), "<TIMEOUT>", "nothing sent when the request times out");
	say(p, "CONT\t4\tAGFsaWNlAHNlY3JldA==\n");
	is_str(get_line(p, 3000), "FAIL\t4\treason=Authentication request timed out",
	    "CONT after the timeout");

	/* a client that goes away with a FAIL pending */
	auth_plain(p, 5, "alice", "nope");
	close_peer(p);
	p = connect_peer(srv, true);
	auth_plain(p, 1, "alice", "secret");
	is_str(get_line(p, 3000), "OK\t1\tuser=alice", "server fine after a client left mid-request");
	close_peer(p);
	auth_server_free(srv);
}

int
main(void)
{
	struct msagate_config cfg;
	struct backend_cfg bcfg = { .driver = "passwd-file" };
	char *mechs[] = { "PLAIN", "LOGIN", "CRAM-MD5" };
	struct backend_chain *chain;
	struct auth_server_settings set = { .workers = 3 };
	struct auth_server *srv;
	char *err = NULL, path[128];
	FILE *fp;
	bool have_cram;

	log_init("test-auth-server", true, false, NULL);
	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(path, sizeof(path), "%s/users", dir);
	fp = fopen(path, "w");
	if (fp == NULL)
		return 1;
	/* bob's password: hunter2 */
	fputs("alice:{PLAIN}secret\n"
	    "bob@example.test:{SHA256-CRYPT}$5$3iao4ql3B.MXyCGB$e90e1kO0yuiJuW/HB6StbXx2eRViLsDKpTpOnWB.hz3::::::nodelay quota_rule=*:storage=1G\n"
	    "broken:{CRYPT}$9$unknown-method$x\n", fp);
	fclose(fp);

	memset(&cfg, 0, sizeof(cfg));
	cfg.hostname = "mail.example.test";
	cfg.auth.mechanisms = mechs;
	cfg.auth.n_mechanisms = 3;
	bcfg.path = path;
	cfg.auth.backends = &bcfg;
	cfg.auth.n_backends = 1;

	chain = backend_chain_new(&bcfg, 1, &err);
	ok(chain != NULL, "backend chain: %s", err ? err : "ok");
	if (chain == NULL)
		return done_testing();
	if (auth_sasl_init(&cfg, chain, &err) != 0) {
		printf("# Cyrus SASL not usable here (%s): skipping\n", err);
		return done_testing();
	}
	ok(auth_sasl_mech_find("plain") != NULL, "PLAIN usable (case-insensitive lookup)");
	ok(auth_sasl_mech_find("LOGIN") != NULL, "LOGIN usable");
	have_cram = auth_sasl_mech_find("CRAM-MD5") != NULL;

	base = event_base_new();
	srv = auth_server_new(base, -1, chain, &set);
	test_handshake(srv);
	test_requests(srv, have_cram);
	test_where(srv, chain);
	test_errors(srv);
	auth_server_free(srv);
	test_pacing(chain);

	event_base_free(base);
	auth_sasl_done();
	backend_chain_free(chain);
	snprintf(path, sizeof(path), "rm -rf '%s'", dir);
	if (system(path) != 0)
		printf("# cleanup failed\n");
	return done_testing();
}
