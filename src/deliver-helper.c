/*
 * deliver-helper.c - the privileged delivery helper (see deliver-helper.h):
 * its process (forked by the queue role while still root), the child it
 * forks per delivery (drops to the target uid/gid, then writes), and the
 * queue role's side of the socketpair.
 *
 * Wire format, one SOCK_SEQPACKET message each way:
 *   request: struct hreq, then target, sender, rcpt and head (lengths in
 *            the struct, no NULs), with SCM_RIGHTS [queue file, reply
 *            socket]; at most HREQ_MAX bytes
 *   reply:   struct hrep on the reply socket, written by the delivery
 *            child (or by the helper when it refuses the request)
 * A reply socket that closes without an answer (the child crashed or hit
 * its alarm()) means "try again later".
 *
 * Privileges: started as root, the helper becomes `user` at once but keeps
 * CAP_SETUID and CAP_SETGID (and nothing else: it cannot open a file as
 * root), and is not dumpable.  A delivery child switches to the target
 * uid/gid with those, then drops every capability and checks that none
 * is left and that root cannot be regained.
 */
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "deliver-alias.h"
#include "deliver-helper.h"
#include "log.h"
#include "maildir.h"
#include "mailbox-owner.h"
#include "util.h"

#define HREQ_MAGIC        0x6d44a701u
#define HREP_MAGIC        0x6d44a702u
#define HELPER_FD         3
#define HELPER_SLACK_SECS 30          /* beyond the child's own limit */
#define HELPER_SEND_SECS  10          /* the helper's queue is full */
#define HREQ_MAX (sizeof(struct hreq) + HELPER_MAX_TARGET + \
	2 * HELPER_MAX_ADDR + HELPER_MAX_HEAD)

struct hreq {
	uint32_t magic;
	uint32_t kind;
	uint32_t uid;
	uint32_t gid;
	int64_t body_offset;
	uint32_t target_len;
	uint32_t sender_len;
	uint32_t rcpt_len;
	uint32_t head_len;
};

struct hrep {
	uint32_t magic;
	int32_t status;              /* enum delivery_status */
	char dsn[16];
	char detail[DELIVERY_DETAIL_MAX];
};

/* ---- the queue role's side -------------------------------------------- */

static int helper_fd = -1;
static bool helper_priv;
static int helper_cmd_secs = 300;
static atomic_bool helper_gone;

bool
deliver_helper_running(void)
{
	return helper_fd >= 0 && !atomic_load(&helper_gone);
}

bool
deliver_helper_privileged(void)
{
	return helper_fd >= 0 && helper_priv;
}

/* The helper died: nothing can be delivered as another user until the
 * queue role starts again (and with it a new helper). */
static void
helper_lost(void)
{
	if (!atomic_exchange(&helper_gone, true)) {
		log_errx("queue: the delivery helper is gone; restarting the "
		    "queue role");
		kill(getpid(), SIGTERM);
	}
}

/* Append s (bounded by max) to buf at *off; false if too long. */
static bool
put_str(char *buf, size_t *off, const char *s, size_t max, uint32_t *len)
{
	size_t n = strlen(s);

	if (n > max)
		return false;
	memcpy(buf + *off, s, n);
	*off += n;
	*len = (uint32_t)n;
	return true;
}

