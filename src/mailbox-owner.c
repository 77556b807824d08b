/*
 * mailbox-owner.c - the owner of a local mailbox (see mailbox-owner.h):
 * a blocking client of the auth role's userdb socket (the Dovecot
 * auth-master subset that src/auth-userdb.c serves and src/userdbc.c
 * speaks asynchronously for the SMTP role), the parsing of the uid, gid
 * and home fields, and the uid rule.
 *
 *   server: VERSION\t1\t<minor>\n SPID\t<pid>\n
 *   client: VERSION\t1\t0\n USER\t1\t<user>\tservice=lda\n
 *   server: USER\t1\t<user>[\t<k=v>...]\n | NOTFOUND\t1\n | FAIL\t1...\n
 *
 * One connection per lookup (the queue asks once or twice per local
 * recipient); every read and write waits at most until the deadline.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mailbox-owner.h"
#include "util.h"

#define OWNER_MAX_LINE     8192
#define OWNER_RETRY_MS     200        /* socket missing: try again after */
#define OWNER_NSS_BUF      16384

/* Milliseconds left until deadline (0 when past). */
static int
left_ms(uint64_t deadline)
{
	uint64_t now = now_ms();

	return now >= deadline ? 0 : (int)(deadline - now);
}

/* Connect to path before deadline; -1 with err. */
static int
connect_socket(const char *path, uint64_t deadline, char *err, size_t errlen)
{
	struct sockaddr_un sun;
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "userdb socket path too long");
		return -1;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path) + 1);
	for (;;) {
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			snprintf(err, errlen, "socket: %s", strerror(errno));
			return -1;
		}
		if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
			break;
		snprintf(err, errlen, "connect to %s: %s", path, strerror(errno));
		close(fd);
		if ((errno != ENOENT && errno != ECONNREFUSED && errno != EAGAIN) ||
		    left_ms(deadline) <= OWNER_RETRY_MS)
			return -1;
		usleep(OWNER_RETRY_MS * 1000);
	}
	if (set_nonblock(fd) < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* Write all of buf before deadline. */
static int
send_all(int fd, const char *buf, size_t n, uint64_t deadline)
{
	while (n > 0) {
		ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);

		if (w > 0) {
			buf += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd p = { .fd = fd, .events = POLLOUT };
			int ms = left_ms(deadline);

			if (ms == 0 || poll(&p, 1, ms) <= 0)
				return errno = ETIMEDOUT, -1;
			continue;
		}
		return -1;
	}
	return 0;
}

/* Numeric id, or a user (group: a group) name from NSS; -1 when unknown. */
static int
parse_id(const char *s, bool group, unsigned long long *out)
{
	struct passwd pw, *pres = NULL;
	struct group gr, *gres = NULL;
	char buf[OWNER_NSS_BUF];

	if (parse_uint(s, 0xfffffffeULL, out))
		return 0;
	if (group) {
		if (getgrnam_r(s, &gr, buf, sizeof(buf), &gres) != 0 || gres == NULL)
			return -1;
		*out = gr.gr_gid;
	} else {
		if (getpwnam_r(s, &pw, buf, sizeof(buf), &pres) != 0 || pres == NULL)
			return -1;
		*out = pw.pw_uid;
	}
	return 0;
}

int
mailbox_owner_fields(const char *fields, struct mailbox_owner *o, char *err,
    size_t errlen)
{
	char *copy = xstrdup(fields), *p = copy, *uid_s = NULL, *gid_s = NULL;
	int rc = 0;

	memset(o, 0, sizeof(*o));
	while (p != NULL && rc == 0) {
		char *f = p, *tab = strchr(p, '\t');

		if (tab != NULL)
			*tab = '\0';
		p = tab ? tab + 1 : NULL;
		if (!tab_unescape(f)) {
			snprintf(err, errlen, "userdb: badly escaped field");
			rc = -1;
		} else if (strncmp(f, "uid=", 4) == 0) {
			uid_s = f + 4;
		} else if (strncmp(f, "gid=", 4) == 0) {
			gid_s = f + 4;
		} else if (strncmp(f, "home=", 5) == 0 && f[5] != '\0') {
			const char *h = f + 5;

			if (h[0] != '/' || strlen(h) >= sizeof(o->home)) {
				snprintf(err, errlen, "userdb: home is not an absolute path");
				rc = -1;
				break;
			}
			for (const char *c = h; *c != '\0'; c++)
				if ((unsigned char)*c < 0x20 || *c == 0x7f) {
					snprintf(err, errlen, "userdb: control character in home");
					rc = -1;
					break;
				}
			if (rc == 0)
				memcpy(o->home, h, strlen(h) + 1);
		}
	}
	if (rc == 0 && uid_s != NULL && uid_s[0] != '\0') {
		unsigned long long uid = 0, gid = 0;
		struct passwd pw, *res = NULL;
		char buf[OWNER_NSS_BUF];

		if (parse_id(uid_s, false, &uid) < 0) {
			snprintf(err, errlen, "userdb: uid \"%.64s\" is unknown", uid_s);
			rc = -1;
		} else if (gid_s != NULL && gid_s[0] != '\0') {
			if (parse_id(gid_s, true, &gid) < 0) {
				snprintf(err, errlen, "userdb: gid \"%.64s\" is unknown",
				    gid_s);
				rc = -1;
			}
		} else if (getpwuid_r((uid_t)uid, &pw, buf, sizeof(buf), &res) != 0 ||
		    res == NULL) {
			/* no gid, and no account whose primary group it would be */
			snprintf(err, errlen, "userdb: uid %llu without gid and "
			    "without a passwd entry", uid);
			rc = -1;
		} else {
			gid = pw.pw_gid;
		}
		if (rc == 0) {
			o->uid = (uid_t)uid;
			o->gid = (gid_t)gid;
		}
		o->has_uid = rc == 0;
	}
	free(copy);
	return rc;
}

