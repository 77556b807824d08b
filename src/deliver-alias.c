/*
 * deliver-alias.c - command and file deliveries of alias targets (see
 * deliver-alias.h).  Runs in a child of the delivery helper that already
 * switched to relay.alias_user; it is single-threaded, so it may fork.
 *
 * A command is three processes: this one (collects the command's output,
 * bounded, and enforces the time limit), the command (/bin/sh -c, its own
 * session, so that the whole group can be killed) and a feeder that
 * writes the message into the command's standard input - so a command that
 * writes a lot before reading, or never reads, cannot block us.
 */
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deliver-alias.h"
#include "util.h"

#define SLICE_MS 50

/* ---- pure parts ------------------------------------------------------- */

void
alias_from_line(char *buf, size_t len, const char *sender, time_t t)
{
	char who[300], date[64];
	struct tm tm;
	size_t i;

	if (sender == NULL || sender[0] == '\0')
		sender = "MAILER-DAEMON";
	for (i = 0; sender[i] != '\0' && i + 1 < sizeof(who); i++) {
		unsigned char c = (unsigned char)sender[i];

		who[i] = c <= 0x20 || c == 0x7f ? '_' : (char)c;
	}
	who[i] = '\0';
	localtime_r(&t, &tm);
	strftime(date, sizeof(date), "%a %b %e %H:%M:%S %Y", &tm);
	snprintf(buf, len, "From %s  %s\n", who, date);
}

/* sysexits(3) as Postfix reads them: code, class, text. */
static const struct {
	int code;
	const char *dsn;
	const char *text;
} sysexits[] = {
	{ 64, "5.3.0", "command line usage error" },
	{ 65, "5.6.0", "data format error" },
	{ 66, "5.3.0", "cannot open input" },
	{ 67, "5.1.1", "user unknown" },
	{ 68, "5.1.2", "host name unknown" },
	{ 69, "5.3.0", "service unavailable" },
	{ 70, "5.3.0", "internal software error" },
	{ 71, "4.3.0", "system resource problem" },
	{ 72, "5.3.0", "critical OS file missing" },
	{ 73, "5.2.0", "can't create user output file" },
	{ 74, "5.3.0", "input/output error" },
	{ 75, "4.3.0", "temporary failure" },
	{ 76, "5.5.0", "remote error in protocol" },
	{ 77, "5.7.0", "permission denied" },
	{ 78, "5.3.5", "local configuration error" },
};

/* The command's output on one line: control characters as spaces. */
static void
one_line(char *dst, size_t len, const char *s)
{
	size_t j = 0;
	bool space = false;

	for (; *s != '\0' && j + 1 < len; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c == 0x7f) {
			space = j > 0;
			continue;
		}
		if (space && j + 2 < len)
			dst[j++] = ' ';
		space = false;
		dst[j++] = (char)c;
	}
	dst[j] = '\0';
}

void
alias_command_verdict(int wstatus, bool timed_out, int timeout_s,
    const char *output, struct delivery_rcpt *r)
{
	char out[300];

	one_line(out, sizeof(out), output ? output : "");
	if (timed_out) {
		delivery_set(r, DELIVERY_DEFER, "4.3.0", "command time limit exceeded "
		    "(%d s)%s%s", timeout_s, out[0] ? ": " : "", out);
		return;
	}
	if (WIFSIGNALED(wstatus)) {
		delivery_set(r, DELIVERY_DEFER, "4.3.0", "command died with signal %d%s%s",
		    WTERMSIG(wstatus), out[0] ? ": " : "", out);
		return;
	}
	if (!WIFEXITED(wstatus)) {
		delivery_set(r, DELIVERY_DEFER, "4.3.0", "command ended abnormally");
		return;
	}
	if (WEXITSTATUS(wstatus) == 0) {
		delivery_set(r, DELIVERY_SENT, "2.0.0", "delivered to command");
		return;
	}
	for (size_t i = 0; i < sizeof(sysexits) / sizeof(sysexits[0]); i++)
		if (sysexits[i].code == WEXITSTATUS(wstatus)) {
			delivery_set(r, sysexits[i].dsn[0] == '4' ? DELIVERY_DEFER :
			    DELIVERY_BOUNCE, sysexits[i].dsn, "command exited with "
			    "status %d (%s)%s%s", WEXITSTATUS(wstatus), sysexits[i].text,
			    out[0] ? ": " : "", out);
			return;
		}
	delivery_set(r, DELIVERY_BOUNCE, "5.3.0", "command exited with status %d%s%s",
	    WEXITSTATUS(wstatus), out[0] ? ": " : "", out);
}