void
deliver_helper_call(const struct helper_request *req,
    const struct delivery_msg *msg, struct delivery_rcpt *r)
{
	char *buf;
	struct hreq h;
	struct hrep rep;
	size_t off = sizeof(h);
	int rp[2], fds[2], secs;
	ssize_t n;

	if (!deliver_helper_running()) {
		delivery_set(r, DELIVERY_DEFER, "4.3.0", "no delivery helper (%s)",
		    helper_fd < 0 ? "not started" : "it is gone");
		return;
	}
	buf = xmalloc(HREQ_MAX);
	memset(&h, 0, sizeof(h));
	h.magic = HREQ_MAGIC;
	h.kind = (uint32_t)req->kind;
	h.uid = (uint32_t)req->uid;
	h.gid = (uint32_t)req->gid;
	h.body_offset = msg->body_offset;
	if (!put_str(buf, &off, req->target, HELPER_MAX_TARGET, &h.target_len) ||
	    !put_str(buf, &off, req->sender, HELPER_MAX_ADDR, &h.sender_len) ||
	    !put_str(buf, &off, req->rcpt, HELPER_MAX_ADDR, &h.rcpt_len) ||
	    !put_str(buf, &off, req->head, HELPER_MAX_HEAD, &h.head_len)) {
		delivery_set(r, DELIVERY_BOUNCE, "5.3.0", "delivery request too "
		    "long (path, address or headers)");
		free(buf);
		return;
	}
	memcpy(buf, &h, sizeof(h));
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, rp) < 0) {
		delivery_set(r, DELIVERY_DEFER, "4.3.0", "socketpair: %s",
		    strerror(errno));
		free(buf);
		return;
	}
	fds[0] = msg->fd;
	fds[1] = rp[1];
	n = send_fds(helper_fd, buf, off, fds, 2, 0);
	free(buf);
	close(rp[1]);
	if (n < 0) {
		int e = errno;

		close(rp[0]);
		if (e == EAGAIN || e == EWOULDBLOCK) {
			delivery_set(r, DELIVERY_DEFER, "4.3.0", "the delivery helper "
			    "is busy");
			return;
		}
		helper_lost();
		delivery_set(r, DELIVERY_DEFER, "4.3.0", "the delivery helper is "
		    "gone: %s", strerror(e));
		return;
	}
	secs = (req->kind == HELPER_COMMAND ? helper_cmd_secs : HELPER_FS_SECS) +
	    2 * HELPER_SLACK_SECS;
	{
		struct pollfd p = { .fd = rp[0], .events = POLLIN };
		uint64_t deadline = now_ms() + (uint64_t)secs * 1000;
		int rc;

		for (;;) {
			uint64_t now = now_ms();

			rc = now >= deadline ? 0 : poll(&p, 1, (int)(deadline - now));
			if (rc < 0 && errno == EINTR)
				continue;
			break;
		}
		if (rc <= 0) {
			delivery_set(r, DELIVERY_DEFER, "4.3.0", "no answer from the "
			    "delivery process within %d s", secs);
			close(rp[0]);
			return;
		}
	}
	do
		n = recv(rp[0], &rep, sizeof(rep), 0);
	while (n < 0 && errno == EINTR);
	close(rp[0]);
	if (n != (ssize_t)sizeof(rep) || rep.magic != HREP_MAGIC ||
	    rep.status < DELIVERY_SENT || rep.status > DELIVERY_BOUNCE) {
		delivery_set(r, DELIVERY_DEFER, "4.3.0", "the delivery process "
		    "ended without an answer");
		return;
	}
	rep.dsn[sizeof(rep.dsn) - 1] = '\0';
	rep.detail[sizeof(rep.detail) - 1] = '\0';
	delivery_set(r, (enum delivery_status)rep.status, rep.dsn, "%s",
	    rep.detail);
}

/* ---- checks (both sides) ---------------------------------------------- */

