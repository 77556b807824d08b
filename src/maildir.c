/*
 * maildir.c - one message into one Maildir (see maildir.h): the mailbox
 * path opened (and made) one component at a time without following links
 * and only through trusted directories, each new directory's parent
 * fsynced, then the tmp/unique -> fsync -> rename to new/ -> fsync new/
 * protocol, all relative to the open directories.  Unique
 * names are TIME.MusecPpidQn.HOST (n: a per-process counter), so two
 * processes or threads never pick the same one.
 */
#include <sys/stat.h>
#include <sys/time.h>

#include <errno.h>
#include <stdbool.h>
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

/*
 * A directory we may deliver through: owned by root or by us, and not
 * writable by others unless sticky (as /tmp): anyone else could swap its
 * entries under us.  The mailbox itself (last = true) must be ours.
 */
static int
dir_trusted(int fd, bool last)
{
	struct stat st;
	uid_t me = geteuid();

	if (fstat(fd, &st) < 0)
		return -1;
	if (!S_ISDIR(st.st_mode))
		return errno = ENOTDIR, -1;
	if (last ? st.st_uid != me : st.st_uid != 0 && st.st_uid != me)
		return errno = EPERM, -1;
	if ((st.st_mode & S_IWOTH) && !(st.st_mode & S_ISVTX))
		return errno = EPERM, -1;
	return 0;
}

/*
 * open_dir_path - open the directory at an absolute path, making the
 * missing components (0700, each new one's parent fsynced), one component
 * at a time relative to the last: no symlink is followed (O_NOFOLLOW on
 * every step) and every directory passed through must be trusted (see
 * dir_trusted).  So a mailbox path cannot be redirected, by a link or by
 * another user's directory, to a place the recipient did not mean.
 * Returns the open directory or -1 with errno (EPERM: not trusted).
 */
static int
open_dir_path(const char *path)
{
	char comp[256];
	const char *p = path, *end;
	int fd, next;

	if (path[0] != '/')
		return errno = EINVAL, -1;
	if ((fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	while (*p == '/')
		p++;
	while (*p != '\0') {
		size_t n;

		for (end = p; *end != '\0' && *end != '/'; end++)
			;
		n = (size_t)(end - p);
		if (n >= sizeof(comp) || (n == 2 && p[0] == '.' && p[1] == '.')) {
			close(fd);
			return errno = EINVAL, -1;
		}
		memcpy(comp, p, n);
		comp[n] = '\0';
		while (*end == '/')
			end++;
		if (n == 0 || (n == 1 && comp[0] == '.')) {
			p = end;
			continue;
		}
		if (dir_trusted(fd, false) < 0)
			goto fail;
		next = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0 && errno == ENOENT) {
			if (mkdirat(fd, comp, 0700) < 0 && errno != EEXIST)
				goto fail;
			if (fsync(fd) < 0)
				goto fail;
			next = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		}
		if (next < 0)
			goto fail;
		close(fd);
		fd = next;
		p = end;
	}
	if (dir_trusted(fd, true) < 0)
		goto fail;
	return fd;
fail:
	{
		int e = errno;

		close(fd);
		errno = e;
	}
	return -1;
}

/* DIR/sub (tmp, new or cur), made if missing; our own, no symlink. */
static int
open_sub(int dfd, const char *sub)
{
	int fd = openat(dfd, sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0 && errno == ENOENT) {
		if (mkdirat(dfd, sub, 0700) < 0 && errno != EEXIST)
			return -1;
		if (fsync(dfd) < 0)
			return -1;
		fd = openat(dfd, sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	}
	if (fd >= 0 && dir_trusted(fd, true) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
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
	char name[512];
	struct timeval tv;
	int md = -1, tmpd = -1, newd = -1, curd = -1, fd = -1, e, rc = -1;
	bool created = false;

	*step = "open or create the Maildir";
	if (strlen(dir) >= MAILDIR_PATH_MAX) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((md = open_dir_path(dir)) < 0 || (tmpd = open_sub(md, "tmp")) < 0 ||
	    (newd = open_sub(md, "new")) < 0 || (curd = open_sub(md, "cur")) < 0)
		goto out;
	gettimeofday(&tv, NULL);
	snprintf(name, sizeof(name), "%lld.M%ldP%ldQ%u.%s", (long long)tv.tv_sec,
	    (long)tv.tv_usec, (long)getpid(), atomic_fetch_add(&md_counter, 1),
	    host);
	*step = "create a file in tmp/";
	if ((fd = openat(tmpd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC |
	    O_NOFOLLOW, 0600)) < 0)
		goto out;
	created = true;
	*step = "write";
	if (write_all(fd, head, hlen) < 0 ||
	    delivery_copy_body(msg, DELIVERY_COPY_LF, write_out, &fd) < 0)
		goto out;
	*step = "fsync";
	if (fsync(fd) < 0)
		goto out;
	*step = "close";
	e = close(fd);
	fd = -1;
	if (e < 0)
		goto out;
	*step = "rename into new/";
	if (renameat(tmpd, name, newd, name) < 0)
		goto out;
	created = false;
	*step = "fsync new/";
	if (fsync(newd) < 0) {
		/* not known to be durable: take it back and let it be retried */
		e = errno;
		(void)unlinkat(newd, name, 0);
		errno = e;
		goto out;
	}
	rc = 0;
out:
	e = errno;
	if (fd >= 0)
		close(fd);
	if (created)
		(void)unlinkat(tmpd, name, 0);
	if (curd >= 0)
		close(curd);
	if (newd >= 0)
		close(newd);
	if (tmpd >= 0)
		close(tmpd);
	if (md >= 0)
		close(md);
	errno = e;
	return rc;
}

void
maildir_verdict(struct delivery_rcpt *r, int err, const char *step,
    const char *dir)
{
	if (err == 0) {
		delivery_set(r, DELIVERY_SENT, "2.0.0", "delivered to maildir");
		return;
	}
	if (err == EPERM) {
		delivery_set(r, DELIVERY_DEFER, "4.3.0", "cannot %s in %s: a "
		    "directory on the path is a link, belongs to another user, or "
		    "is writable by others without the sticky bit", step, dir);
		return;
	}
	delivery_set(r, DELIVERY_DEFER, err == ENOSPC || err == EDQUOT ? "4.2.2" :
	    "4.3.0", "cannot %s in %s: %s", step, dir, strerror(err));
}