void
mbox_quote_init(struct mbox_quote *q, int (*out)(void *, const char *, size_t),
    void *arg)
{
	memset(q, 0, sizeof(*q));
	q->out = out;
	q->arg = arg;
	q->bol = true;
}

static int
mq_put(struct mbox_quote *q, const char *p, size_t n)
{
	if (q->len + n > sizeof(q->buf)) {
		if (q->len > 0 && q->out(q->arg, q->buf, q->len) < 0)
			return -1;
		q->len = 0;
		if (n > sizeof(q->buf))
			return q->out(q->arg, p, n);
	}
	memcpy(q->buf + q->len, p, n);
	q->len += n;
	return 0;
}

/*
 * At the start of a line the bytes that match "From " are held back
 * (npend) until the line either becomes "From " (then ">From " goes
 * out) or stops matching (then they go out as they were).
 */
int
mbox_quote_feed(struct mbox_quote *q, const char *p, size_t n)
{
	static const char from[] = "From ";

	for (size_t i = 0; i < n; i++) {
		char c = p[i];

		if (q->bol) {
			if (c == from[q->npend]) {
				if (++q->npend == 5) {
					if (mq_put(q, ">From ", 6) < 0)
						return -1;
					q->npend = 0;
					q->bol = false;
				}
				continue;
			}
			if (q->npend > 0 && mq_put(q, from, q->npend) < 0)
				return -1;
			q->npend = 0;
		}
		if (mq_put(q, &c, 1) < 0)
			return -1;
		q->bol = c == '\n';
	}
	return 0;
}

int
mbox_quote_end(struct mbox_quote *q)
{
	if (q->npend > 0 && mq_put(q, "From ", q->npend) < 0)
		return -1;
	q->npend = 0;
	if (q->len > 0 && q->out(q->arg, q->buf, q->len) < 0)
		return -1;
	q->len = 0;
	return 0;
}

/* ---- commands --------------------------------------------------------- */

static int
fd_out(void *arg, const char *p, size_t n)
{
	return write_all(*(int *)arg, p, n) < 0 ? -1 : 0;
}

/* The feeder: From_ line, headers and message into fd; never returns. */
static void __attribute__((noreturn))
feed(int fd, const struct alias_job *j, const struct delivery_msg *msg)
{
	char from[400];

	signal(SIGPIPE, SIG_IGN);        /* EPIPE: the command stopped reading */
	alias_from_line(from, sizeof(from), j->sender, time(NULL));
	if (write_all(fd, from, strlen(from)) < 0 ||
	    write_all(fd, j->head, j->hlen) < 0 ||
	    delivery_copy_body(msg, DELIVERY_COPY_LF, fd_out, &fd) < 0)
		_exit(1);
	_exit(0);
}