/* No control characters (bytes >= 0x80 are fine: UTF-8 addresses). */
static bool
clean(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

/* An absolute path without "." or ".." components or empty ones. */
static bool
clean_path(const char *p)
{
	if (p[0] != '/' || !clean(p))
		return false;
	for (const char *c = p; *c != '\0'; ) {
		size_t n;

		c++;                    /* past '/' */
		n = strcspn(c, "/");
		if ((n == 0 && c[0] != '\0') || (n == 1 && c[0] == '.') ||
		    (n == 2 && c[0] == '.' && c[1] == '.'))
			return false;
		c += n;
	}
	return true;
}

/* Header lines: each non-empty, ends in LF, no other control bytes but TAB. */
static bool
clean_head(const char *h)
{
	bool bol = true;

	for (; *h != '\0'; h++) {
		unsigned char c = (unsigned char)*h;

		if (c == '\n') {
			if (bol)
				return false;
			bol = true;
			continue;
		}
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return false;
		bol = false;
	}
	return bol;
}

const char *
deliver_helper_check(const struct helper_request *req,
    const struct msagate_config *cfg, bool privileged, uid_t self_uid,
    gid_t self_gid)
{
	static __thread char why[160];

	if (!clean(req->sender) || !clean(req->rcpt) || !clean_head(req->head))
		return "control characters in the request";
	switch (req->kind) {
	case HELPER_MAILDIR:
		if (!clean_path(req->target))
			return "the Maildir is not a clean absolute path";
		if (!privileged) {
			if (req->uid != self_uid || req->gid != self_gid)
				return "not started as root: cannot deliver as another "
				    "user";
			return NULL;
		}
		return mailbox_owner_refused(req->uid, req->gid,
		    cfg->relay.delivery_min_uid, why, sizeof(why));
	case HELPER_COMMAND:
		if (!cfg->relay.allow_alias_commands)
			return "mail to commands is off (relay.allow_alias_commands)";
		if (req->target[0] != '|' || !clean(req->target))
			return "not a command";
		return NULL;
	case HELPER_FILE:
		if (!cfg->relay.allow_alias_files)
			return "mail to files is off (relay.allow_alias_files)";
		if (!clean_path(req->target))
			return "the file is not a clean absolute path";
		return NULL;
	}
	return "unknown request";
}

/* ---- the helper process ----------------------------------------------- */

/* relay.alias_user as the helper resolved it at start. */
static struct {
	bool ok;
	uid_t uid;
	gid_t gid;
	char name[128];
	char home[1024];
	char why[200];
} alias_acct;

static const struct msagate_config *hcfg;
static char hhost[MAILDIR_HOST_MAX];

static void
resolve_alias_user(const struct msagate_config *cfg, bool privileged)
{
	struct passwd *pw;

	if (privileged && cfg->relay.alias_user == NULL) {
		snprintf(alias_acct.why, sizeof(alias_acct.why),
		    "relay.alias_user is not set");
		return;
	}
	pw = privileged ? getpwnam(cfg->relay.alias_user) : getpwuid(geteuid());
	if (pw == NULL) {
		if (privileged)
			snprintf(alias_acct.why, sizeof(alias_acct.why),
			    "relay.alias_user \"%.64s\" does not exist",
			    cfg->relay.alias_user);
		else
			snprintf(alias_acct.why, sizeof(alias_acct.why),
			    "the invoking user has no passwd entry");
		return;
	}
	if (privileged && (pw->pw_uid == 0 || pw->pw_gid == 0)) {
		snprintf(alias_acct.why, sizeof(alias_acct.why),
		    "relay.alias_user \"%.64s\" has uid or gid 0: refused",
		    cfg->relay.alias_user);
		return;
	}
	alias_acct.ok = true;
	alias_acct.uid = pw->pw_uid;
	alias_acct.gid = pw->pw_gid;
	snprintf(alias_acct.name, sizeof(alias_acct.name), "%s", pw->pw_name);
	snprintf(alias_acct.home, sizeof(alias_acct.home), "%s",
	    pw->pw_dir && pw->pw_dir[0] == '/' ? pw->pw_dir : "/");
}

/* Answer on the reply socket (helper or child). */
static void
reply(int rfd, enum delivery_status st, const char *dsn, const char *detail)
{
	struct hrep rep;

	memset(&rep, 0, sizeof(rep));
	rep.magic = HREP_MAGIC;
	rep.status = (int32_t)st;
	snprintf(rep.dsn, sizeof(rep.dsn), "%s", dsn);
	delivery_printable(rep.detail, sizeof(rep.detail), detail);
	(void)send(rfd, &rep, sizeof(rep), MSG_NOSIGNAL);
}

/* Set the capability sets (effective = permitted, no inheritable). */
static int
set_caps(uint32_t caps)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];

	memset(data, 0, sizeof(data));
	data[0].effective = data[0].permitted = caps;
	return (int)syscall(SYS_capset, &hdr, data);
}

