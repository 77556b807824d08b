/*
 * test-qmgr.c - unit tests of the queue manager's pieces: the status file
 * (append, torn lines, queries), the retry schedule, the DSN generator,
 * the body copy (CRLF->LF, dot-stuffing), and whole delivery runs of
 * qmgr on an event loop: Maildir delivery with Return-Path/Delivered-To
 * and removal, a recipient already marked sent is not delivered again,
 * a foreign recipient stays deferred, an expired message bounces, a
 * bounce of a null-sender message is dropped, and a message deferred past
 * relay.delay_warning gets exactly one delay warning (also after a restart).
 */
#include <sys/stat.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "delivery.h"
#include "dsn.h"
#include "log.h"
#include "qmgr.h"
#include "qstatus.h"
#include "tap.h"
#include "util.h"

static char tmpdir[256];

static int
count_dir(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* The content of the only file in dir (malloc'd), or NULL. */
static char *
only_file(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char path[1024], *buf = NULL;

	if (d == NULL)
		return NULL;
	while ((de = readdir(d)) != NULL) {
		FILE *fp;
		long n;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if ((fp = fopen(path, "r")) == NULL)
			break;
		buf = xcalloc(1, 1 << 20);
		n = (long)fread(buf, 1, (1 << 20) - 1, fp);
		buf[n < 0 ? 0 : n] = '\0';
		fclose(fp);
		break;
	}
	closedir(d);
	return buf;
}

static void
test_status(void)
{
	char dir[300];
	struct qstatus st;
	int dfd, fd;

	snprintf(dir, sizeof(dir), "%s/st", tmpdir);
	mkdir(dir, 0700);
	dfd = open(dir, O_RDONLY | O_DIRECTORY);
	ok(qstatus_load(dfd, "0000000000000001", &st) == 0 && st.n == 0,
	    "missing status file = empty status");
	fd = qstatus_open(dfd, "0000000000000001");
	ok(fd >= 0, "status file opened");
	ok(qstatus_append(fd, &st, 'D', 0, "a@x.test", "4.4.1", "conn\trefused\n") == 0,
	    "append D");
	ok(qstatus_append(fd, &st, 'S', 1, "b@x.test", "2.0.0", "ok") == 0, "append S");
	ok(qstatus_append(fd, &st, 'C', 1, NULL, NULL, NULL) == 0, "append C");
	is_int((int)st.n, 3, "three entries in memory");
	/* a torn line, as a crash while appending leaves it */
	ok(write(fd, "S\t0\ta@x.test\t12", 15) == 15, "torn line written");
	close(fd);
	qstatus_free(&st);
	ok(qstatus_load(dfd, "0000000000000001", &st) == 0, "status reloaded");
	is_int((int)st.n, 3, "torn last line ignored");
	ok(!qstatus_final_done(&st, 0, "a@x.test"), "deferred is not done");
	ok(qstatus_final_done(&st, 1, "b@x.test"), "sent is done");
	ok(qstatus_rcpt_complete(&st, 1) && !qstatus_rcpt_complete(&st, 0),
	    "complete flags");
	ok(qstatus_last(&st, 0) != NULL && strcmp(qstatus_last(&st, 0)->detail,
	    "conn?refused?") == 0, "TAB/LF in details are masked");
	qstatus_free(&st);
	/* the next writer starts a fresh line after the torn one */
	fd = qstatus_open(dfd, "0000000000000001");
	ok(qstatus_append(fd, NULL, 'S', 0, "a@x.test", "2.0.0", "later") == 0,
	    "append after a torn line");
	close(fd);
	qstatus_load(dfd, "0000000000000001", &st);
	ok(st.n == 4 && qstatus_final_done(&st, 0, "a@x.test"),
	    "entry after the torn line is read");
	qstatus_free(&st);
	close(dfd);
}

static void
test_retry(void)
{
	is_int((int)qmgr_retry_delay(1, 60, 3600), 60, "first retry after 1 min");
	is_int((int)qmgr_retry_delay(2, 60, 3600), 120, "then 2 min");
	is_int((int)qmgr_retry_delay(3, 60, 3600), 240, "then 4 min");
	is_int((int)qmgr_retry_delay(7, 60, 3600), 3600, "capped at 1 h");
	is_int((int)qmgr_retry_delay(1000, 60, 3600), 3600, "still capped");
	is_int((int)qmgr_retry_delay(1, 10, 100), 10, "configured minimum");
	is_int((int)qmgr_retry_delay(4, 10, 100), 80, "doubling from it");
	is_int((int)qmgr_retry_delay(5, 10, 100), 100, "configured maximum");
	is_int((int)qmgr_retry_delay(40, 3000000000u, 4000000000u), (int)(4000000000u - 4294967296LL),
	    "no overflow near UINT_MAX");
}

static void
test_dsn(void)
{
	struct qenvelope env;
	struct dsn_rcpt r[2] = {
		{ "bob@x.test", "list@x.test", "5.1.1", "550 5.1.1 no such user", true },
		{ "eve@y.test", "eve@y.test", "5.4.7", "expired\r\nX-Evil: 1", false },
	};
	const char *hdr = "Subject: hi\r\nFrom: a@x.test\r\n--boundary-like\r\n";
	struct sbuf b;

	memset(&env, 0, sizeof(env));
	memcpy(env.id, "00000000000000AB", QID_LEN + 1);
	env.sender = "alice@x.test";
	env.arrival = 1700000000;
	sbuf_init(&b, 0);
	dsn_build(&b, "mail.x.test", &env, r, 2, hdr, strlen(hdr), 1700000100);
	sbuf_addstr(&b, "");
	ok(strstr(b.s, "Content-Type: multipart/report; report-type=delivery-status;") != NULL,
	    "DSN is multipart/report");
	ok(strstr(b.s, "To: <alice@x.test>\r\n") != NULL, "addressed to the sender");
	ok(strstr(b.s, "Content-Type: message/delivery-status\r\n") != NULL,
	    "has a delivery-status part");
	ok(strstr(b.s, "Reporting-MTA: dns; mail.x.test\r\n") != NULL, "Reporting-MTA");
	ok(strstr(b.s, "Final-Recipient: rfc822; bob@x.test\r\nOriginal-Recipient: "
	    "rfc822; list@x.test\r\nAction: failed\r\nStatus: 5.1.1\r\n"
	    "Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n") != NULL,
	    "per-recipient fields");
	ok(strstr(b.s, "Status: 5.4.7\r\nDiagnostic-Code: x-msagate; expired??X-Evil: 1") != NULL,
	    "CR/LF in a detail cannot add header lines");
	ok(strstr(b.s, "Content-Type: text/rfc822-headers\r\n\r\nSubject: hi\r\n") != NULL,
	    "original headers included");
	ok(strstr(b.s, "--boundary-like") == NULL, "header lines starting with -- left out");
	ok(strstr(b.s, "Auto-Submitted: auto-replied\r\n") != NULL, "Auto-Submitted");
	{
		bool bare = false;

		for (size_t i = 0; i < b.len; i++)
			if (b.s[i] == '\n' && (i == 0 || b.s[i - 1] != '\r'))
				bare = true;
		ok(!bare, "every line ends in CRLF");
	}
	sbuf_free(&b);

	/* the delay warning */
	sbuf_init(&b, 0);
	r[0].status = "4.4.1";
	r[0].detail = "connect to mx.x.test: Connection refused";
	r[0].remote = false;
	r[1].status = "5.1.1";      /* not a 4.x.x: reported as 4.0.0 */
	dsn_build_delay(&b, "mail.x.test", &env, r, 2, hdr, strlen(hdr), 1700000100,
	    1700000000 + 432000);
	sbuf_addstr(&b, "");
	ok(strstr(b.s, "Content-Type: multipart/report; report-type=delivery-status;") != NULL,
	    "delay warning is multipart/report");
	ok(strstr(b.s, "Subject: Delayed Mail (still being retried)\r\n") != NULL,
	    "delay warning subject");
	ok(strstr(b.s, "Final-Recipient: rfc822; bob@x.test\r\nOriginal-Recipient: "
	    "rfc822; list@x.test\r\nAction: delayed\r\nStatus: 4.4.1\r\n"
	    "Diagnostic-Code: x-msagate; connect to mx.x.test: Connection refused\r\n"
	    "Will-Retry-Until: Sun, 19 Nov 2023 22:13:20 +0000\r\n") != NULL,
	    "Action: delayed, Status 4.x.x, Will-Retry-Until = arrival + lifetime");
	ok(strstr(b.s, "Action: delayed\r\nStatus: 4.0.0\r\n") != NULL,
	    "a non-4.x.x status is reported as 4.0.0");
	ok(strstr(b.s, "Action: failed") == NULL, "no Action: failed in a warning");
	sbuf_free(&b);
}

static int
collect(void *arg, const char *p, size_t n)
{
	return sbuf_add(arg, p, n) ? 0 : -1;
}

static void
test_copy(void)
{
	const char *msg = "Subject: x\r\n\r\n.line\r\n..two\r\nend";
	char path[300];
	struct delivery_msg dm;
	struct sbuf b;
	int fd;

	snprintf(path, sizeof(path), "%s/body", tmpdir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ok(write(fd, "HEAD", 4) == 4 && write(fd, msg, strlen(msg)) == (ssize_t)strlen(msg),
	    "body written");
	memset(&dm, 0, sizeof(dm));
	dm.fd = fd;
	dm.body_offset = 4;
	sbuf_init(&b, 0);
	ok(delivery_copy_body(&dm, DELIVERY_COPY_LF, collect, &b) == 0, "LF copy");
	sbuf_addstr(&b, "");
	is_str(b.s, "Subject: x\n\n.line\n..two\nend\n", "CRLF -> LF, final LF added");
	sbuf_reset(&b);
	ok(delivery_copy_body(&dm, DELIVERY_COPY_DOTSTUFF, collect, &b) == 0,
	    "dot-stuffed copy");
	sbuf_addstr(&b, "");
	is_str(b.s, "Subject: x\r\n\r\n..line\r\n...two\r\nend\r\n",
	    "leading dots doubled, final CRLF added");
	sbuf_free(&b);
	close(fd);
}

/* ---- whole runs of the queue manager ---- */

struct env_dirs {
	int in, q, st;
};

static void
write_qfile(struct env_dirs *d, const char *id, const char *sender,
    const char **rcpts, size_t n, time_t arrival, const char *body)
{
	struct qenvelope env;
	char *head;
	long len;
	int fd;

	memset(&env, 0, sizeof(env));
	memcpy(env.id, id, QID_LEN + 1);
	env.arrival = arrival;
	env.sender = (char *)sender;
	env.rcpts = (char **)rcpts;
	env.n_rcpts = n;
	env.client = "127.0.0.1";
	env.helo = "test";
	env.listener = "submission";
	len = qfile_format_header(&env, &head);
	fd = openat(d->q, id, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (write(fd, head, (size_t)len) != len || write(fd, body, strlen(body)) < 0)
		fprintf(stderr, "write failed\n");
	close(fd);
	free(head);
}

static void
stop_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(arg);
}

/* Run the loop until dir holds `want` files or 5 s pass. */
static void
run_until(struct event_base *base, const char *qdir, int want)
{
	struct timeval tv = { 0, 50000 };
	struct event *ev = evtimer_new(base, stop_cb, base);

	for (int i = 0; i < 100; i++) {
		evtimer_add(ev, &tv);
		event_base_dispatch(base);
		if (count_dir(qdir) == want)
			break;
	}
	/* let the last notifications be read */
	evtimer_add(ev, &tv);
	event_base_dispatch(base);
	event_free(ev);
}

/* Run the loop for about ms milliseconds. */
static void
run_for(struct event_base *base, int ms)
{
	struct timeval tv = { 0, 50000 };
	struct event *ev = evtimer_new(base, stop_cb, base);

	for (int i = 0; i < ms / 50; i++) {
		evtimer_add(ev, &tv);
		event_base_dispatch(base);
	}
	event_free(ev);
}

static void
test_qmgr_runs(void)
{
	struct msagate_config cfg;
	struct env_dirs d;
	struct event_base *base = event_base_new();
	struct qmgr *m;
	char p[512], qdir[300], sdir[300], tmpl[300];
	char *domains[] = { "example.test" };
	const char *r1[] = { "alice+tag@Example.TEST" };
	const char *r2[] = { "bob@example.test", "carol@example.test" };
	const char *r3[] = { "far@example.org" };
	char *s;

	snprintf(p, sizeof(p), "%s/state", tmpdir);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/state/incoming", tmpdir);
	mkdir(p, 0700);
	d.in = open(p, O_RDONLY | O_DIRECTORY);
	snprintf(qdir, sizeof(qdir), "%s/state/queue", tmpdir);
	mkdir(qdir, 0700);
	d.q = open(qdir, O_RDONLY | O_DIRECTORY);
	snprintf(sdir, sizeof(sdir), "%s/state/status", tmpdir);
	mkdir(sdir, 0700);
	d.st = open(sdir, O_RDONLY | O_DIRECTORY);
	snprintf(tmpl, sizeof(tmpl), "%s/mail/%%d/%%n/Maildir", tmpdir);

	memset(&cfg, 0, sizeof(cfg));
	cfg.hostname = "mail.example.test";
	cfg.relay.local_domains = domains;
	cfg.relay.n_local_domains = 1;
	cfg.relay.delivery_method = "maildir";
	cfg.relay.delivery_path = tmpl;
	cfg.relay.recipient_delimiter = "+";

	/* 1: a plain local delivery */
	write_qfile(&d, "0000000000000A01", "sender@example.test", r1, 1, time(NULL),
	    "Subject: one\r\n\r\nbody\r\n");
	/* 2: one recipient already delivered before a "crash" */
	write_qfile(&d, "0000000000000A02", "sender@example.test", r2, 2, time(NULL),
	    "Subject: two\r\n\r\nbody\r\n");
	{
		int fd = qstatus_open(d.st, "0000000000000A02");

		qstatus_append(fd, NULL, 'S', 0, "bob@example.test", "2.0.0", "earlier");
		close(fd);
	}
	/* 3: a foreign recipient: stays deferred */
	write_qfile(&d, "0000000000000A03", "sender@example.test", r3, 1, time(NULL),
	    "Subject: three\r\n\r\nbody\r\n");

	m = qmgr_new(&cfg, base, d.in, d.q, d.st);
	ok(m != NULL, "qmgr with maildir");
	qmgr_scan(m);
	run_until(base, qdir, 1);
	is_int(count_dir(qdir), 1, "two messages delivered and removed, one left");
	snprintf(p, sizeof(p), "%s/mail/example.test/alice/Maildir/new", tmpdir);
	s = only_file(p);
	ok(s != NULL && strncmp(s, "Return-Path: <sender@example.test>\n"
	    "Delivered-To: alice+tag@Example.TEST\nSubject: one\n\nbody\n", 96) == 0,
	    "user+tag delivered to user's Maildir with Return-Path and Delivered-To");
	free(s);
	snprintf(p, sizeof(p), "%s/mail/example.test/alice/Maildir/cur", tmpdir);
	is_int(count_dir(p), 0, "cur/ created");
	snprintf(p, sizeof(p), "%s/mail/example.test/bob/Maildir/new", tmpdir);
	ok(count_dir(p) <= 0, "recipient marked sent is not delivered again");
	snprintf(p, sizeof(p), "%s/mail/example.test/carol/Maildir/new", tmpdir);
	is_int(count_dir(p), 1, "the other recipient is delivered");
	is_int(count_dir(sdir), 1, "status files of finished messages removed");
	{
		struct qstatus st;

		qstatus_load(d.st, "0000000000000A03", &st);
		ok(st.n == 1 && st.e[0].kind == 'D' &&
		    strstr(st.e[0].detail, "MX lookup is off") != NULL,
		    "foreign recipient deferred, not pretended");
		qstatus_free(&st);
	}
	ok(qmgr_flush(m) == 1, "flush makes the deferred message due");
	qmgr_stop(m);
	qmgr_free(m);

	/* 4: the expired foreign message bounces to a local sender */
	unlinkat(d.q, "0000000000000A03", 0);
	unlinkat(d.st, "0000000000000A03", 0);
	write_qfile(&d, "0000000000000A04", "dave@example.test", r3, 1,
	    time(NULL) - 6 * 86400, "Subject: old\r\n\r\nbody\r\n");
	/* 5: an expired null-sender message is dropped without a bounce */
	write_qfile(&d, "0000000000000A05", "", r3, 1, time(NULL) - 6 * 86400,
	    "Subject: old bounce\r\n\r\nbody\r\n");
	m = qmgr_new(&cfg, base, d.in, d.q, d.st);
	qmgr_scan(m);
	run_until(base, qdir, 0);
	is_int(count_dir(qdir), 0, "expired messages and the bounce are gone from the queue");
	snprintf(p, sizeof(p), "%s/mail/example.test/dave/Maildir/new", tmpdir);
	s = only_file(p);
	ok(s != NULL && strstr(s, "Return-Path: <>\n") != NULL &&
	    strstr(s, "multipart/report") != NULL && strstr(s, "Status: 5.4.7") != NULL &&
	    strstr(s, "Subject: old\n") != NULL,
	    "one bounce (multipart/report, 5.4.7) in the sender's Maildir");
	ok(s != NULL && strstr(s, "message expired after 5 days in the queue") != NULL,
	    "it says how long the message was kept (the default lifetime, 5 days)");
	free(s);
	qmgr_free(m);

	/* 6: deferred past delay_warning: one delay warning, never two */
	cfg.relay.delay_warning_ms = 1000;
	cfg.relay.retry_min_ms = 1000;
	cfg.relay.retry_max_ms = 2000;
	write_qfile(&d, "0000000000000A06", "erin@example.test", r3, 1,
	    time(NULL) - 10, "Subject: slow\r\n\r\nbody\r\n");
	m = qmgr_new(&cfg, base, d.in, d.q, d.st);
	qmgr_scan(m);
	snprintf(p, sizeof(p), "%s/mail/example.test/erin/Maildir/new", tmpdir);
	run_until(base, p, 1);
	is_int(count_dir(p), 1, "delay warning delivered to the sender");
	is_int(count_dir(qdir), 1, "the deferred message stays queued");
	s = only_file(p);
	ok(s != NULL && strstr(s, "Return-Path: <>\n") != NULL &&
	    strstr(s, "Content-Type: multipart/report; report-type=delivery-status;") != NULL &&
	    strstr(s, "Final-Recipient: rfc822; far@example.org\nAction: delayed\n"
	    "Status: 4.4.0\nDiagnostic-Code: x-msagate; no relayhost") != NULL &&
	    strstr(s, "Will-Retry-Until: ") != NULL && strstr(s, "Subject: slow\n") != NULL,
	    "delay warning: multipart/report, Action: delayed, 4.4.0, original headers");
	free(s);
	{
		struct qstatus st;

		qstatus_load(d.st, "0000000000000A06", &st);
		ok(st.warned, "the warning is recorded in the status file");
		ok(qstatus_last(&st, 0) != NULL && qstatus_last(&st, 0)->kind == 'D',
		    "the W line is not a recipient entry");
		qstatus_free(&st);
	}
	ok(qmgr_flush(m) == 1, "second attempt made due");
	run_for(base, 2500);   /* the retries after 1 and 2 s */
	is_int(count_dir(p), 1, "no second warning on the next attempt");
	qmgr_free(m);
	m = qmgr_new(&cfg, base, d.in, d.q, d.st);
	qmgr_scan(m);
	run_for(base, 1500);
	is_int(count_dir(p), 1, "nor after a restart");
	is_int(count_dir(qdir), 1, "the message is still queued");
	qmgr_free(m);
	unlinkat(d.q, "0000000000000A06", 0);
	unlinkat(d.st, "0000000000000A06", 0);

	/* 7: commands, files and includes of an alias, refused by default:
	 * each bounces alone (5.7.1), the address in the list is delivered */
	{
		const char *r7[] = { "list@example.test" };
		char apath[300];
		FILE *f;

		snprintf(apath, sizeof(apath), "%s/aliases", tmpdir);
		f = fopen(apath, "w");
		fprintf(f, "list: frank, \"|/bin/true\", /tmp/never, :include:/nonexistent\n"
		    "cmd: \"|/bin/true\"\n");
		fclose(f);
		cfg.relay.aliases = apath;
		cfg.relay.delay_warning_ms = 0;
		write_qfile(&d, "0000000000000A07", "gail@example.test", r7, 1, time(NULL),
		    "Subject: list\r\n\r\nbody\r\n");
		m = qmgr_new(&cfg, base, d.in, d.q, d.st);
		qmgr_scan(m);
		run_until(base, qdir, 0);
		is_int(count_dir(qdir), 0, "list: delivered and bounced, nothing left");
		snprintf(p, sizeof(p), "%s/mail/example.test/frank/Maildir/new", tmpdir);
		is_int(count_dir(p), 1, "the address of the list is delivered");
		snprintf(p, sizeof(p), "%s/mail/example.test/gail/Maildir/new", tmpdir);
		s = only_file(p);
		ok(s != NULL && strstr(s, "mail to commands is restricted") != NULL &&
		    strstr(s, "mail to files is restricted") != NULL &&
		    strstr(s, "mail to :include: lists is restricted") != NULL &&
		    strstr(s, "Final-Recipient: rfc822; list@example.test\nAction: failed\n"
		    "Status: 5.7.1") != NULL && strstr(s, "/bin/true") == NULL,
		    "one bounce: the three refused targets, 5.7.1, reported as the list");
		free(s);
		qmgr_free(m);

		/* 8: commands allowed, but no delivery helper runs: deferred */
		cfg.relay.allow_alias_commands = true;
		r7[0] = "cmd@example.test";
		write_qfile(&d, "0000000000000A08", "gail@example.test", r7, 1, time(NULL),
		    "Subject: cmd\r\n\r\nbody\r\n");
		m = qmgr_new(&cfg, base, d.in, d.q, d.st);
		qmgr_scan(m);
		run_for(base, 500);
		{
			struct qstatus st;

			qstatus_load(d.st, "0000000000000A08", &st);
			ok(st.n == 1 && st.e[0].kind == 'D' &&
			    strcmp(st.e[0].final, "|/bin/true") == 0 &&
			    strstr(st.e[0].detail, "no delivery helper") != NULL,
			    "allowed command without the helper: deferred (%s)",
			    st.n ? st.e[0].detail : "-");
			qstatus_free(&st);
		}
		qmgr_free(m);
		cfg.relay.aliases = NULL;
		cfg.relay.allow_alias_commands = false;
	}
	event_base_free(base);
	close(d.in);
	close(d.q);
	close(d.st);
}

int
main(void)
{
	char cmd[300];

	log_init("test-qmgr", true, false, NULL);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test-qmgr.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return 1;
	test_status();
	test_retry();
	test_dsn();
	test_copy();
	test_qmgr_runs();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup failed\n");
	return done_testing();
}
