/*
 * test-queue.c - the queue role (src/role-queue.c) and its client
 * (src/queue-client.c) end to end: the role runs in a child process on a
 * temporary state_dir and a SOCK_SEQPACKET socket, this process drives
 * it through queuec_* on libevent and through raw packets.
 *
 * What it shows: OPEN hands out a file in incoming/; COMMIT cuts a file
 * longer than its writer's length and refuses a shorter one; after COMMIT's OK
 * the file is in queue/ and no longer in incoming/ (the role fsyncs the
 * file, renames, fsyncs queue/, and only then answers: the order is in
 * sync_batch()); a group of COMMITs is answered in order; empty or
 * headerless files, unknown or foreign ids are refused and leave nothing
 * behind; ABORT, cancel and a client that goes away remove the file; a
 * role killed with SIGKILL leaves its incoming/ files, which the next
 * start removes, while committed messages stay; the client reconnects to
 * a restarted role and reports "queue unavailable" while there is none.
 * The client keeps files opened ahead (spares) and, against a fake role
 * whose OPENs fail, stops asking ahead until an OPEN works again.
 * Started as root, the role really drops to "nobody".
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "log.h"
#include "qfile.h"
#include "queue-client.h"
#include "roles.h"
#include "tap.h"
#include "util.h"

static struct msagate_config cfg;
static char tmpdir[] = "/tmp/test-queue.XXXXXX";
static char sockpath[256], statedir[256];
static int lfd = -1;
static struct event_base *base;

struct res {
	int done;
	int fd;
	int ok;
	char qid[QID_LEN + 1];
	char err[200];
};

static void
open_cb(void *ctx, int fd, const char *qid, const char *err)
{
	struct res *r = ctx;

	r->done = 1;
	r->fd = fd;
	r->ok = fd >= 0;
	snprintf(r->qid, sizeof(r->qid), "%s", qid ? qid : "");
	snprintf(r->err, sizeof(r->err), "%s", err ? err : "");
}

static void
commit_cb(void *ctx, int okv, const char *err)
{
	struct res *r = ctx;

	r->done = 1;
	r->ok = okv;
	snprintf(r->err, sizeof(r->err), "%s", err ? err : "");
}

static void
never_cb(void *ctx, int fd, const char *qid, const char *err)
{
	(void)qid;
	(void)err;
	*(int *)ctx = 1;
	if (fd >= 0)
		close(fd);
}

static void
wait_done(int *done)
{
	while (!*done)
		event_base_loop(base, EVLOOP_ONCE);
}

/* Let the loop run for ms milliseconds. */
static void
spin(int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

static int
exists(const char *sub, const char *id)
{
	char path[512];
	struct stat st;

	qfile_path(path, sizeof(path), statedir, sub, id);
	return stat(path, &st) == 0;
}

static int
count_dir(const char *sub)
{
	char path[512];
	DIR *d;
	struct dirent *de;
	int n = 0;

	snprintf(path, sizeof(path), "%s/%s", statedir, sub);
	if ((d = opendir(path)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static pid_t
start_role(void)
{
	pid_t pid = fork();

	if (pid == 0) {
		signal(SIGTERM, SIG_DFL);
		_exit(role_queue_main(&cfg, lfd, -1));
	}
	return pid;
}

static int
stop_role(pid_t pid, int sig)
{
	int st;

	kill(pid, sig);
	if (waitpid(pid, &st, 0) != pid)
		return -1;
	return st;
}

/* A queue file: header and a small message; returns its length. */
static long long
write_message(int fd, const char *qid, const char *subject)
{
	long long len;
	struct qenvelope env;
	char *rcpts[] = { "bob@example.test" };
	char *hdr, *msg;
	long n;

	memset(&env, 0, sizeof(env));
	memcpy(env.id, qid, QID_LEN + 1);
	env.arrival = time(NULL);
	env.sender = "alice@example.test";
	env.rcpts = rcpts;
	env.n_rcpts = 1;
	env.client = "192.0.2.7";
	env.listener = "submission";
	n = qfile_format_header(&env, &hdr);
	msg = xasprintf("Subject: %s\r\n\r\nhello\r\n", subject);
	if (n < 0 || write_all(fd, hdr, (size_t)n) < 0 ||
	    write_all(fd, msg, strlen(msg)) < 0)
		printf("# write failed\n");
	len = (long long)n + (long long)strlen(msg);
	free(hdr);
	free(msg);
	return len;
}

/* ---- raw protocol helpers ------------------------------------------- */

static int
raw_connect(void)
{
	struct sockaddr_un sun;
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, sockpath, strlen(sockpath) + 1);
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Receive one packet (with an fd, if any) within 5 s; length or -1/0. */
static ssize_t
raw_recv(int fd, char *buf, size_t len, int *rfd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(sizeof(int))];
	} cm;
	struct msghdr msg;
	struct iovec iov = { buf, len - 1 };
	struct cmsghdr *ch;
	ssize_t n;

	*rfd = -1;
	if (poll(&pfd, 1, 5000) != 1)
		return -1;
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = cm.buf;
	msg.msg_controllen = sizeof(cm.buf);
	n = recvmsg(fd, &msg, 0);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	for (ch = CMSG_FIRSTHDR(&msg); ch; ch = CMSG_NXTHDR(&msg, ch))
		if (ch->cmsg_type == SCM_RIGHTS)
			memcpy(rfd, CMSG_DATA(ch), sizeof(int));
	return n;
}

static int
raw_request(int fd, const char *req, char *buf, size_t len, int *rfd)
{
	if (send(fd, req, strlen(req), MSG_NOSIGNAL) < 0)
		return -1;
	return (int)raw_recv(fd, buf, len, rfd);
}

/* ---- tests ------------------------------------------------------------ */

static void
test_basic(struct queuec *q)
{
	struct res r = { 0 }, c = { 0 };
	char path[512];
	FILE *fp;
	long long len;

	queuec_open(q, open_cb, &r);
	ok(!r.done, "OPEN callback does not run inside queuec_open");
	wait_done(&r.done);
	ok(r.ok && qid_valid(r.qid), "OPEN gives an fd and a queue id (%s)", r.err);
	ok(exists("incoming", r.qid), "the file is in incoming/");
	is_int(fcntl(r.fd, F_GETFL) & O_ACCMODE, O_WRONLY, "client fd is write-only");
	ok(!exists("incoming", "00000000000000AA"), "crash leftover in incoming/ removed at start-up");
	ok(exists("queue", "00000000000000BB"), "committed message kept at start-up");

	len = write_message(r.fd, r.qid, "basic");
	close(r.fd);
	queuec_commit(q, r.qid, len, commit_cb, &c);
	ok(!c.done, "COMMIT callback does not run inside queuec_commit");
	wait_done(&c.done);
	ok(c.ok, "COMMIT answered OK (%s)", c.err);
	/* the OK came after fsync + rename + fsync(queue/): it must be there */
	ok(exists("queue", r.qid), "after OK the message is in queue/");
	ok(!exists("incoming", r.qid), "and no longer in incoming/");
	qfile_path(path, sizeof(path), statedir, "queue", r.qid);
	if ((fp = fopen(path, "r")) != NULL) {
		struct qenvelope env;

		ok(qfile_read_header(fp, &env) == 0, "committed file has a valid header");
		ok(strcmp(env.id, r.qid) == 0, "with its id");
		qenvelope_free(&env);
		fclose(fp);
	}
}

static void
test_group(struct queuec *q)
{
	enum { N = 40 };
	struct res o[N], c[N];
	long long len[N];
	int all_open = 1, all_ok = 1, all_there = 1, i;

	memset(o, 0, sizeof(o));
	memset(c, 0, sizeof(c));
	for (i = 0; i < N; i++)
		queuec_open(q, open_cb, &o[i]);
	for (i = 0; i < N; i++) {
		wait_done(&o[i].done);
		all_open &= o[i].ok;
	}
	ok(all_open, "%d OPENs in a row answered", N);
	for (i = 0; i < N; i++) {
		len[i] = 0;
		if (o[i].fd >= 0) {
			len[i] = write_message(o[i].fd, o[i].qid, "group");
			close(o[i].fd);
		}
	}
	/* all COMMITs at once: they form one or a few batches */
	for (i = 0; i < N; i++)
		queuec_commit(q, o[i].qid, len[i], commit_cb, &c[i]);
	for (i = 0; i < N; i++) {
		wait_done(&c[i].done);
		all_ok &= c[i].ok;
		all_there &= exists("queue", o[i].qid) && !exists("incoming", o[i].qid);
	}
	ok(all_ok, "%d COMMITs sent together all answered OK", N);
	ok(all_there, "all %d are in queue/, none in incoming/", N);
}

static void
test_refusals(struct queuec *q)
{
	struct res o = { 0 }, c = { 0 };
	int before = count_dir("queue");

	/* an empty file */
	queuec_open(q, open_cb, &o);
	wait_done(&o.done);
	close(o.fd);
	queuec_commit(q, o.qid, 0, commit_cb, &c);
	wait_done(&c.done);
	ok(!c.ok && c.err[0] != '\0', "COMMIT of an empty file refused: %s", c.err);
	ok(!exists("queue", o.qid) && !exists("incoming", o.qid),
	    "the empty file is gone from incoming/ and queue/");

	/* a file without the queue header */
	memset(&o, 0, sizeof(o));
	memset(&c, 0, sizeof(c));
	queuec_open(q, open_cb, &o);
	wait_done(&o.done);
	if (write_all(o.fd, "Subject: no header\r\n\r\nx\r\n", 25) < 0)
		printf("# write failed\n");
	close(o.fd);
	queuec_commit(q, o.qid, 25, commit_cb, &c);
	wait_done(&c.done);
	ok(!c.ok, "COMMIT of a file without the queue header refused");
	ok(!exists("queue", o.qid) && !exists("incoming", o.qid), "and it is removed");

	/* a file longer than its writer says (a recycled one): cut to length */
	{
		char path[512];
		struct stat st;
		long long len;

		memset(&o, 0, sizeof(o));
		memset(&c, 0, sizeof(c));
		queuec_open(q, open_cb, &o);
		wait_done(&o.done);
		len = write_message(o.fd, o.qid, "cut");
		if (write_all(o.fd, "OLD MESSAGE TAIL\r\n", 18) < 0)
			printf("# write failed\n");
		close(o.fd);
		queuec_commit(q, o.qid, len, commit_cb, &c);
		wait_done(&c.done);
		ok(c.ok, "COMMIT of a file longer than written: OK (%s)", c.err);
		qfile_path(path, sizeof(path), statedir, "queue", o.qid);
		ok(stat(path, &st) == 0 && (long long)st.st_size == len,
		    "and the committed file ends where the writer's data ends");
		before++;
	}

	/* a file shorter than its writer says: refused, removed at ABORT */
	memset(&o, 0, sizeof(o));
	memset(&c, 0, sizeof(c));
	queuec_open(q, open_cb, &o);
	wait_done(&o.done);
	{
		long long len = write_message(o.fd, o.qid, "short");

		close(o.fd);
		queuec_commit(q, o.qid, len + 1, commit_cb, &c);
	}
	wait_done(&c.done);
	ok(!c.ok && strstr(c.err, "shorter") != NULL, "COMMIT of a short file refused: %s", c.err);
	queuec_abort(q, o.qid);
	spin(50);
	ok(!exists("queue", o.qid) && !exists("incoming", o.qid), "and it is removed after ABORT");

	/* an id this connection never opened */
	memset(&c, 0, sizeof(c));
	queuec_commit(q, "0123456789ABCDEF", 10, commit_cb, &c);
	wait_done(&c.done);
	ok(!c.ok, "COMMIT of an unknown id refused: %s", c.err);
	memset(&c, 0, sizeof(c));
	queuec_commit(q, "../../etc/passwd", 10, commit_cb, &c);
	ok(!c.done, "invalid id: callback still deferred");
	wait_done(&c.done);
	ok(!c.ok, "COMMIT of an invalid id refused: %s", c.err);
	is_int(count_dir("queue"), before, "nothing was added to queue/");
}

static void
test_abort_cancel(struct queuec *q)
{
	struct res o = { 0 }, o2 = { 0 };
	struct queuec_req *req;
	int called = 0;

	queuec_open(q, open_cb, &o);
	wait_done(&o.done);
	write_message(o.fd, o.qid, "abort");
	close(o.fd);
	queuec_abort(q, o.qid);
	queuec_open(q, open_cb, &o2);
	wait_done(&o2.done);
	for (int i = 0; i < 200 && exists("incoming", o.qid); i++)
		spin(10);
	ok(!exists("incoming", o.qid) && !exists("queue", o.qid), "ABORT removes the file");

	req = queuec_open(q, never_cb, &called);
	queuec_req_cancel(req);
	memset(&o, 0, sizeof(o));
	queuec_open(q, open_cb, &o);
	wait_done(&o.done);
	spin(50);
	ok(!called, "a cancelled OPEN's callback never runs");
	/* incoming/ holds o2, o and the client's spares: the cancelled one was aborted */
	is_int(count_dir("incoming"), 2 + (int)queuec_spare_count(q),
	    "the cancelled OPEN's file was aborted");
	ok(queuec_spare_count(q) > 0, "the client keeps files opened ahead (%u)",
	    queuec_spare_count(q));
	queuec_abort(q, o.qid);
	queuec_abort(q, o2.qid);
	close(o.fd);
	close(o2.fd);
}

/*
 * fake_answer - the fake queue role's side: answer every OPEN waiting on
 * sfd with ERR (ok == 0) or with OK and a descriptor; returns how many.
 */
static int
fake_answer(int sfd, int ok_reply)
{
	static unsigned next_id = 1;
	struct pollfd pfd = { .fd = sfd, .events = POLLIN };
	char buf[256];
	int n = 0;

	while (poll(&pfd, 1, n == 0 ? 2000 : 100) > 0) {
		ssize_t len = recv(sfd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

		if (len <= 0)
			break;
		buf[len] = '\0';
		if (strcmp(buf, "OPEN") != 0)
			continue;       /* ABORT */
		n++;
		if (!ok_reply) {
			send(sfd, "ERR disk full", 13, MSG_NOSIGNAL);
		} else {
			union {
				struct cmsghdr h;
				char b[CMSG_SPACE(sizeof(int))];
			} cm;
			struct msghdr msg;
			struct iovec iov;
			char reply[64];
			int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);

			snprintf(reply, sizeof(reply), "OK %016X", next_id++);
			iov.iov_base = reply;
			iov.iov_len = strlen(reply);
			memset(&msg, 0, sizeof(msg));
			msg.msg_iov = &iov;
			msg.msg_iovlen = 1;
			msg.msg_control = cm.b;
			msg.msg_controllen = sizeof(cm.b);
			CMSG_FIRSTHDR(&msg)->cmsg_level = SOL_SOCKET;
			CMSG_FIRSTHDR(&msg)->cmsg_type = SCM_RIGHTS;
			CMSG_FIRSTHDR(&msg)->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(CMSG_FIRSTHDR(&msg)), &fd, sizeof(int));
			sendmsg(sfd, &msg, MSG_NOSIGNAL);
			close(fd);
		}
	}
	return n;
}

/*
 * The spares against a queue role whose OPENs fail (a fake one): the
 * client asks ahead once, and after a failure only for what DATA needs,
 * until an OPEN works again (no storm of OPENs on a full disk).
 */
static void
test_spare_errors(void)
{
	struct sockaddr_un sun;
	struct res o = { 0 };
	struct queuec *q2;
	const char *path = sun.sun_path;
	int l, sfd, n;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/fake.sock", tmpdir);
	l = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
	    listen(l, 4) < 0) {
		ok(0, "fake queue socket: %s", strerror(errno));
		return;
	}
	q2 = queuec_new(base, path);
	queuec_open(q2, open_cb, &o);
	sfd = accept(l, NULL, NULL);
	n = fake_answer(sfd, 0);
	wait_done(&o.done);
	ok(!o.ok && strstr(o.err, "disk full") != NULL,
	    "an OPEN refused by the queue role reaches the caller: %s", o.err);
	is_int(n, 9, "first DATA: its own OPEN and 8 asked ahead");
	spin(50);
	memset(&o, 0, sizeof(o));
	queuec_open(q2, open_cb, &o);
	n = fake_answer(sfd, 0);
	wait_done(&o.done);
	is_int(n, 1, "after failures: only the OPEN that DATA needs");
	memset(&o, 0, sizeof(o));
	queuec_open(q2, open_cb, &o);
	n = fake_answer(sfd, 1);
	wait_done(&o.done);
	ok(o.ok, "an OPEN that works again");
	spin(50);
	n = fake_answer(sfd, 1);
	is_int(n, 8, "and the spares are asked for again");
	spin(50);
	is_int((int)queuec_spare_count(q2), 8, "8 spares at hand");
	close(o.fd);
	queuec_free(q2);
	close(sfd);
	close(l);
	unlink(path);
}

