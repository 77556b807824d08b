/*
 * test-deliver-local.c - unit tests of local delivery's pure and
 * process-local parts: mbox "From " quoting across chunk boundaries, the
 * From_ line, the sysexits verdicts of commands, the delivery helper's
 * own request checks (uid 0, min_uid, commands and files off, paths),
 * userdb fields -> owner (numbers, names, primary group, home), the uid
 * rule, and - as the invoking user, without the helper - a Maildir store,
 * an mbox append (locking, quoting, refusals) and command runs (stdin,
 * environment, exit 75, exit 67 with output, time limit).
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "deliver-alias.h"
#include "deliver-helper.h"
#include "mailbox-owner.h"
#include "maildir.h"
#include "util.h"
#include "tap.h"

static char dir[] = "/tmp/msagate-local-XXXXXX";

struct collect {
	char buf[4096];
	size_t len;
};

static int
collect_out(void *arg, const char *p, size_t n)
{
	struct collect *c = arg;

	if (c->len + n >= sizeof(c->buf))
		return -1;
	memcpy(c->buf + c->len, p, n);
	c->len += n;
	c->buf[c->len] = '\0';
	return 0;
}

/* Quote text fed in chunks of `chunk` bytes. */
static const char *
quote(const char *text, size_t chunk)
{
	static struct collect c;
	struct mbox_quote q;
	size_t n = strlen(text);

	memset(&c, 0, sizeof(c));
	mbox_quote_init(&q, collect_out, &c);
	for (size_t i = 0; i < n; i += chunk)
		mbox_quote_feed(&q, text + i, n - i < chunk ? n - i : chunk);
	mbox_quote_end(&q);
	return c.buf;
}

static const char *
verdict(int wstatus, bool timed_out, const char *out)
{
	static char s[600];
	struct delivery_rcpt r;

	memset(&r, 0, sizeof(r));
	alias_command_verdict(wstatus, timed_out, 7, out, &r);
	snprintf(s, sizeof(s), "%c %s %s", "SDB"[r.status], r.dsn, r.detail);
	return s;
}

static char *
slurp(const char *path)
{
	static char buf[8192];
	FILE *f = fopen(path, "r");
	size_t n;

	buf[0] = '\0';
	if (f == NULL)
		return buf;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* A queued message: the test's queue file is only the message. */
static int
make_msg(struct delivery_msg *m, const char *text)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/qfile", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		return -1;
	memset(m, 0, sizeof(*m));
	m->fd = fd;
	m->body_offset = 0;
	m->body_size = (long long)strlen(text);
	return 0;
}

static const char *
run_cmd(const char *cmd, int timeout, struct delivery_msg *m)
{
	static char s[600];
	struct delivery_rcpt r;
	struct passwd *pw = getpwuid(geteuid());
	struct alias_job j = {
		.target = cmd, .sender = "alice@example.test",
		.rcpt = "list@example.test",
		.head = "Return-Path: <alice@example.test>\nDelivered-To: list@example.test\n",
		.user = pw ? pw->pw_name : "x", .home = dir, .timeout_s = timeout,
	};

	j.hlen = strlen(j.head);
	memset(&r, 0, sizeof(r));
	alias_deliver_command(&j, m, &r);
	snprintf(s, sizeof(s), "%c %s %s", "SDB"[r.status], r.dsn, r.detail);
	return s;
}

static const char *
append_file(const char *path, struct delivery_msg *m)
{
	static char s[600];
	struct delivery_rcpt r;
	struct alias_job j = {
		.target = path, .sender = "",
		.rcpt = "list@example.test",
		.head = "Return-Path: <>\nDelivered-To: list@example.test\n",
		.user = "x", .home = "/", .timeout_s = 5,
	};

	j.hlen = strlen(j.head);
	memset(&r, 0, sizeof(r));
	alias_deliver_file(&j, m, &r);
	snprintf(s, sizeof(s), "%c %s %s", "SDB"[r.status], r.dsn, r.detail);
	return s;
}