/* Are all capability sets empty? */
static bool
no_caps(void)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];

	memset(data, 0, sizeof(data));
	if (syscall(SYS_capget, &hdr, data) < 0)
		return false;
	for (int i = 0; i < 2; i++)
		if (data[i].effective || data[i].permitted || data[i].inheritable)
			return false;
	return true;
}

/*
 * The helper itself, started as root: become `user` (uid, gid) keeping
 * only CAP_SETUID and CAP_SETGID.  false if any step fails.
 */
static bool
keep_only_setid(uid_t uid, gid_t gid)
{
	uid_t ru, eu, su;

	if (uid == 0 || prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0 ||
	    setgroups(1, &gid) < 0 || setresgid(gid, gid, gid) < 0 ||
	    setresuid(uid, uid, uid) < 0 ||
	    prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0 ||
	    set_caps((1u << CAP_SETUID) | (1u << CAP_SETGID)) < 0)
		return false;
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	return getresuid(&ru, &eu, &su) == 0 && ru == uid && eu == uid && su == uid;
}

/* A delivery child: become uid/gid for good, without any capability;
 * false if any step fails. */
static bool
become(uid_t uid, gid_t gid)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;

	if (setgroups(1, &gid) < 0 || setresgid(gid, gid, gid) < 0 ||
	    setresuid(uid, uid, uid) < 0 || set_caps(0) < 0)
		return false;
	if (getresuid(&ru, &eu, &su) < 0 || ru != uid || eu != uid || su != uid ||
	    getresgid(&rg, &eg, &sg) < 0 || rg != gid || eg != gid || sg != gid)
		return false;
	return no_caps() && setuid(0) < 0 && setgid(0) < 0;
}

/* One delivery, in its own child; never returns. */
static void __attribute__((noreturn))
delivery_child(const struct helper_request *req, int qfd, int rfd,
    long long body_offset, bool privileged)
{
	struct delivery_rcpt r;
	struct delivery_msg msg;
	uid_t uid = req->uid;
	gid_t gid = req->gid;
	char why[200];

	close(HELPER_FD);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGCHLD, SIG_DFL);
	if (req->kind != HELPER_MAILDIR) {
		if (!alias_acct.ok) {
			reply(rfd, DELIVERY_DEFER, "4.3.5", alias_acct.why);
			_exit(0);
		}
		uid = alias_acct.uid;
		gid = alias_acct.gid;
	}
	if (privileged && (uid == 0 || gid == 0 || !become(uid, gid))) {
		snprintf(why, sizeof(why), "cannot switch to uid %lu gid %lu",
		    (unsigned long)uid, (unsigned long)gid);
		reply(rfd, DELIVERY_DEFER, "4.3.0", why);
		_exit(0);
	}
	(void)prctl(PR_SET_DUMPABLE, 0);
	umask(077);
	alarm((unsigned)(req->kind == HELPER_COMMAND ? helper_cmd_secs +
	    HELPER_SLACK_SECS : HELPER_FS_SECS));
	memset(&r, 0, sizeof(r));
	memset(&msg, 0, sizeof(msg));
	msg.fd = qfd;
	msg.body_offset = body_offset;
	if (req->kind == HELPER_MAILDIR) {
		const char *step = "";
		int rc = maildir_store(req->target, hhost, req->head,
		    strlen(req->head), &msg, &step);

		maildir_verdict(&r, rc < 0 ? errno : 0, step, req->target);
	} else {
		struct alias_job j = {
			.target = req->target, .sender = req->sender,
			.rcpt = req->rcpt, .head = req->head,
			.hlen = strlen(req->head), .user = alias_acct.name,
			.home = alias_acct.home, .timeout_s = helper_cmd_secs,
		};

		if (req->kind == HELPER_COMMAND)
			alias_deliver_command(&j, &msg, &r);
		else
			alias_deliver_file(&j, &msg, &r);
	}
	reply(rfd, r.status, r.dsn, r.detail);
	_exit(0);
}