static void
test_raw(void)
{
	char buf[512], big[1024], qid[QID_LEN + 1];
	int a, b, rfd, n;

	a = raw_connect();
	b = raw_connect();
	ok(a >= 0 && b >= 0, "raw connections");
	n = raw_request(a, "OPEN", buf, sizeof(buf), &rfd);
	ok(n == 3 + QID_LEN && strncmp(buf, "OK ", 3) == 0 && rfd >= 0,
	    "raw OPEN: '%s' with an fd", buf);
	memcpy(qid, buf + 3, QID_LEN);
	qid[QID_LEN] = '\0';
	write_message(rfd, qid, "raw");
	close(rfd);

	snprintf(big, sizeof(big), "COMMIT %s", qid);
	raw_request(b, big, buf, sizeof(buf), &rfd);
	ok(strncmp(buf, "ERR", 3) == 0, "another connection cannot COMMIT it: '%s'", buf);
	raw_request(a, "HELLO", buf, sizeof(buf), &rfd);
	ok(strncmp(buf, "ERR", 3) == 0, "unknown request answered ERR");

	/* the client goes away with an open file: the file goes too */
	close(a);
	spin(100);
	ok(!exists("incoming", qid), "a client that disconnects loses its open files");

	memset(big, 'A', sizeof(big));
	send(b, big, sizeof(big), MSG_NOSIGNAL);
	n = (int)raw_recv(b, buf, sizeof(buf), &rfd);
	is_int(n, 0, "an oversized packet closes the connection");
	close(b);
}