int
main(void)
{
	struct msagate_config cfg;
	struct helper_request req;
	struct mailbox_owner o;
	struct delivery_msg m;
	char err[200], buf[512], path[512], why[160];
	const char *s;
	uid_t me = geteuid();
	gid_t mg = getegid();

	if (mkdtemp(dir) == NULL)
		return 2;

	/* ---- mbox quoting */
	is_str(quote("From me\nhello\nFrom you\n", 100),
	       ">From me\nhello\n>From you\n", "From_ lines quoted");
	is_str(quote("From me\nhello\nFrom you\n", 1), ">From me\nhello\n>From you\n",
	       "also fed one byte at a time");
	is_str(quote("From me\nhello\nFrom you\n", 3), ">From me\nhello\n>From you\n",
	       "and in chunks of three");
	is_str(quote("Fro\nFrom\n From x\n>From y\nFromage\n", 2),
	       "Fro\nFrom\n From x\n>From y\nFromage\n",
	       "only \"From \" at the start of a line is quoted");
	is_str(quote("x\nFro", 1), "x\nFro", "a held-back prefix is flushed at the end");

	alias_from_line(buf, sizeof(buf), "", 0);
	ok(strncmp(buf, "From MAILER-DAEMON  ", 20) == 0 && buf[strlen(buf) - 1] == '\n',
	   "From_ line of the null sender: %s", buf);
	alias_from_line(buf, sizeof(buf), "\"a b\"@x\t", 0);
	ok(strncmp(buf, "From \"a_b\"@x_  ", 15) == 0, "white space in the sender: %s", buf);

	/* ---- command verdicts */
	is_str(verdict(0, false, ""), "S 2.0.0 delivered to command", "exit 0: sent");
	is_str(verdict(75 << 8, false, ""),
	       "D 4.3.0 command exited with status 75 (temporary failure)", "exit 75: deferred");
	is_str(verdict(71 << 8, false, ""),
	       "D 4.3.0 command exited with status 71 (system resource problem)",
	       "exit 71 (EX_OSERR): deferred, as in Postfix");
	is_str(verdict(67 << 8, false, "no such\nuser\n"),
	       "B 5.1.1 command exited with status 67 (user unknown): no such user",
	       "exit 67: bounced with the output on one line");
	is_str(verdict(1 << 8, false, ""), "B 5.3.0 command exited with status 1",
	       "exit 1: bounced");
	is_str(verdict(9, false, ""), "D 4.3.0 command died with signal 9",
	       "a signal: deferred");
	is_str(verdict(9, true, "partial"), "D 4.3.0 command time limit exceeded (7 s): partial",
	       "time limit: deferred");

	/* ---- the helper's checks */
	memset(&cfg, 0, sizeof(cfg));
	cfg.relay.delivery_min_uid = 1000;
	memset(&req, 0, sizeof(req));
	req.kind = HELPER_MAILDIR;
	req.target = "/var/mail/example.test/carl/Maildir";
	req.sender = "alice@example.test";
	req.rcpt = "carl@example.test";
	req.head = "Return-Path: <alice@example.test>\nDelivered-To: carl@example.test\n";
	req.uid = 1001;
	req.gid = 1001;
	ok(deliver_helper_check(&req, &cfg, true, 0, 0) == NULL, "Maildir as uid 1001: fine");
	req.uid = 0;
	s = deliver_helper_check(&req, &cfg, true, 0, 0);
	ok(s && strstr(s, "uid 0"), "uid 0 refused: %s", s ? s : "accepted");
	req.uid = 999;
	s = deliver_helper_check(&req, &cfg, true, 0, 0);
	ok(s && strstr(s, "below relay.delivery.min_uid (1000)"), "uid below min_uid: %s",
	   s ? s : "accepted");
	req.uid = 1001;
	req.gid = 0;
	s = deliver_helper_check(&req, &cfg, true, 0, 0);
	ok(s && strstr(s, "gid 0"), "gid 0 refused: %s", s ? s : "accepted");
	req.gid = 1001;
	s = deliver_helper_check(&req, &cfg, false, 500, 500);
	ok(s && strstr(s, "not started as root"), "not root: other uids refused: %s",
	   s ? s : "accepted");
	req.uid = req.gid = 500;
	ok(deliver_helper_check(&req, &cfg, false, 500, 500) == NULL,
	   "not root: its own uid is fine (also below min_uid)");
	req.uid = req.gid = 1001;
	req.target = "/var/mail/../etc/Maildir";
	ok(deliver_helper_check(&req, &cfg, true, 0, 0) != NULL, "\"..\" in the path refused");
	req.target = "var/mail/x";
	ok(deliver_helper_check(&req, &cfg, true, 0, 0) != NULL, "relative path refused");
	req.target = "/var/mail/x";
	req.head = "Return-Path: <a>\n\nX: y\n";
	ok(deliver_helper_check(&req, &cfg, true, 0, 0) != NULL,
	   "an empty header line (end of the header) refused");
	req.head = "Return-Path: <a>\rX: y\n";
	ok(deliver_helper_check(&req, &cfg, true, 0, 0) != NULL, "CR in the header refused");
	req.head = "";
	req.kind = HELPER_COMMAND;
	req.target = "|/bin/true";
	s = deliver_helper_check(&req, &cfg, true, 0, 0);
	ok(s && strstr(s, "allow_alias_commands"), "commands off: refused: %s", s ? s : "accepted");
	cfg.relay.allow_alias_commands = true;
	ok(deliver_helper_check(&req, &cfg, true, 0, 0) == NULL, "commands on: fine");
	req.target = "/bin/true";
	ok(deliver_helper_check(&req, &cfg, true, 0, 0) != NULL, "a command must start with |");
	req.kind = HELPER_FILE;
	req.target = "/var/mail/copy";
	s = deliver_helper_check(&req, &cfg, true, 0, 0);
	ok(s && strstr(s, "allow_alias_files"), "files off: refused: %s", s ? s : "accepted");
	cfg.relay.allow_alias_files = true;
	ok(deliver_helper_check(&req, &cfg, true, 0, 0) == NULL, "files on: fine");
	req.kind = (enum helper_kind)9;
	ok(deliver_helper_check(&req, &cfg, true, 0, 0) != NULL, "unknown kind refused");

	/* ---- owners */
	ok(mailbox_owner_fields("uid=1234\tgid=2345\thome=/home/c\tquota=1G", &o, err,
	   sizeof(err)) == 0 && o.has_uid && o.uid == 1234 && o.gid == 2345 &&
	   strcmp(o.home, "/home/c") == 0, "numeric uid, gid, home");
	ok(mailbox_owner_fields("home=/h", &o, err, sizeof(err)) == 0 && !o.has_uid &&
	   strcmp(o.home, "/h") == 0, "no uid: none");
	ok(mailbox_owner_fields("gid=12", &o, err, sizeof(err)) == 0 && !o.has_uid,
	   "a gid without uid is ignored");
	ok(mailbox_owner_fields("uid=root\tgid=root", &o, err, sizeof(err)) == 0 &&
	   o.has_uid && o.uid == 0 && o.gid == 0, "names resolve (root)");
	ok(mailbox_owner_fields("uid=0", &o, err, sizeof(err)) == 0 && o.gid == 0,
	   "a uid without gid takes the account's group");
	ok(mailbox_owner_fields("uid=no-such-user-here", &o, err, sizeof(err)) < 0 &&
	   strstr(err, "unknown"), "unknown user name: %s", err);
	ok(mailbox_owner_fields("uid=1\tgid=no-such-group-here", &o, err, sizeof(err)) < 0,
	   "unknown group name: %s", err);
	ok(mailbox_owner_fields("uid=4000000000\tgid=1", &o, err, sizeof(err)) == 0 &&
	   o.uid == 4000000000U, "large uid");
	ok(mailbox_owner_fields("uid=12\tgid=12\thome=rel", &o, err, sizeof(err)) < 0,
	   "relative home refused: %s", err);
	ok(mailbox_owner_fields("uid=12\tgid=12\thome=/a\001tb", &o, err, sizeof(err)) < 0,
	   "escaped TAB in home refused");
	ok(mailbox_owner_refused(0, 5, 1000, why, sizeof(why)) != NULL, "uid 0: refused");
	ok(mailbox_owner_refused(1000, 1000, 1000, why, sizeof(why)) == NULL,
	   "uid == min_uid: fine");
	ok(mailbox_owner_refused(5, 5, 1, why, sizeof(why)) == NULL, "min_uid 1: uid 5 fine");
	is_int(mailbox_owner_lookup("/nonexistent/socket", "a", "b", 300, &o, err,
	       sizeof(err)), OWNER_TEMPFAIL, "lookup without the socket: tempfail");

	/* ---- a Maildir, as ourselves */
	ok(make_msg(&m, "Subject: t\r\n\r\nbody\r\nFrom line\r\n") == 0, "message file");
	{
		const char *step = "";
		char md[300];
		int rc;

		snprintf(md, sizeof(md), "%s/mail/x/Maildir", dir);
		rc = maildir_store(md, "host\\057x", "Return-Path: <a>\n", 17, &m, &step);
		ok(rc == 0, "maildir_store: %s", rc ? strerror(errno) : "ok");
		snprintf(path, sizeof(path), "%s/new", md);
		{
			struct stat st;

			ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0700,
			   "new/ created with mode 0700");
		}
		snprintf(path, sizeof(path), "%s/mail/x/file", dir);
		close(open(path, O_WRONLY | O_CREAT, 0600));
		snprintf(md, sizeof(md), "%s/mail/x/file/Maildir", dir);
		rc = maildir_store(md, "h", "", 0, &m, &step);
		ok(rc < 0 && strcmp(step, "open or create the Maildir") == 0,
		   "a file in the way: %s", step);

		/* a symlink anywhere on the path is not followed */
		snprintf(path, sizeof(path), "%s/elsewhere", dir);
		mkdir(path, 0700);
		snprintf(md, sizeof(md), "%s/mail/link", dir);
		ok(symlink(path, md) == 0, "symlink made");
		snprintf(md, sizeof(md), "%s/mail/link/Maildir", dir);
		rc = maildir_store(md, "h", "", 0, &m, &step);
		ok(rc < 0 && (errno == ELOOP || errno == ENOTDIR),
		   "a symlinked directory on the path is refused (%s)", strerror(errno));
		snprintf(path, sizeof(path), "%s/elsewhere/Maildir", dir);
		ok(access(path, F_OK) != 0, "nothing was made behind the link");
		/* tmp/ as a symlink into another directory */
		snprintf(md, sizeof(md), "%s/mail/linked-tmp", dir);
		mkdir(md, 0700);
		snprintf(path, sizeof(path), "%s/mail/linked-tmp/tmp", dir);
		{
			char target[600];

			snprintf(target, sizeof(target), "%s/elsewhere", dir);
			ok(symlink(target, path) == 0, "tmp/ symlink made");
		}
		rc = maildir_store(md, "h", "", 0, &m, &step);
		ok(rc < 0, "a Maildir whose tmp/ is a symlink is refused (%s)", strerror(errno));
		/* a world-writable directory without the sticky bit */
		snprintf(path, sizeof(path), "%s/open", dir);
		mkdir(path, 0700);
		chmod(path, 0777);
		snprintf(md, sizeof(md), "%s/open/u/Maildir", dir);
		rc = maildir_store(md, "h", "", 0, &m, &step);
		ok(rc < 0 && errno == EPERM, "through a world-writable directory: refused (%s)",
		   strerror(errno));
		chmod(path, 01777);
		rc = maildir_store(md, "h", "", 0, &m, &step);
		ok(rc == 0, "through a sticky world-writable directory: delivered (%s)",
		   rc ? strerror(errno) : "ok");
		if (geteuid() == 0) {
			/* another user's directory on the path (as root: chown it) */
			snprintf(path, sizeof(path), "%s/theirs", dir);
			mkdir(path, 0755);
			ok(chown(path, 65534, 65534) == 0, "directory given to nobody");
			snprintf(md, sizeof(md), "%s/theirs/Maildir", dir);
			rc = maildir_store(md, "h", "", 0, &m, &step);
			ok(rc < 0 && errno == EPERM, "a directory of another user on the path: "
			   "refused (%s)", strerror(errno));
		}
	}

	/* ---- files (mbox) */
	snprintf(path, sizeof(path), "%s/box", dir);
	is_str(append_file(path, &m), "S 2.0.0 delivered to file", "append to a new file");
	is_str(append_file(path, &m), "S 2.0.0 delivered to file", "and once more");
	s = slurp(path);
	ok(strncmp(s, "From MAILER-DAEMON  ", 20) == 0, "starts with the From_ line");
	ok(strstr(s, "\nReturn-Path: <>\nDelivered-To: list@example.test\nSubject: t\n\nbody\n"
	   ">From line\n\nFrom MAILER-DAEMON ") != NULL,
	   "headers, LF line ends, >From quoting, an empty line between messages");
	{
		struct stat st;

		ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "created with mode 0600");
	}
	{
		/* another process holds the lock for a second: we wait for it */
		int fd = open(path, O_RDWR), p[2] = { -1, -1 };
		pid_t pid = -1;

		if (fd >= 0 && pipe(p) == 0 && (pid = fork()) == 0) {
			struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };

			close(p[0]);
			if (fcntl(fd, F_SETLK, &fl) < 0 || write(p[1], "x", 1) != 1)
				_exit(1);
			usleep(1000 * 1000);
			_exit(0);            /* the lock goes with the process */
		}
		if (pid > 0) {
			char c;
			uint64_t t0;

			close(p[1]);
			ok(read(p[0], &c, 1) == 1, "another process holds the lock");
			t0 = now_ms();
			is_str(append_file(path, &m), "S 2.0.0 delivered to file",
			       "append waits for the lock");
			ok(now_ms() - t0 >= 800, "waited %llu ms for it",
			   (unsigned long long)(now_ms() - t0));
			close(p[0]);
			waitpid(pid, NULL, 0);
		}
		if (fd >= 0)
			close(fd);
	}
	snprintf(buf, sizeof(buf), "%s/link", dir);
	(void)symlink(path, buf);
	s = append_file(buf, &m);
	ok(strncmp(s, "B 5.2.0", 7) == 0 && strstr(s, "symbolic link"), "symlink refused: %s", s);
	snprintf(buf, sizeof(buf), "%s/hard", dir);
	(void)link(path, buf);
	s = append_file(buf, &m);
	ok(strncmp(s, "B 5.2.0", 7) == 0, "hard-linked file refused: %s", s);
	unlink(buf);
	chmod(path, 0700);
	s = append_file(path, &m);
	ok(strncmp(s, "B 5.2.0", 7) == 0, "executable file refused: %s", s);
	s = append_file(dir, &m);
	ok(s[0] != 'S', "a directory is refused: %s", s);
	is_str(append_file("/dev/null", &m), "S 2.0.0 discarded (/dev/null)", "/dev/null");
	snprintf(buf, sizeof(buf), "%s/nodir/box", dir);
	s = append_file(buf, &m);
	ok(strncmp(s, "D 4.2.0", 7) == 0, "missing directory: deferred: %s", s);

	/* ---- commands */
	snprintf(buf, sizeof(buf), "|cat > %s/stdin; env > %s/env; pwd > %s/pwd", dir, dir, dir);
	is_str(run_cmd(buf, 10, &m), "S 2.0.0 delivered to command", "command: exit 0");
	snprintf(path, sizeof(path), "%s/stdin", dir);
	s = slurp(path);
	ok(strncmp(s, "From alice@example.test  ", 25) == 0 &&
	   strstr(s, "\nReturn-Path: <alice@example.test>\nDelivered-To: list@example.test\n"
	   "Subject: t\n\nbody\nFrom line\n") != NULL,
	   "stdin: From_ line, headers, the message (no quoting for commands)");
	snprintf(path, sizeof(path), "%s/env", dir);
	s = slurp(path);
	ok(strstr(s, "SENDER=alice@example.test\n") && strstr(s, "RECIPIENT=list@example.test\n") &&
	   strstr(s, "PATH=/usr/local/bin:/usr/bin:/bin\n"), "environment: SENDER, RECIPIENT, PATH");
	ok(strstr(s, "MSAGATE") == NULL, "nothing else of ours in the environment");
	snprintf(path, sizeof(path), "%s/pwd", dir);
	s = slurp(path);
	ok(strncmp(s, dir, strlen(dir)) == 0, "runs in the account's home: %s", s);
	is_str(run_cmd("|exit 75", 10, &m),
	       "D 4.3.0 command exited with status 75 (temporary failure)", "command: exit 75");
	is_str(run_cmd("|echo no such user; exit 67", 10, &m),
	       "B 5.1.1 command exited with status 67 (user unknown): no such user",
	       "command: exit 67 with output");
	is_str(run_cmd("|exec 0<&-; exit 0", 10, &m), "S 2.0.0 delivered to command",
	       "a command that does not read its input");
	{
		time_t t0 = time(NULL);

		s = run_cmd("|sleep 30", 1, &m);
		ok(strncmp(s, "D 4.3.0 command time limit exceeded (1 s)", 41) == 0,
		   "time limit: %s", s);
		ok(time(NULL) - t0 < 10, "killed in time (%ld s)", (long)(time(NULL) - t0));
	}
	is_str(run_cmd("|   ", 10, &m), "B 5.3.5 empty command in the aliases", "empty command");
	(void)me;
	(void)mg;

	close(m.fd);
	snprintf(buf, sizeof(buf), "rm -rf '%s'", dir);
	ok(system(buf) == 0, "clean up");
	return done_testing();
}