/* Copy a length-counted string out of the request; false if it has a NUL. */
static bool
take(const char **p, size_t len, char *dst)
{
	memcpy(dst, *p, len);
	dst[len] = '\0';
	*p += len;
	return strlen(dst) == len;
}

/* One request: check it, fork its child.  Takes the two descriptors. */
static void
serve(const char *buf, size_t n, int qfd, int rfd, bool privileged,
    unsigned *children)
{
	static char target[HELPER_MAX_TARGET + 1], sender[HELPER_MAX_ADDR + 1];
	static char rcpt[HELPER_MAX_ADDR + 1], head[HELPER_MAX_HEAD + 1];
	struct helper_request req;
	struct hreq h;
	const char *p = buf + sizeof(h), *why;
	struct stat st;
	pid_t pid;

	if (n < sizeof(h))
		goto bad;
	memcpy(&h, buf, sizeof(h));
	if (h.magic != HREQ_MAGIC || h.target_len > HELPER_MAX_TARGET ||
	    h.sender_len > HELPER_MAX_ADDR || h.rcpt_len > HELPER_MAX_ADDR ||
	    h.head_len > HELPER_MAX_HEAD || h.body_offset < 0 ||
	    n != sizeof(h) + (size_t)h.target_len + h.sender_len + h.rcpt_len +
	    h.head_len ||
	    !take(&p, h.target_len, target) || !take(&p, h.sender_len, sender) ||
	    !take(&p, h.rcpt_len, rcpt) || !take(&p, h.head_len, head) ||
	    fstat(qfd, &st) < 0 || !S_ISREG(st.st_mode))
		goto bad;
	memset(&req, 0, sizeof(req));
	req.kind = (enum helper_kind)h.kind;
	req.uid = (uid_t)h.uid;
	req.gid = (gid_t)h.gid;
	req.target = target;
	req.sender = sender;
	req.rcpt = rcpt;
	req.head = head;
	if ((why = deliver_helper_check(&req, hcfg, privileged, geteuid(),
	    getegid())) != NULL) {
		log_warnx("delivery: refused a request: %s", why);
		reply(rfd, DELIVERY_DEFER, "4.3.5", why);
		goto out;
	}
	if (*children >= HELPER_MAX_CHILDREN) {
		reply(rfd, DELIVERY_DEFER, "4.3.0", "too many deliveries at once");
		goto out;
	}
	if ((pid = fork()) < 0) {
		log_warn("delivery: fork");
		reply(rfd, DELIVERY_DEFER, "4.3.0", "cannot fork a delivery process");
		goto out;
	}
	if (pid == 0)
		delivery_child(&req, qfd, rfd, (long long)h.body_offset, privileged);
	(*children)++;
	log_debug("delivery: pid %ld: %s as uid %lu", (long)pid,
	    req.kind == HELPER_MAILDIR ? "Maildir" : req.kind == HELPER_COMMAND ?
	    "command" : "file", (unsigned long)(req.kind == HELPER_MAILDIR ?
	    req.uid : alias_acct.uid));
	goto out;
bad:
	log_warnx("delivery: malformed request from the queue role");
	reply(rfd, DELIVERY_DEFER, "4.3.0", "malformed delivery request");
out:
	close(qfd);
	close(rfd);
}

/* The helper's loop: requests in, children out, until the queue role
 * closes its end. */
