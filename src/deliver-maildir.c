/*
 * deliver-maildir.c - the "maildir" delivery method: one file per
 * recipient in PATH/new, written with the Maildir protocol (tmp/unique,
 * fsync, rename to new/, fsync new/).  PATH comes from
 * relay.delivery.path with %d = domain, %n = local part without the +tag,
 * %u = local@domain (both lowercased), %% = '%'.  Missing directories are
 * created with mode 0700 on first delivery.
 *
 * The queue role runs as `user`, so mailboxes belong to that user (one
 * virtual-mail account, like Dovecot's vmail): the mail server reading
 * them must run as the same uid.  A path the user cannot write is a
 * temporary failure (the administrator can fix it); an address that
 * cannot name a directory safely ('/', leading '.', control characters)
 * is a permanent one.
 */
#include <sys/stat.h>
#include <sys/time.h>

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "delivery.h"
#include "util.h"

#define MD_PATH_MAX 4096

struct maildir_ctx {
	char *path;                  /* template */
	char *delimiter;
	char host[256];              /* for unique names: '/' and ':' encoded */
};

static atomic_uint md_counter;

static void *
maildir_init(const struct msagate_config *cfg, char **error)
{
	struct maildir_ctx *c;
	size_t j = 0;

	if (cfg->relay.delivery_path == NULL || cfg->relay.delivery_path[0] != '/') {
		*error = xstrdup("relay.delivery.path must be an absolute path");
		return NULL;
	}
	c = xcalloc(1, sizeof(*c));
	c->path = xstrdup(cfg->relay.delivery_path);
	c->delimiter = xstrdup(cfg->relay.recipient_delimiter ?
	    cfg->relay.recipient_delimiter : "");
	for (const char *p = cfg->hostname ? cfg->hostname : "localhost";
	    *p != '\0' && j + 5 < sizeof(c->host); p++) {
		if (*p == '/')
			j += (size_t)snprintf(c->host + j, 5, "\\057");
		else if (*p == ':')
			j += (size_t)snprintf(c->host + j, 5, "\\072");
		else
			c->host[j++] = *p;
	}
	c->host[j] = '\0';
	return c;
}

static const char *
maildir_relay(void *ctx)
{
	(void)ctx;
	return "maildir";
}

static void
maildir_free(void *ctx)
{
	struct maildir_ctx *c = ctx;

	if (c == NULL)
		return;
	free(c->path);
	free(c->delimiter);
	free(c);
}

/* May this string become one path component? */
static bool
safe_component(const char *s)
{
	if (s[0] == '\0' || s[0] == '.')
		return false;
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch <= 0x20 || ch >= 0x7f || ch == '/' || ch == '\\' || ch == '"')
			return false;
	}
	return true;
}

/* Expand the template for one address; -1 if it does not fit. */
static int
expand_path(const char *tmpl, const char *local, const char *domain,
    char *out, size_t len)
{
	size_t j = 0;

	for (const char *p = tmpl; *p != '\0'; p++) {
		char one[2] = { *p, '\0' };
		const char *add = one;
		int n;

		if (*p == '%') {
			switch (p[1]) {
			case 'd': add = domain; p++; break;
			case 'n': add = local; p++; break;
			case 'u':
				n = snprintf(out + j, len - j, "%s@%s", local, domain);
				if (n < 0 || (size_t)n >= len - j)
					return -1;
				j += (size_t)n;
				p++;
				continue;
			case '%': p++; break;
			default: break;
			}
		}
		n = snprintf(out + j, len - j, "%s", add);
		if (n < 0 || (size_t)n >= len - j)
			return -1;
		j += (size_t)n;
	}
	return 0;
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
	char p[MD_PATH_MAX];

	snprintf(p, sizeof(p), "%s", dir);
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

/* Deliver the message to one Maildir; -1 with errno and *step. */
static int
maildir_write(struct maildir_ctx *c, const struct delivery_msg *msg,
    const char *dir, const char *rcpt, const char **step)
{
	char tmp[MD_PATH_MAX], new[MD_PATH_MAX], name[512], nd[MD_PATH_MAX];
	struct sbuf h;
	struct timeval tv;
	int fd, e;

	*step = "create the Maildir";
	if (make_maildir(dir) < 0)
		return -1;
	gettimeofday(&tv, NULL);
	snprintf(name, sizeof(name), "%lld.M%ldP%ldQ%u.%s", (long long)tv.tv_sec,
	    (long)tv.tv_usec, (long)getpid(), atomic_fetch_add(&md_counter, 1),
	    c->host);
	if (snprintf(tmp, sizeof(tmp), "%s/tmp/%s", dir, name) >= (int)sizeof(tmp) ||
	    snprintf(new, sizeof(new), "%s/new/%s", dir, name) >= (int)sizeof(new) ||
	    snprintf(nd, sizeof(nd), "%s/new", dir) >= (int)sizeof(nd))
		return errno = ENAMETOOLONG, -1;
	*step = "create a file in tmp/";
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
	    0600)) < 0)
		return -1;
	sbuf_init(&h, 0);
	sbuf_printf(&h, "Return-Path: <%s>\nDelivered-To: %s\n",
	    msg->env->sender, rcpt);
	*step = "write";
	if (write_all(fd, h.s, h.len) < 0 ||
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
	sbuf_free(&h);
	return 0;
fail:
	e = errno;
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	sbuf_free(&h);
	errno = e;
	return -1;
}

static void
maildir_deliver(void *ctx, const struct delivery_msg *msg,
    struct delivery_rcpt *rcpts, size_t n)
{
	struct maildir_ctx *c = ctx;

	for (size_t i = 0; i < n; i++) {
		struct delivery_rcpt *r = &rcpts[i];
		char local[256], domain[256], dir[MD_PATH_MAX];
		const char *step = "";

		if (delivery_split_address(r->address, c->delimiter, local,
		    sizeof(local), domain, sizeof(domain)) < 0 ||
		    !safe_component(local) || !safe_component(domain)) {
			delivery_set(r, DELIVERY_BOUNCE, "5.1.3",
			    "address cannot name a mailbox");
			continue;
		}
		if (expand_path(c->path, local, domain, dir, sizeof(dir)) < 0) {
			delivery_set(r, DELIVERY_BOUNCE, "5.1.3",
			    "mailbox path too long");
			continue;
		}
		if (maildir_write(c, msg, dir, r->address, &step) < 0) {
			int e = errno;

			delivery_set(r, DELIVERY_DEFER, e == ENOSPC || e == EDQUOT ?
			    "4.2.2" : "4.3.0", "cannot %s in %s: %s", step, dir,
			    strerror(e));
			continue;
		}
		delivery_set(r, DELIVERY_SENT, "2.0.0", "delivered to maildir");
	}
}

const struct delivery_method delivery_maildir = {
	.name = "maildir",
	.batch = false,
	.init = maildir_init,
	.relay = maildir_relay,
	.deliver = maildir_deliver,
	.free = maildir_free,
};