/* The command itself (in the child): never returns. */
static void __attribute__((noreturn))
run_command(const char *cmd, const struct alias_job *j, int in, int out)
{
	char *env[8];
	int n = 0;
	sigset_t none;

	(void)setsid();
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
		_exit(71);
	closefrom(3);
	for (int s = 1; s < NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP)
			(void)signal(s, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	alarm(0);
	if (chdir(j->home) < 0 && chdir("/") < 0)
		_exit(71);
	env[n++] = xasprintf("PATH=/usr/local/bin:/usr/bin:/bin");
	env[n++] = xasprintf("SHELL=/bin/sh");
	env[n++] = xasprintf("HOME=%s", j->home);
	env[n++] = xasprintf("USER=%s", j->user);
	env[n++] = xasprintf("LOGNAME=%s", j->user);
	env[n++] = xasprintf("SENDER=%s", j->sender);
	env[n++] = xasprintf("RECIPIENT=%s", j->rcpt);
	env[n] = NULL;
	execle("/bin/sh", "sh", "-c", cmd, (char *)NULL, env);
	_exit(127);
}

void
alias_deliver_command(const struct alias_job *j, const struct delivery_msg *msg,
    struct delivery_rcpt *r)
{
	const char *cmd = j->target + 1;
	char output[ALIAS_OUTPUT_MAX + 1];
	size_t olen = 0;
	int in[2], out[2], status = 0, e;
	pid_t pid, feeder;
	bool exited = false, eof = false, timed_out = false;
	uint64_t deadline = now_ms() + (uint64_t)j->timeout_s * 1000;

	while (*cmd == ' ' || *cmd == '\t')
		cmd++;
	if (*cmd == '\0') {
		delivery_set(r, DELIVERY_BOUNCE, "5.3.5", "empty command in the aliases");
		return;
	}
	if (pipe2(in, O_CLOEXEC) < 0)
		goto syserr;
	if (pipe2(out, O_CLOEXEC) < 0) {
		close(in[0]);
		close(in[1]);
		goto syserr;
	}
	if ((pid = fork()) < 0) {
		close(in[0]);
		close(in[1]);
		close(out[0]);
		close(out[1]);
		goto syserr;
	}
	if (pid == 0)
		run_command(cmd, j, in[0], out[1]);
	(void)setpgid(pid, pid);         /* as the command does: no race */
	close(in[0]);
	close(out[1]);
	if ((feeder = fork()) == 0) {
		close(out[0]);
		feed(in[1], j, msg);
	}
	close(in[1]);
	if (feeder < 0) {
		e = errno;
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		close(out[0]);
		delivery_set(r, DELIVERY_DEFER, "4.3.0", "cannot fork: %s",
		    strerror(e));
		return;
	}
	(void)set_nonblock(out[0]);
	for (;;) {
		struct pollfd p = { .fd = out[0], .events = POLLIN };
		uint64_t now;

		if (!exited && waitpid(pid, &status, WNOHANG) == pid)
			exited = true;
		while (!eof) {
			char buf[4096];
			ssize_t n = read(out[0], buf, sizeof(buf));

			if (n == 0)
				eof = true;
			if (n <= 0) {
				if (n < 0 && errno == EINTR)
					continue;
				break;
			}
			if (olen < ALIAS_OUTPUT_MAX) {
				size_t k = (size_t)n < ALIAS_OUTPUT_MAX - olen ?
				    (size_t)n : ALIAS_OUTPUT_MAX - olen;

				memcpy(output + olen, buf, k);
				olen += k;
			}
		}
		if (exited)
			break;
		if ((now = now_ms()) >= deadline) {
			timed_out = true;
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
				;
			break;
		}
		if (eof)
			(void)poll(NULL, 0, SLICE_MS);
		else
			(void)poll(&p, 1, deadline - now < SLICE_MS ?
			    (int)(deadline - now) : SLICE_MS);
	}
	close(out[0]);
	/* done with the command: a feeder still writing is pointless */
	kill(feeder, SIGKILL);
	while (waitpid(feeder, NULL, 0) < 0 && errno == EINTR)
		;
	output[olen] = '\0';
	alias_command_verdict(status, timed_out, j->timeout_s, output, r);
	return;
syserr:
	delivery_set(r, DELIVERY_DEFER, "4.3.0", "cannot start the command: %s",
	    strerror(errno));
}

/* ---- files ------------------------------------------------------------ */

static int
quote_out(void *arg, const char *p, size_t n)
{
	return mbox_quote_feed(arg, p, n);
}

/* Take the fcntl() write lock, waiting at most ALIAS_LOCK_SECS. */
static int
lock_file(int fd)
{
	struct flock fl;
	uint64_t deadline = now_ms() + ALIAS_LOCK_SECS * 1000;

	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	for (;;) {
		if (fcntl(fd, F_SETLK, &fl) == 0)
			return 0;
		if (errno != EAGAIN && errno != EACCES && errno != EINTR)
			return -1;
		if (now_ms() >= deadline)
			return errno = EWOULDBLOCK, -1;
		(void)poll(NULL, 0, 100);
	}
}

void
alias_deliver_file(const struct alias_job *j, const struct delivery_msg *msg,
    struct delivery_rcpt *r)
{
	const char *path = j->target;
	struct mbox_quote *q;
	struct stat st;
	char from[400];
	int fd, e;
	const char *step;

	if (strcmp(path, "/dev/null") == 0) {
		delivery_set(r, DELIVERY_SENT, "2.0.0", "discarded (/dev/null)");
		return;
	}
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NOCTTY |
	    O_NONBLOCK | O_CLOEXEC, 0600);
	if (fd < 0) {
		e = errno;
		if (e == ELOOP)
			delivery_set(r, DELIVERY_BOUNCE, "5.2.0", "cannot append to "
			    "%.200s: it is a symbolic link", path);
		else
			delivery_set(r, DELIVERY_DEFER, e == ENOSPC || e == EDQUOT ?
			    "4.2.2" : "4.2.0", "cannot open %.200s: %s", path,
			    strerror(e));
		return;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (st.st_mode & (S_IXUSR | S_IXGRP | S_IXOTH)) || st.st_nlink != 1) {
		delivery_set(r, DELIVERY_BOUNCE, "5.2.0", "cannot append to %.200s: "
		    "not a regular, non-executable file with one link", path);
		close(fd);
		return;
	}
	(void)fcntl(fd, F_SETFL, O_WRONLY | O_APPEND);
	if (lock_file(fd) < 0) {
		delivery_set(r, DELIVERY_DEFER, "4.2.0", "cannot lock %.200s: %s",
		    path, errno == EWOULDBLOCK ? "locked by another process" :
		    strerror(errno));
		close(fd);
		return;
	}
	if (fstat(fd, &st) < 0) {
		delivery_set(r, DELIVERY_DEFER, "4.2.0", "cannot stat %.200s: %s",
		    path, strerror(errno));
		close(fd);
		return;
	}
	alias_from_line(from, sizeof(from), j->sender, time(NULL));
	q = xmalloc(sizeof(*q));
	mbox_quote_init(q, fd_out, &fd);
	step = "write to";
	if (write_all(fd, from, strlen(from)) < 0 ||
	    write_all(fd, j->head, j->hlen) < 0 ||
	    delivery_copy_body(msg, DELIVERY_COPY_LF, quote_out, q) < 0 ||
	    mbox_quote_end(q) < 0 || write_all(fd, "\n", 1) < 0)
		goto fail;
	step = "fsync";
	if (fsync(fd) < 0)
		goto fail;
	free(q);
	if (close(fd) < 0) {
		delivery_set(r, DELIVERY_DEFER, "4.2.0", "cannot close %.200s: %s",
		    path, strerror(errno));
		return;
	}
	delivery_set(r, DELIVERY_SENT, "2.0.0", "delivered to file");
	return;
fail:
	e = errno;
	/* leave no partial message behind */
	if (ftruncate(fd, st.st_size) == 0)
		(void)fsync(fd);
	free(q);
	close(fd);
	delivery_set(r, DELIVERY_DEFER, e == ENOSPC || e == EDQUOT ? "4.2.2" :
	    "4.2.0", "cannot %s %.200s: %s", step, path, strerror(e));
}