static void __attribute__((noreturn))
helper_main(bool privileged)
{
	static char buf[HREQ_MAX + 1];
	unsigned children = 0;

	for (;;) {
		struct pollfd p = { .fd = HELPER_FD, .events = POLLIN };
		union {
			struct cmsghdr hdr;
			char buf[CMSG_SPACE(4 * sizeof(int))];
		} cm;
		struct msghdr mh;
		struct iovec iov;
		struct cmsghdr *ch;
		int fds[4], nfds = 0;
		ssize_t n;

		while (waitpid(-1, NULL, WNOHANG) > 0)
			if (children > 0)
				children--;
		if (poll(&p, 1, 1000) <= 0)
			continue;
		memset(&mh, 0, sizeof(mh));
		iov.iov_base = buf;
		iov.iov_len = sizeof(buf);
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = cm.buf;
		mh.msg_controllen = sizeof(cm.buf);
		n = recvmsg(HELPER_FD, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			_exit(0);            /* the queue role went away */
		for (ch = CMSG_FIRSTHDR(&mh); ch != NULL; ch = CMSG_NXTHDR(&mh, ch)) {
			if (ch->cmsg_level != SOL_SOCKET || ch->cmsg_type != SCM_RIGHTS)
				continue;
			for (size_t i = 0; i < (ch->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			    i++) {
				int fd;

				memcpy(&fd, CMSG_DATA(ch) + i * sizeof(int), sizeof(int));
				if (nfds < 4)
					fds[nfds++] = fd;
				else
					close(fd);
			}
		}
		if (nfds != 2 || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
			/* no way to answer: closing the reply socket says enough */
			log_warnx("delivery: malformed request from the queue role");
			for (int i = 0; i < nfds; i++)
				close(fds[i]);
			continue;
		}
		serve(buf, (size_t)n, fds[0], fds[1], privileged, &children);
	}
}

void
deliver_helper_start(const struct msagate_config *cfg)
{
	bool privileged = geteuid() == 0;
	int sv[2];
	pid_t parent = getpid(), pid;
	struct timeval tv = { HELPER_SEND_SECS, 0 };

	helper_cmd_secs = cfg->relay.alias_command_timeout_ms > 0 ?
	    (cfg->relay.alias_command_timeout_ms + 999) / 1000 : 300;
	if (!(privileged && cfg->relay.delivery_method != NULL &&
	    strcmp(cfg->relay.delivery_method, "maildir") == 0) &&
	    !cfg->relay.allow_alias_commands && !cfg->relay.allow_alias_files)
		return;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		fatal("queue: socketpair for the delivery helper");
	if ((pid = fork()) < 0)
		fatal("queue: fork of the delivery helper");
	if (pid == 0) {
		(void)prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(0);
		signal(SIGHUP, SIG_IGN);
		signal(SIGINT, SIG_IGN);
		signal(SIGPIPE, SIG_IGN);
		signal(SIGCHLD, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		closelog();          /* its descriptor goes with closefrom() */
		if (sv[1] != HELPER_FD) {
			if (dup2(sv[1], HELPER_FD) < 0)
				_exit(1);
		} else {
			int fl = fcntl(sv[1], F_GETFD);

			if (fl != -1)
				(void)fcntl(sv[1], F_SETFD, fl & ~FD_CLOEXEC);
		}
		closefrom(HELPER_FD + 1);
		log_set_ident("msagated/delivery");
		hcfg = cfg;
		maildir_host(cfg->hostname, hhost, sizeof(hhost));
		resolve_alias_user(cfg, privileged);
		if ((cfg->relay.allow_alias_commands || cfg->relay.allow_alias_files) &&
		    !alias_acct.ok)
			log_warnx("delivery: %s: commands and files of aliases are "
			    "deferred", alias_acct.why);
		if (privileged) {
			struct passwd *pw = getpwnam(cfg->user);

			if (pw == NULL || !keep_only_setid(pw->pw_uid, pw->pw_gid)) {
				log_warnx("delivery: cannot become \"%s\" with only "
				    "CAP_SETUID and CAP_SETGID", cfg->user);
				_exit(1);
			}
		}
		helper_main(privileged);
	}
	close(sv[1]);
	helper_fd = sv[0];
	helper_priv = privileged;
	(void)setsockopt(helper_fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	log_info("queue: delivery helper started, pid %ld (%s)", (long)pid,
	    privileged ? "as user with CAP_SETUID/CAP_SETGID: writes as the "
	    "recipients, commands and files as relay.alias_user" :
	    "not root: everything as this user");
}
