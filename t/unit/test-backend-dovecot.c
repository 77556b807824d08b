/*
 * test-backend-dovecot.c - the "dovecot" backend against a scripted fake
 * upstream (a thread serving a UNIX socket): the AUTH line it sends, how
 * each answer maps to a backend result, handshake checks, stale
 * connections, timeouts and a missing socket.  The real Dovecot is used
 * by t/81-dovecot-upstream.t.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "backend.h"
#include "util.h"
#include "fakeauth.h"
#include "tap.h"

#define HS_OK "VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tLOGIN\tplaintext\n" \
	"SPID\t1\nCUID\t1\nCOOKIE\t0123456789abcdef0123456789abcdef\nDONE\n"

static struct {
	pthread_mutex_t lock;
	int lfd;
	const char *handshake;
	const char *reply;        /* format with %u = id; NULL: hang up */
	int delay_ms;
	bool keep;                /* keep the connection after a reply */
	int connections;
	int auths;
	char last_auth[8192];
} fk = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void
script(const char *handshake, const char *reply, bool keep, int delay_ms)
{
	pthread_mutex_lock(&fk.lock);
	fk.handshake = handshake;
	fk.reply = reply;
	fk.keep = keep;
	fk.delay_ms = delay_ms;
	pthread_mutex_unlock(&fk.lock);
}

/* serve - one connection: handshake, then AUTH lines as scripted. */
static void
serve(int fd)
{
	char buf[8192];
	size_t len = 0;
	const char *hs;

	pthread_mutex_lock(&fk.lock);
	fk.connections++;
	hs = fk.handshake;
	pthread_mutex_unlock(&fk.lock);
	(void)send(fd, hs, strlen(hs), MSG_NOSIGNAL);
	for (;;) {
		char line[8192], out[512];
		const char *pct;
		const char *reply;
		unsigned id = 0;
		int delay;
		bool keep;

		if (fake_read_line(fd, buf, &len, sizeof(buf), line, sizeof(line)) < 0)
			return;
		if (strncmp(line, "AUTH\t", 5) != 0)
			continue;            /* VERSION, CPID */
		id = (unsigned)strtoul(line + 5, NULL, 10);
		pthread_mutex_lock(&fk.lock);
		fk.auths++;
		snprintf(fk.last_auth, sizeof(fk.last_auth), "%s", line);
		reply = fk.reply;
		delay = fk.delay_ms;
		keep = fk.keep;
		pthread_mutex_unlock(&fk.lock);
		if (reply == NULL)
			return;
		if (delay > 0)
			usleep((useconds_t)delay * 1000);
		/* the reply with its "%u" replaced by the request id */
		pct = strstr(reply, "%u");
		if (pct != NULL)
			snprintf(out, sizeof(out), "%.*s%u%s\n", (int)(pct - reply), reply,
			    id, pct + 2);
		else
			snprintf(out, sizeof(out), "%s\n", reply);
		(void)send(fd, out, strlen(out), MSG_NOSIGNAL);
		if (!keep)
			return;
	}
}

static void *
server_main(void *arg)
{
	(void)arg;
	fake_accept_loop(fk.lfd, serve);
	return NULL;
}

static enum backend_result
verify(struct backend_chain *c, const char *user, const char *pw,
    struct backend_reply *r)
{
	return backend_chain_verify_plain(c, user, pw, r);
}