int
main(void)
{
	struct sockaddr_un sun;
	struct passwd *pw;
	struct queuec *q;
	struct res o = { 0 }, c = { 0 };
	char leftover[QID_LEN + 1] = "";
	pid_t pid;
	int st, fd;
	long long len;
	char path[512];

	alarm(60);
	signal(SIGPIPE, SIG_IGN);
	log_init("test-queue", true, getenv("TEST_DEBUG") != NULL, NULL);
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(sockpath, sizeof(sockpath), "%s/queue.sock", tmpdir);
	snprintf(statedir, sizeof(statedir), "%s/state", tmpdir);
	cfg.state_dir = statedir;
	cfg.queue_socket = sockpath;
	if (geteuid() == 0) {
		/* as root, the role really drops privileges to nobody */
		if ((pw = getpwnam("nobody")) == NULL) {
			printf("1..0 # SKIP no user nobody\n");
			return 0;
		}
		cfg.user = "nobody";
		chmod(tmpdir, 0711);
	} else {
		pw = getpwuid(geteuid());
		cfg.user = pw ? pw->pw_name : "nobody";
	}

	/* a crash leftover in incoming/ and a committed message in queue/ */
	mkdir(statedir, 0700);
	if (geteuid() == 0 && chown(statedir, pw->pw_uid, pw->pw_gid) < 0)
		perror("chown");
	snprintf(path, sizeof(path), "%s/incoming", statedir);
	mkdir(path, 0700);
	qfile_path(path, sizeof(path), statedir, "incoming", "00000000000000AA");
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	write_message(fd, "00000000000000AA", "leftover");
	close(fd);
	snprintf(path, sizeof(path), "%s/queue", statedir);
	mkdir(path, 0700);
	qfile_path(path, sizeof(path), statedir, "queue", "00000000000000BB");
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	write_message(fd, "00000000000000BB", "committed before");
	close(fd);

	lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, sockpath, strlen(sockpath) + 1);
	if (bind(lfd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(lfd, 64) < 0) {
		perror("bind");
		return 1;
	}

	base = event_base_new();
	q = queuec_new(base, sockpath);
	pid = start_role();

	test_basic(q);
	if (geteuid() == 0) {
		struct stat sb;

		snprintf(path, sizeof(path), "%s/queue", statedir);
		ok(stat(path, &sb) == 0 && sb.st_uid == pw->pw_uid,
		    "as root: queue/ belongs to the role's user");
	}
	test_group(q);
	test_refusals(q);
	test_abort_cancel(q);
	test_raw();
	test_spare_errors();

	/* kill -9 with an open file: the leftover stays until the next start */
	queuec_open(q, open_cb, &o);
	wait_done(&o.done);
	len = write_message(o.fd, o.qid, "crash");
	close(o.fd);
	st = stop_role(pid, SIGKILL);
	ok(WIFSIGNALED(st), "role killed with SIGKILL");
	ok(exists("incoming", o.qid), "its open file is left in incoming/");
	memcpy(leftover, o.qid, sizeof(leftover));
	queuec_commit(q, o.qid, len, commit_cb, &c);
	wait_done(&c.done);
	ok(!c.ok, "COMMIT on the dead connection fails: %s", c.err);
	{
		int committed = count_dir("queue");

		pid = start_role();
		memset(&o, 0, sizeof(o));
		queuec_open(q, open_cb, &o);
		wait_done(&o.done);
		ok(o.ok, "the client reconnects to the restarted role (%s)", o.err);
		spin(50);
		ok(!exists("incoming", leftover), "the restart removed the leftover");
		is_int(count_dir("incoming"), 1 + (int)queuec_spare_count(q),
		    "only the new file and the spares are in incoming/");
		is_int(count_dir("queue"), committed, "committed messages survived");
		queuec_abort(q, o.qid);
		close(o.fd);
	}

	/* SIGTERM: the role keeps serving connected clients, then exits 0 */
	queuec_free(q);
	{
		char buf[256];
		int a = raw_connect(), rfd = -1, n;

		spin(50);
		kill(pid, SIGTERM);
		spin(200);
		ok(waitpid(pid, &st, WNOHANG) == 0, "SIGTERM: the role waits for its client");
		n = raw_request(a, "OPEN", buf, sizeof(buf), &rfd);
		ok(n > 3 && strncmp(buf, "OK ", 3) == 0 && rfd >= 0,
		    "and still serves it while stopping");
		if (rfd >= 0)
			close(rfd);
		close(a);
		if (waitpid(pid, &st, 0) != pid)
			st = -1;
		ok(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		    "once the client is gone the role exits 0");
		is_int(count_dir("incoming"), 0, "its open file was removed");

		/* a second SIGTERM does not wait for clients */
		pid = start_role();
		a = raw_connect();
		raw_request(a, "OPEN", buf, sizeof(buf), &rfd);
		if (rfd >= 0)
			close(rfd);
		kill(pid, SIGTERM);
		spin(100);
		st = stop_role(pid, SIGTERM);
		ok(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		    "a second SIGTERM: exit 0 with a client still connected");
		close(a);
		is_int(count_dir("incoming"), 0, "nothing left in incoming/");
	}

	/* no role at all */
	close(lfd);
	unlink(sockpath);
	q = queuec_new(base, sockpath);
	memset(&o, 0, sizeof(o));
	queuec_open(q, open_cb, &o);
	ok(!o.done, "failure is reported later, not inside the call");
	wait_done(&o.done);
	ok(!o.ok && strcmp(o.err, "queue unavailable") == 0,
	    "no queue role: '%s'", o.err);
	queuec_free(q);
	event_base_free(base);

	{
		char cmd[600];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			printf("# cleanup failed\n");
	}
	return done_testing();
}
