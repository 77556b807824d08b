/*
 * maildir.c - one message into one Maildir (see maildir.h): mkdir -p of
 * the mailbox with fsync of each new directory's parent, then the
 * tmp/unique -> fsync -> rename to new/ -> fsync new/ protocol.  Unique
 * names are TIME.MusecPpidQn.HOST (n: a per-process counter), so two
 * processes or threads never pick the same one.
 */
#include <sys/stat.h>
#include <sys/time.h>

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "maildir.h"
#include "util.h"

static atomic_uint md_counter;

void
maildir_host(const char *hostname, char *out, size_t len)
{
	size_t j = 0;

	if (len == 0)
		return;
	for (const char *p = hostname ? hostname : "localhost";
	    *p != '\0' && j + 5 < len; p++) {
		if (*p == '/')
			j += (size_t)snprintf(out + j, 5, "\\057");
		else if (*p == ':')
			j += (size_t)snprintf(out + j, 5, "\\072");
		else
			out[j++] = *p;
	}
	out[j] = '\0';
}

static void
fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
}

/* mkdir -p with mode 0700, fsyncing the parent of each new directory. */
static int
make_dirs(char *path)
{
	struct stat st;

	if (stat(path, &st) == 0)
		return S_ISDIR(st.st_mode) ? 0 : (errno = ENOTDIR, -1);
	if (errno != ENOENT)
		return -1;
	for (char *p = path + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char saved = *p;

		*p = '\0';
		if (mkdir(path, 0700) == 0) {
			char *slash = strrchr(path, '/');

			if (slash != NULL && slash != path) {
				*slash = '\0';
				fsync_dir(path);
				*slash = '/';
			} else {
				fsync_dir("/");
			}
		} else if (errno != EEXIST) {
			*p = saved;
			return -1;
		}
		*p = saved;
		if (saved == '\0')
			break;
	}
	return 0;
}

/* Make sure DIR/{tmp,new,cur} exist. */
static int
make_maildir(const char *dir)
{
	static const char *const subs[] = { "tmp", "new", "cur" };
	char p[MAILDIR_PATH_MAX];

	if (snprintf(p, sizeof(p), "%s", dir) >= (int)sizeof(p))
		return errno = ENAMETOOLONG, -1;
	if (make_dirs(p) < 0)
		return -1;
	for (size_t i = 0; i < 3; i++) {
		if (snprintf(p, sizeof(p), "%s/%s", dir, subs[i]) >= (int)sizeof(p))
			return errno = ENAMETOOLONG, -1;
		if (mkdir(p, 0700) == 0)
			fsync_dir(dir);
		else if (errno != EEXIST)
			return -1;
	}
	return 0;
}

static int
write_out(void *arg, const char *p, size_t n)
{
	return write_all(*(int *)arg, p, n) < 0 ? -1 : 0;
}

int
maildir_store(const char *dir, const char *host, const char *head, size_t hlen,
    const struct delivery_msg *msg, const char **step)
{
	char tmp[MAILDIR_PATH_MAX], new[MAILDIR_PATH_MAX], nd[MAILDIR_PATH_MAX];
	char name[512];
	struct timeval tv;
	int fd, e;

	*step = "create the Maildir";
	if (make_maildir(dir) < 0)
		return -1;
	gettimeofday(&tv, NULL);
	snprintf(name, sizeof(name), "%lld.M%ldP%ldQ%u.%s", (long long)tv.tv_sec,
	    (long)tv.tv_usec, (long)getpid(), atomic_fetch_add(&md_counter, 1),
	    host);
	if (snprintf(tmp, sizeof(tmp), "%s/tmp/%s", dir, name) >= (int)sizeof(tmp) ||
	    snprintf(new, sizeof(new), "%s/new/%s", dir, name) >= (int)sizeof(new) ||
	    snprintf(nd, sizeof(nd), "%s/new", dir) >= (int)sizeof(nd))
		return errno = ENAMETOOLONG, -1;
	*step = "create a file in tmp/";
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
	    0600)) < 0)
		return -1;
	*step = "write";
	if (write_all(fd, head, hlen) < 0 ||
	    delivery_copy_body(msg, DELIVERY_COPY_LF, write_out, &fd) < 0)
		goto fail;
	*step = "fsync";
	if (fsync(fd) < 0)
		goto fail;
	*step = "close";
	if (close(fd) < 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	*step = "rename into new/";
	if (rename(tmp, new) < 0)
		goto fail;
	fsync_dir(nd);
	return 0;
fail:
	e = errno;
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	errno = e;
	return -1;
}

void
maildir_verdict(struct delivery_rcpt *r, int err, const char *step,
    const char *dir)
{
	if (err == 0) {
		delivery_set(r, DELIVERY_SENT, "2.0.0", "delivered to maildir");
		return;
	}
	delivery_set(r, DELIVERY_DEFER, err == ENOSPC || err == EDQUOT ? "4.2.2" :
	    "4.3.0", "cannot %s in %s: %s", step, dir, strerror(err));
}