int
main(void)
{
	char dir[] = "/tmp/msagate-test-dc.XXXXXX", path[256];
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct backend_cfg cfg = { .driver = "dovecot", .workers = 1, .timeout_ms = 1000 };
	struct backend_chain *c;
	struct backend_reply r;
	pthread_t th;
	char *err = NULL;
	int conns, auths;
	uint64_t t0;

	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(path, sizeof(path), "%s/auth-client", dir);
	if (strlen(path) >= sizeof(sun.sun_path))
		return 1;
	memcpy(sun.sun_path, path, strlen(path) + 1);
	fk.lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fk.lfd == -1 || bind(fk.lfd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    listen(fk.lfd, 16) == -1)
		return 1;
	script(HS_OK, "OK\t%u\tuser=dave", true, 0);
	pthread_create(&th, NULL, server_main, NULL);

	cfg.socket = path;
	ok(backend_check(&cfg, &err) == 0, "config check passes");
	free(err);
	err = NULL;
	c = backend_chain_new(&cfg, 1, &err);
	ok(c != NULL, "chain with a dovecot backend: %s", err ? err : "ok");
	if (c == NULL)
		return done_testing();
	ok(!backend_chain_can_lookup_plain(c), "no plaintext lookups (no CRAM-MD5/SCRAM)");
	is_int(backend_chain_max_blocked_threads(c), 2, "blocks at most 2 threads (1 conn + 1 waiter)");

	/* the request on the wire */
	is_int(verify(c, "dave", "pw", &r), BACKEND_OK, "OK -> BACKEND_OK");
	is_str(r.user, "dave", "user= taken from OK");
	is_str(fk.last_auth, "AUTH\t1\tPLAIN\tservice=smtp\tnologin\tno-penalty\tresp=AGRhdmUAcHc=",
	    "AUTH line: PLAIN, service=smtp, nologin, no-penalty, resp= last");
	is_int(verify(c, "dave", "pw", &r), BACKEND_OK, "second request");
	ok(strncmp(fk.last_auth, "AUTH\t2\t", 7) == 0, "request ids count up: %s", fk.last_auth);
	is_int(fk.connections, 1, "the connection is kept");
	{
		struct backend_request rq = { "192.0.2.7", "submission" };
		struct backend_request bad = { "192.0.2.7\tx", "smtp\tevil" };

		is_int(backend_chain_verify_plain_req(c, "dave", "pw", &rq, &r),
		    BACKEND_OK, "with the request's context");
		is_str(fk.last_auth, "AUTH\t3\tPLAIN\tservice=submission\tnologin"
		    "\trip=192.0.2.7\tno-penalty\tresp=AGRhdmUAcHc=",
		    "AUTH line carries service= and rip=");
		is_int(backend_chain_verify_plain_req(c, "dave", "pw", &bad, &r),
		    BACKEND_OK, "odd service/rip");
		is_str(fk.last_auth, "AUTH\t4\tPLAIN\tservice=smtp\tnologin"
		    "\tno-penalty\tresp=AGRhdmUAcHc=",
		    "... are left out (service=smtp)");
	}

	/* answers */
	script(HS_OK, "FAIL\t%u\tuser=dave", true, 0);
	is_int(verify(c, "dave", "bad", &r), BACKEND_MISMATCH, "FAIL -> MISMATCH");
	script(HS_OK, "FAIL\t%u\tuser=dave\tcode=temp_fail\treason=db down", true, 0);
	is_int(verify(c, "dave", "pw", &r), BACKEND_TEMPFAIL, "FAIL code=temp_fail -> TEMPFAIL");
	script(HS_OK, "FAIL\t%u\tuser=dave\ttemp", true, 0);
	is_int(verify(c, "dave", "pw", &r), BACKEND_TEMPFAIL, "FAIL temp (protocol 1.1) -> TEMPFAIL");
	script(HS_OK, "FAIL\t%u\tuser=dave\tcode=user_disabled", true, 0);
	is_int(verify(c, "dave", "pw", &r), BACKEND_DISABLED, "code=user_disabled -> DISABLED");
	ok(!r.pass_expired, "... not pass_expired");
	script(HS_OK, "FAIL\t%u\tuser=dave\tcode=pass_expired", true, 0);
	is_int(verify(c, "dave", "pw", &r), BACKEND_DISABLED, "code=pass_expired -> DISABLED");
	ok(r.pass_expired, "... with pass_expired");
	script(HS_OK, "FAIL\t%u\tcode=authz_fail", true, 0);
	is_int(verify(c, "dave", "pw", &r), BACKEND_MISMATCH, "code=authz_fail -> MISMATCH");
	script(HS_OK, "OK\t%u\tuser=dave\tnologin", true, 0);
	is_int(verify(c, "dave", "pw", &r), BACKEND_MISMATCH, "OK + nologin -> MISMATCH");
	script(HS_OK, "OK\t%u\tuser=dave\tproxy\thost=10.0.0.1", true, 0);
	is_int(verify(c, "dave", "pw", &r), BACKEND_MISMATCH, "OK + proxy -> MISMATCH");
	script(HS_OK, "FAIL\t999999\nCONT\t0\tx\nOK\t%u\tuser=Dave", true, 0);
	is_int(verify(c, "dave", "pw", &r), BACKEND_OK, "answers for other ids are skipped");
	is_str(r.user, "Dave", "canonical name from the upstream");

	/* names that must never be sent */
	auths = fk.auths;
	is_int(verify(c, "da\tve", "pw", &r), BACKEND_MISMATCH, "TAB in the name: MISMATCH");
	is_int(verify(c, "da\nve", "pw", &r), BACKEND_MISMATCH, "LF in the name: MISMATCH");
	is_int(verify(c, "da\001ve", "pw", &r), BACKEND_MISMATCH, "\\001 in the name: MISMATCH");
	is_int(fk.auths, auths, "... and nothing was sent");

	/* stale connections: replaced once */
	script(HS_OK, "OK\t%u\tuser=dave", false, 0);
	is_int(verify(c, "dave", "pw", &r), BACKEND_OK, "reply, then the upstream hangs up");
	conns = fk.connections;
	script(HS_OK, "OK\t%u\tuser=dave", true, 0);
	is_int(verify(c, "dave", "pw", &r), BACKEND_OK, "next request: reconnect, OK");
	is_int(fk.connections, conns + 1, "... over a new connection");
	script(HS_OK, NULL, true, 0);
	is_int(verify(c, "dave", "pw", &r), BACKEND_TEMPFAIL,
	    "upstream hangs up on every AUTH: TEMPFAIL (one retry)");
	script(HS_OK, "CONT\t%u\t", true, 0);
	is_int(verify(c, "dave", "pw", &r), BACKEND_TEMPFAIL, "CONT for PLAIN+resp: TEMPFAIL");

	/* timeout */
	script(HS_OK, "OK\t%u\tuser=dave", true, 1500);
	t0 = now_ms();
	is_int(verify(c, "dave", "pw", &r), BACKEND_TEMPFAIL, "no answer within the timeout: TEMPFAIL");
	ok(now_ms() - t0 >= 900 && now_ms() - t0 < 1400, "... after about 1 s (%llu ms)",
	    (unsigned long long)(now_ms() - t0));
	usleep(700000);              /* let the fake finish its late reply */

	/* handshakes */
	script("MECH\tPLAIN\tplaintext\nCOOKIE\t00\nCUID\t9\nVERSION\t1\t3\nX-NEW\tthing\nDONE\n",
	    "OK\t%u\tuser=dave", false, 0);
	is_int(verify(c, "dave", "pw", &r), BACKEND_OK,
	    "handshake lines in any order, unknown ones ignored, minor 3 fine");
	script("VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nSPID\t1\nCUID\t1\nDONE\n",
	    "OK\t%u\tuser=dave", false, 0);
	is_int(verify(c, "dave", "pw", &r), BACKEND_TEMPFAIL, "no COOKIE: TEMPFAIL");
	script("VERSION\t1\t2\nMECH\tLOGIN\tplaintext\nCOOKIE\t00\nDONE\n",
	    "OK\t%u\tuser=dave", false, 0);
	is_int(verify(c, "dave", "pw", &r), BACKEND_TEMPFAIL, "no PLAIN offered: TEMPFAIL");
	script("VERSION\t2\t0\nMECH\tPLAIN\nCOOKIE\t00\nDONE\n", "OK\t%u\tuser=dave", false, 0);
	is_int(verify(c, "dave", "pw", &r), BACKEND_TEMPFAIL, "major version 2: TEMPFAIL");
	script("VERSION\t1\t1\nSPID\t7\n", "OK\t%u\tuser=dave", false, 0);
	is_int(verify(c, "dave", "pw", &r), BACKEND_TEMPFAIL,
	    "auth-master style handshake (no DONE): TEMPFAIL after the timeout");
	script(HS_OK, "OK\t%u\tuser=dave", true, 0);
	is_int(verify(c, "dave", "pw", &r), BACKEND_OK, "good handshake again: OK");

	/* upstream gone */
	unlink(path);
	close(fk.lfd);
	script(HS_OK, "OK\t%u\tuser=dave", false, 0);
	(void)verify(c, "dave", "pw", &r);   /* uses up the kept connection */
	t0 = now_ms();
	is_int(verify(c, "dave", "pw", &r), BACKEND_TEMPFAIL, "socket gone: TEMPFAIL");
	ok(now_ms() - t0 < 200, "... at once (%llu ms)", (unsigned long long)(now_ms() - t0));

	backend_chain_free(c);
	rmdir(dir);
	return done_testing();
}
