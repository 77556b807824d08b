/*
 * ctl-queue.c - `msagatectl queue list|show|delete|flush`: reads
 * state_dir/queue directly (as root or as the queue user), the way mailq
 * and postsuper read Postfix's queue, with the per-recipient delivery
 * state from state_dir/status (qstatus.h).  Queue files are never changed
 * here, only listed, shown or removed.  Strings from the envelope came
 * from SMTP clients, so control characters are masked before printing.
 * `flush` asks the queue role over its socket ("FLUSH"); after `delete`
 * it is told to forget and log the deleted messages ("SWEEP").
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "qfile.h"
#include "qstatus.h"
#include "util.h"

#define SHOW_MAX_HEADER (1024 * 1024)   /* bytes of header section shown */

/* Print s with control characters (ESC, CR, ...) replaced by '?'. */
static void
put_safe(FILE *fp, const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		putc(ch < 0x20 || ch == 0x7f ? '?' : ch, fp);
	}
}

static const char *
fmt_time(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (localtime_r(&t, &tm) == NULL || strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(buf, len, "%lld", (long long)t);
	return buf;
}

/* Open state_dir/queue; on failure print why and return the exit code. */
static int
open_queue_dir(const struct msagate_config *cfg, int *dfd)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/queue", cfg->state_dir);
	*dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*dfd >= 0)
		return CTL_OK;
	if (errno == ENOENT) {
		fprintf(stderr, "msagatectl: %s does not exist (has msagated "
		    "been started with this configuration?)\n", path);
		return CTL_TEMPFAIL;
	}
	if (errno == EACCES) {
		fprintf(stderr, "msagatectl: cannot read %s: %s (run as root or "
		    "as user %s)\n", path, strerror(errno),
		    cfg->user ? cfg->user : "msagate");
		return CTL_USAGE;
	}
	fprintf(stderr, "msagatectl: cannot read %s: %s\n", path, strerror(errno));
	return CTL_TEMPFAIL;
}

/*
 * The queue ids in the open queue directory dfd; on failure print why,
 * close dfd and return the exit code.
 */
static int
list_queue_ids(int dfd, char ***ids, size_t *n)
{
	int err;

	if (qfile_list_ids(dfd, ids, n) == 0)
		return CTL_OK;
	err = errno;
	fprintf(stderr, "msagatectl: cannot read the queue: %s\n", strerror(err));
	close(dfd);
	return err == EACCES ? CTL_USAGE : CTL_TEMPFAIL;
}

/* state_dir/status, or -1 (then no per-recipient state is shown). */
static int
open_status_dir(const struct msagate_config *cfg)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/" QSTATUS_DIR, cfg->state_dir);
	return open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* " (deferred: detail)" etc. for recipient idx. */
static void
put_rcpt_state(const struct qstatus *st, size_t idx)
{
	const struct qstatus_entry *e = qstatus_last(st, idx);
	const char *what;

	if (e == NULL) {
		printf(qstatus_rcpt_complete(st, idx) ? "(done)" : "(waiting)");
		return;
	}
	what = e->kind == 'S' ? "sent" : e->kind == 'B' ? "bounced" : "deferred";
	if (e->kind == 'D' && qstatus_rcpt_complete(st, idx))
		what = "done";
	printf("(%s", what);
	if (e->final != NULL && e->kind != 'C') {
		printf(" to <");
		put_safe(stdout, e->final);
		printf(">");
	}
	if (e->detail != NULL && e->detail[0] != '\0') {
		printf(": ");
		if (e->dsn != NULL && e->dsn[0] != '\0') {
			put_safe(stdout, e->dsn);
			putchar(' ');
		}
		put_safe(stdout, e->detail);
	}
	putchar(')');
}

/*
 * true if queue/id is still the file we opened: after its delivery the
 * queue role renames a message's file away and reuses it (qspare.h).
 */
static bool
still_there(int dfd, const char *id, const struct stat *opened)
{
	struct stat now;

	return fstatat(dfd, id, &now, AT_SYMLINK_NOFOLLOW) == 0 &&
	    now.st_ino == opened->st_ino && now.st_dev == opened->st_dev;
}

/*
 * Open and parse one queue file.  Returns the FILE (positioned at the
 * message) or NULL with errno set (ENOENT: gone; EINVAL: bad format).
 */