const char *
mailbox_owner_refused(uid_t uid, gid_t gid, long long min_uid, char *buf,
    size_t len)
{
	if (uid == 0) {
		snprintf(buf, len, "refusing to deliver as uid 0 (root)");
		return buf;
	}
	if (gid == 0) {
		snprintf(buf, len, "refusing to deliver with gid 0 (root's group)");
		return buf;
	}
	if ((long long)uid < min_uid) {
		snprintf(buf, len, "uid %lu is below relay.delivery.min_uid (%lld)",
		    (unsigned long)uid, min_uid);
		return buf;
	}
	/*
	 * A system group (disk, shadow, staff...) only as the account's own
	 * primary group: a uid may not pick up any gid it likes.
	 */
	if ((long long)gid < min_uid) {
		/* _r: the queue role's delivery threads call this too */
		struct passwd pw, *res = NULL;
		char nss[OWNER_NSS_BUF];

		if (getpwuid_r(uid, &pw, nss, sizeof(nss), &res) != 0 ||
		    res == NULL || pw.pw_gid != gid) {
			snprintf(buf, len, "gid %lu is below relay.delivery.min_uid "
			    "(%lld) and not the primary group of uid %lu",
			    (unsigned long)gid, min_uid, (unsigned long)uid);
			return buf;
		}
	}
	return NULL;
}

/*
 * One USER request on a fresh connection.  Returns the result; with
 * OWNER_FOUND the reply's fields are parsed into o.
 */
static enum owner_result
ask(const char *path, const char *user, uint64_t deadline,
    struct mailbox_owner *o, char *err, size_t errlen)
{
	char *line = xmalloc(OWNER_MAX_LINE + 1);
	struct sbuf req;
	enum owner_result res = OWNER_TEMPFAIL;
	size_t len = 0;
	bool version = false;
	int fd;

	if ((fd = connect_socket(path, deadline, err, errlen)) < 0) {
		free(line);
		return OWNER_TEMPFAIL;
	}
	sbuf_init(&req, 0);
	sbuf_addstr(&req, "VERSION\t1\t0\nUSER\t1\t");
	tab_escape(&req, user);
	sbuf_addstr(&req, "\tservice=lda\n");
	if (send_all(fd, req.s, req.len, deadline) < 0) {
		snprintf(err, errlen, "userdb: send: %s", strerror(errno));
		goto out;
	}
	for (;;) {
		char *nl;
		ssize_t n;

		while ((nl = memchr(line, '\n', len)) != NULL) {
			size_t ll = (size_t)(nl - line);

			*nl = '\0';
			if (strncmp(line, "VERSION\t", 8) == 0) {
				if (strncmp(line + 8, "1\t", 2) != 0) {
					snprintf(err, errlen, "userdb: incompatible version");
					goto out;
				}
				version = true;
			} else if (!version || strncmp(line, "SPID\t", 5) == 0) {
				/* before VERSION nothing counts; SPID is not ours */
			} else if (strcmp(line, "NOTFOUND\t1") == 0) {
				res = OWNER_NOTFOUND;
				goto out;
			} else if (strncmp(line, "FAIL\t1", 6) == 0 &&
			    (line[6] == '\0' || line[6] == '\t')) {
				snprintf(err, errlen, "userdb: lookup failed");
				goto out;
			} else if (strncmp(line, "USER\t1\t", 7) == 0) {
				const char *f = strchr(line + 7, '\t');

				if (mailbox_owner_fields(f ? f + 1 : "", o, err,
				    errlen) == 0)
					res = OWNER_FOUND;
				goto out;
			}
			memmove(line, nl + 1, len - ll - 1);
			len -= ll + 1;
		}
		if (len >= OWNER_MAX_LINE) {
			snprintf(err, errlen, "userdb: reply line too long");
			goto out;
		}
		n = recv(fd, line + len, OWNER_MAX_LINE - len, 0);
		if (n > 0) {
			len += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd p = { .fd = fd, .events = POLLIN };
			int ms = left_ms(deadline);

			if (ms > 0 && poll(&p, 1, ms) > 0)
				continue;
			snprintf(err, errlen, "userdb: no answer in time");
			goto out;
		}
		snprintf(err, errlen, "userdb: connection closed");
		goto out;
	}
out:
	close(fd);
	sbuf_free(&req);
	free(line);
	return res;
}

enum owner_result
mailbox_owner_lookup(const char *socket_path, const char *local,
    const char *domain, int timeout_ms, struct mailbox_owner *o, char *err,
    size_t errlen)
{
	uint64_t deadline = now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 1);
	char *full = xasprintf("%s@%s", local, domain);
	enum owner_result r;

	memset(o, 0, sizeof(*o));
	err[0] = '\0';
	if (socket_path == NULL || socket_path[0] == '\0') {
		snprintf(err, errlen, "no userdb socket");
		free(full);
		return OWNER_TEMPFAIL;
	}
	r = ask(socket_path, full, deadline, o, err, errlen);
	if (r == OWNER_NOTFOUND)
		r = ask(socket_path, local, deadline, o, err, errlen);
	free(full);
	return r;
}