static FILE *
open_qfile(int dfd, const char *id, struct qenvelope *env, long long *size)
{
	struct stat st;
	FILE *fp;
	int fd;

	if ((fd = openat(dfd, id, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return NULL;
	if (fstat(fd, &st) < 0 || (fp = fdopen(fd, "r")) == NULL) {
		int err = errno;

		close(fd);
		errno = err;
		return NULL;
	}
	if (qfile_read_header(fp, env) < 0) {
		fclose(fp);
		errno = still_there(dfd, id, &st) ? EINVAL : ENOENT;
		return NULL;
	}
	if (strcmp(env->id, id) != 0 || !still_there(dfd, id, &st)) {
		/* delivered meanwhile: its file was recycled for a new message */
		qenvelope_free(env);
		fclose(fp);
		errno = ENOENT;
		return NULL;
	}
	*size = (long long)st.st_size - env->body_offset;
	return fp;
}

/* queue list: one line per message (the spec's interface) */
#define LIST_HEADER "-Queue ID-------  --Size--  ---Arrival Time----  " \
    "<Sender>  ->  Recipient  (state or last error); ...\n"

static int
queue_list(const struct msagate_config *cfg)
{
	char **ids, tbuf[64];
	size_t n, i, shown = 0;
	long long total = 0;
	int dfd, sdfd, rc;

	if ((rc = open_queue_dir(cfg, &dfd)) != CTL_OK)
		return rc;
	if ((rc = list_queue_ids(dfd, &ids, &n)) != CTL_OK)
		return rc;
	sdfd = open_status_dir(cfg);
	for (i = 0; i < n; i++) {
		struct qenvelope env;
		long long size;
		FILE *fp = open_qfile(dfd, ids[i], &env, &size);

		if (fp == NULL) {
			if (errno == ENOENT)
				continue;        /* removed meanwhile */
			if (shown++ == 0)
				printf(LIST_HEADER);
			printf("%-16s  %8s  %-19s  (unreadable: %s)\n", ids[i], "?", "?",
			    errno == EINVAL ? "bad queue file" : strerror(errno));
			continue;
		}
		fclose(fp);
		if (shown++ == 0)
			printf(LIST_HEADER);
		printf("%-16s  %8lld  %-19s  <", env.id, size,
		    fmt_time(env.arrival, tbuf, sizeof(tbuf)));
		put_safe(stdout, env.sender);
		printf(">  ->");
		/* each recipient with its last state (or error), on the same line */
		{
			struct qstatus st;

			if (sdfd < 0 || qstatus_load(sdfd, ids[i], &st) < 0)
				memset(&st, 0, sizeof(st));
			for (size_t r = 0; r < env.n_rcpts; r++) {
				printf(r == 0 ? "  " : ";  ");
				put_safe(stdout, env.rcpts[r]);
				printf("  ");
				put_rcpt_state(&st, r);
			}
			qstatus_free(&st);
		}
		putchar('\n');
		total += size;
		qenvelope_free(&env);
	}
	if (shown == 0)
		printf("Mail queue is empty\n");
	else
		printf("-- %lld Kbytes in %zu Request%s.\n", (total + 1023) / 1024,
		    shown, shown == 1 ? "" : "s");
	qfile_free_ids(ids, n);
	close(dfd);
	if (sdfd >= 0)
		close(sdfd);
	return CTL_OK;
}

/* Print the message's header section (up to the first empty line). */
static void
show_headers(FILE *fp)
{
	char line[4096];
	size_t total = 0;

	while (fgets(line, sizeof(line), fp) != NULL) {
		size_t len = strlen(line);
		bool eol = len > 0 && line[len - 1] == '\n';

		total += len;
		if (eol)
			line[--len] = '\0';
		if (len > 0 && line[len - 1] == '\r')
			line[--len] = '\0';
		if (len == 0 && eol)
			break;
		for (char *p = line; *p; p++) {
			unsigned char ch = (unsigned char)*p;
			putchar((ch < 0x20 && ch != '\t') || ch == 0x7f ? '?' : ch);
		}
		if (eol)
			putchar('\n');
		if (total > SHOW_MAX_HEADER) {
			printf("\n[header section truncated]\n");
			break;
		}
	}
}

static int
queue_show(const struct msagate_config *cfg, const char *id)
{
	struct qenvelope env;
	struct qstatus st;
	long long size;
	char tbuf[64];
	FILE *fp;
	int dfd, sdfd, rc;

	if (!qid_valid(id)) {
		fprintf(stderr, "msagatectl: no such message: ");
		put_safe(stderr, id);
		fputc('\n', stderr);
		return CTL_NEGATIVE;
	}
	if ((rc = open_queue_dir(cfg, &dfd)) != CTL_OK)
		return rc;
	fp = open_qfile(dfd, id, &env, &size);
	close(dfd);
	memset(&st, 0, sizeof(st));
	if (fp != NULL && (sdfd = open_status_dir(cfg)) >= 0) {
		if (qstatus_load(sdfd, id, &st) < 0)
			memset(&st, 0, sizeof(st));
		close(sdfd);
	}
	if (fp == NULL) {
		if (errno == ENOENT) {
			fprintf(stderr, "msagatectl: no such message: %s\n", id);
			return CTL_NEGATIVE;
		}
		fprintf(stderr, "msagatectl: %s: %s\n", id,
		    errno == EINVAL ? "bad queue file" : strerror(errno));
		return CTL_TEMPFAIL;
	}
	printf("id: %s\n", env.id);
	printf("arrival: %s (%lld)\n", fmt_time(env.arrival, tbuf, sizeof(tbuf)),
	    (long long)env.arrival);
	printf("size: %lld\n", size);
	printf("sender: <");
	put_safe(stdout, env.sender);
	printf(">\n");
	for (size_t i = 0; i < env.n_rcpts; i++) {
		printf("rcpt: <");
		put_safe(stdout, env.rcpts[i]);
		printf("> ");
		put_rcpt_state(&st, i);
		putchar('\n');
	}
	/* every event of the status file, oldest first */
	for (size_t i = 0; i < st.n; i++) {
		const struct qstatus_entry *e = &st.e[i];

		if (e->kind == 'C')
			continue;
		printf("status: %s %s <", fmt_time(e->when, tbuf, sizeof(tbuf)),
		    e->kind == 'S' ? "sent" : e->kind == 'B' ? "bounced" : "deferred");
		put_safe(stdout, e->final);
		printf("> %s ", e->dsn);
		put_safe(stdout, e->detail);
		putchar('\n');
	}
	qstatus_free(&st);
	printf("auth_user: ");
	put_safe(stdout, env.auth_user ? env.auth_user : "");
	printf("\nclient: ");
	put_safe(stdout, env.client ? env.client : "");
	printf("\nclient_port: %u\nhelo: ", env.client_port);
	put_safe(stdout, env.helo ? env.helo : "");
	printf("\ntls: ");
	put_safe(stdout, env.tls ? env.tls : "");
	printf("\nlistener: ");
	put_safe(stdout, env.listener ? env.listener : "");
	printf("\n\n");
	show_headers(fp);
	fclose(fp);
	qenvelope_free(&env);
	return CTL_OK;
}

static int queue_ask(const struct msagate_config *cfg, const char *req, char *buf,
    size_t size, bool quiet);

static int
queue_delete(const struct msagate_config *cfg, const char *arg)
{
	char **ids = NULL;
	size_t n = 0, i, deleted = 0;
	int dfd, sdfd, rc;

	if (strcmp(arg, "ALL") != 0 && !qid_valid(arg)) {
		fprintf(stderr, "msagatectl: no such message: ");
		put_safe(stderr, arg);
		fputc('\n', stderr);
		return CTL_NEGATIVE;
	}
	if ((rc = open_queue_dir(cfg, &dfd)) != CTL_OK)
		return rc;
	if (strcmp(arg, "ALL") == 0) {
		if ((rc = list_queue_ids(dfd, &ids, &n)) != CTL_OK)
			return rc;
		sdfd = open_status_dir(cfg);
		for (i = 0; i < n; i++) {
			if (sdfd >= 0)
				(void)unlinkat(sdfd, ids[i], 0);
			if (unlinkat(dfd, ids[i], 0) == 0)
				deleted++;
			else if (errno != ENOENT) {
				fprintf(stderr, "msagatectl: cannot delete %s: %s\n",
				    ids[i], strerror(errno));
				rc = CTL_TEMPFAIL;
			}
		}
		qfile_free_ids(ids, n);
		if (sdfd >= 0)
			close(sdfd);
	} else if (unlinkat(dfd, arg, 0) == 0) {
		deleted = 1;
		if ((sdfd = open_status_dir(cfg)) >= 0) {
			(void)unlinkat(sdfd, arg, 0);
			close(sdfd);
		}
	} else if (errno == ENOENT) {
		fprintf(stderr, "msagatectl: no such message: %s\n", arg);
		rc = CTL_NEGATIVE;
	} else {
		fprintf(stderr, "msagatectl: cannot delete %s: %s\n", arg,
		    strerror(errno));
		rc = errno == EACCES || errno == EPERM ? CTL_USAGE : CTL_TEMPFAIL;
	}
	if (deleted > 0) {
		char buf[64];

		(void)fsync(dfd);        /* make the removal durable too */
		printf("msagatectl: deleted %zu message%s\n", deleted,
		    deleted == 1 ? "" : "s");
		/* the queue role forgets and logs them now (if it runs) */
		(void)queue_ask(cfg, "SWEEP", buf, sizeof(buf), true);
	}
	close(dfd);
	return rc;
}

/*
 * queue_ask - one request to the queue role over its socket, its answer
 * into buf; CTL_OK, or (with a message on stderr unless quiet) CTL_USAGE
 * or CTL_TEMPFAIL.
 */
static int
queue_ask(const struct msagate_config *cfg, const char *req, char *buf,
    size_t size, bool quiet)
{
	struct sockaddr_un sun;
	struct timeval tv = { 30, 0 };
	ssize_t n;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (cfg->queue_socket == NULL ||
	    strlen(cfg->queue_socket) >= sizeof(sun.sun_path)) {
		if (!quiet)
			fprintf(stderr, "msagatectl: bad queue socket path\n");
		return CTL_USAGE;
	}
	memcpy(sun.sun_path, cfg->queue_socket, strlen(cfg->queue_socket) + 1);
	if ((fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		int e = errno;

		if (!quiet)
			fprintf(stderr, "msagatectl: cannot connect to %s: %s (is "
			    "msagated running? run as root or as user %s)\n",
			    cfg->queue_socket, strerror(e), cfg->user ? cfg->user : "msagate");
		if (fd >= 0)
			close(fd);
		return e == EACCES ? CTL_USAGE : CTL_TEMPFAIL;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (send(fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req) ||
	    (n = recv(fd, buf, size - 1, 0)) <= 0) {
		if (!quiet)
			fprintf(stderr, "msagatectl: no answer from the queue role\n");
		close(fd);
		return CTL_TEMPFAIL;
	}
	close(fd);
	buf[n] = '\0';
	return CTL_OK;
}

/* Ask the queue role to retry every deferred message now. */
static int
queue_flush(const struct msagate_config *cfg)
{
	char buf[256];
	int rc;

	if ((rc = queue_ask(cfg, "FLUSH", buf, sizeof(buf), false)) != CTL_OK)
		return rc;
	if (strncmp(buf, "OK ", 3) != 0) {
		fprintf(stderr, "msagatectl: queue role refused the flush: ");
		put_safe(stderr, buf);
		fputc('\n', stderr);
		return CTL_TEMPFAIL;
	}
	printf("msagatectl: flush: %s deferred message%s scheduled now\n",
	    buf + 3, strcmp(buf + 3, "1") == 0 ? "" : "s");
	return CTL_OK;
}

static int
queue_usage(void)
{
	fprintf(stderr, "usage: msagatectl queue list\n"
	    "       msagatectl queue show ID\n"
	    "       msagatectl queue delete ID|ALL\n"
	    "       msagatectl queue flush\n");
	return CTL_USAGE;
}

int
ctl_queue(const struct msagate_config *cfg, int argc, char **argv)
{
	if (argc < 1)
		return queue_usage();
	if (strcmp(argv[0], "list") == 0 && argc == 1)
		return queue_list(cfg);
	if (strcmp(argv[0], "show") == 0 && argc == 2)
		return queue_show(cfg, argv[1]);
	if (strcmp(argv[0], "delete") == 0 && argc == 2)
		return queue_delete(cfg, argv[1]);
	if (strcmp(argv[0], "flush") == 0 && argc == 1)
		return queue_flush(cfg);
	return queue_usage();
}
