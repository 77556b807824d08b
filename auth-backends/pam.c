/*
 * pam.c - the "pam" backend: plaintext passwords checked with
 * pam_authenticate + pam_acct_mgmt under the configured service name.
 *
 * PAM modules such as pam_unix must read /etc/shadow, may block for a
 * long time and keep their own failure delays; none of that may happen
 * in the unprivileged auth role.  So init() - which runs while the auth
 * role is still root and has no threads yet - forks `workers` privileged
 * helper processes.  Each one serves requests for its whole life over a
 * SOCK_SEQPACKET socketpair (one message per request and per reply, so
 * the framing is bounded by the kernel), and runs every PAM transaction
 * in a fresh child of its own: a crashing, leaking or hanging PAM module
 * takes only that child with it, and the helper enforces the timeout by
 * killing it.  The helpers never touch the network or the client.  The
 * client's address, when the auth request carried one, becomes PAM_RHOST.
 *
 * The auth role's threads share the helpers through a slot pool
 * (backend-slots.h): a thread takes an idle helper, sends the request and
 * waits for the answer.  At most `workers` requests run and `workers`
 * more wait; beyond that PAM answers "temporary failure" at once, and the
 * auth role adds max_blocked_threads() = 2 * workers threads to its pool,
 * so slow PAM can never hold the threads that other backends need.
 *
 * A helper that dies is retired (its request fails temporarily); once
 * all are gone the unprivileged auth role cannot fork new ones, so it asks
 * itself to stop (SIGTERM) and the parent starts a fresh auth role.
 *
 * Results: success + account ok -> OK; PAM_AUTH_ERR and friends ->
 * MISMATCH; PAM_USER_UNKNOWN -> UNKNOWN_USER (the next backend may try);
 * right password but account expired/locked -> DISABLED, password expired
 * -> DISABLED with pass_expired; anything else -> TEMPFAIL.
 * Plaintext credentials cannot be looked up (no CRAM-MD5/SCRAM).
 * With auth.cache_verdicts the chain (backend.c) replays recent OK
 * verdicts for the same service, client address, user and password; by
 * default every login goes to PAM.
 *
 * Userdb lookups (lookup_user, for recipient checks): PAM itself has no
 * "does this user exist" call, so the backend answers for the system
 * accounts PAM authenticates: getpwnam_r(user) in the calling worker
 * thread (NSS may block; never on the loop), and for user@domain, when
 * that name is not an account, getpwnam_r(local part) - whether the
 * domain is ours is the caller's business (the SMTP role only asks about
 * local_domains).  The canonical name is the account's; fields uid, gid,
 * home.  ENOENT-type answers are "unknown"; other NSS errors TEMPFAIL.
 */
#ifdef HAVE_PAM

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <security/pam_appl.h>

#include "backend.h"
#include "backend-slots.h"
#include "log.h"
#include "util.h"

#define PAM_REQ_MAGIC	0x6d51a701u
#define PAM_REP_MAGIC	0x6d51a702u
#define PAM_SLACK_MS	2000       /* helper's own timeout + this = ours */
#define PAM_MAX_TIMEOUT_MS	120000
#define PAM_REAP_MS	1000       /* deinit: wait this long for helpers */
#define PAM_BUSY_LOG_MS	10000      /* "all helpers busy" at most this often */
#define PAM_HELPER_FD	3

#define PAM_MAX_RHOST	63

/* Request: header, then userlen + passlen + riplen bytes (no NULs). */
struct pam_req_hdr {
	uint32_t magic;
	uint32_t id;
	uint32_t timeout_ms;
	uint16_t userlen;
	uint16_t passlen;
	uint16_t riplen;
	uint16_t pad;
};

#define PAM_REQ_MAX	(sizeof(struct pam_req_hdr) + BACKEND_MAX_USER + \
			 BACKEND_MAX_PASSWORD + PAM_MAX_RHOST)

/* Reply: fixed size. */
struct pam_rep {
	uint32_t magic;
	uint32_t id;
	int32_t result;                     /* enum backend_result */
	uint32_t pass_expired;
	char user[BACKEND_MAX_USER + 1];    /* PAM_USER afterwards, or "" */
};

/* What the per-request child tells its helper. */
struct pam_outcome {
	int auth_rc;
	int acct_rc;                        /* -1: not called */
	char user[BACKEND_MAX_USER + 1];
};

struct pam_helper {
	int fd;                             /* -1 once retired */
	pid_t pid;
	uint32_t next_id;
};

struct pam_state {
	char *service;
	int timeout_ms;
	size_t n;
	struct pam_helper *h;
	struct backend_slots *slots;
	_Atomic uint64_t busy_logged;
};

/* ---- helpers shared by both sides -------------------------------------- */

/* pam_name_ok - a user name PAM could know: printable, no spaces. */
static bool
pam_name_ok(const char *s, size_t len)
{
	return backend_name_ok(s, len, " ");
}

/* pam_rhost_ok - an address as text (IPv4, IPv6, maybe with a %scope). */
static bool
pam_rhost_ok(const char *s)
{
	return backend_token_ok(s, PAM_MAX_RHOST, ".:%-_");
}

/* pam_service_ok - a service name that is a file name in /etc/pam.d. */
static bool
pam_service_ok(const char *s)
{
	return backend_token_ok(s, 64, "-_.+") && strcmp(s, ".") != 0 &&
	    strcmp(s, "..") != 0;
}

/*
 * pam_map - PAM return codes to a backend result.  acct_rc is only
 * looked at after a successful pam_authenticate.
 */
static enum backend_result
pam_map(int auth_rc, int acct_rc, bool *pass_expired)
{
	*pass_expired = false;
	switch (auth_rc) {
	case PAM_SUCCESS:
		break;
	case PAM_AUTH_ERR:
	case PAM_PERM_DENIED:
	case PAM_CRED_INSUFFICIENT:
	case PAM_MAXTRIES:
		return BACKEND_MISMATCH;
	case PAM_USER_UNKNOWN:
		return BACKEND_UNKNOWN_USER;
	default:
		return BACKEND_TEMPFAIL;
	}
	switch (acct_rc) {
	case PAM_SUCCESS:
		return BACKEND_OK;
	case PAM_NEW_AUTHTOK_REQD:
	case PAM_AUTHTOK_EXPIRED:
		*pass_expired = true;
		return BACKEND_DISABLED;
	case PAM_ACCT_EXPIRED:
	case PAM_PERM_DENIED:
	case PAM_AUTH_ERR:
	case PAM_USER_UNKNOWN:
		/* the password was right, the account may not log in */
		return BACKEND_DISABLED;
	default:
		return BACKEND_TEMPFAIL;
	}
}

/* ---- the per-request child: one PAM transaction ------------------------ */

struct pam_appdata {
	const char *user;
	const char *pass;
};

/* pam_conv_fn - answer password prompts with the password, visible
 * prompts with the user name, and acknowledge messages. */
static int
pam_conv_fn(int n, const struct pam_message **msg, struct pam_response **resp,
    void *appdata_ptr)
{
	const struct pam_appdata *ad = appdata_ptr;
	struct pam_response *r;
	int i;

	*resp = NULL;
	if (n <= 0 || n > PAM_MAX_NUM_MSG)
		return PAM_CONV_ERR;
	if ((r = calloc((size_t)n, sizeof(*r))) == NULL)
		return PAM_BUF_ERR;
	for (i = 0; i < n; i++) {
		const char *answer = NULL;

		switch (msg[i]->msg_style) {
		case PAM_PROMPT_ECHO_OFF:
			answer = ad->pass;
			break;
		case PAM_PROMPT_ECHO_ON:
			answer = ad->user;
			break;
		case PAM_ERROR_MSG:
		case PAM_TEXT_INFO:
			continue;
		default:
			goto fail;
		}
		if ((r[i].resp = strdup(answer)) == NULL)
			goto fail;
	}
	*resp = r;
	return PAM_SUCCESS;
fail:
	for (i = 0; i < n; i++)
		if (r[i].resp != NULL) {
			secure_zero(r[i].resp, strlen(r[i].resp));
			free(r[i].resp);
		}
	free(r);
	return PAM_CONV_ERR;
}

/* PAM's failure delay: none here, the auth server applies its own. */
static void
pam_no_delay(int retval, unsigned usec_delay, void *appdata_ptr)
{
	(void)retval;
	(void)usec_delay;
	(void)appdata_ptr;
}

/* pam_transaction - runs in the per-request child, as root. */
static void
pam_transaction(const char *service, const char *user, const char *pass,
    const char *rhost, struct pam_outcome *out)
{
	struct pam_appdata ad = { user, pass };
	struct pam_conv conv = { pam_conv_fn, &ad };
	void (*delay_fn)(int, unsigned, void *) = pam_no_delay;
	pam_handle_t *ph = NULL;
	const void *item = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	out->acct_rc = -1;
	rc = pam_start(service, user, &conv, &ph);
	if (rc != PAM_SUCCESS) {
		log_warnx("pam: service %s: pam_start: %s", service,
		    pam_strerror(ph, rc));
		out->auth_rc = rc;
		if (ph != NULL)
			pam_end(ph, rc);
		return;
	}
	/* PAM_FAIL_DELAY takes the function pointer itself as the item */
	{
		const void *fp;
		memcpy(&fp, &delay_fn, sizeof(fp));
		(void)pam_set_item(ph, PAM_FAIL_DELAY, fp);
	}
	if (rhost[0] != '\0')
		(void)pam_set_item(ph, PAM_RHOST, rhost);
	rc = pam_authenticate(ph, PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK);
	out->auth_rc = rc;
	if (rc == PAM_SUCCESS)
		out->acct_rc = pam_acct_mgmt(ph, PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK);
	if (pam_get_item(ph, PAM_USER, &item) == PAM_SUCCESS && item != NULL &&
	    pam_name_ok(item, strlen(item)))
		snprintf(out->user, sizeof(out->user), "%s", (const char *)item);
	{
		/* log what PAM itself calls an error (not "wrong password") */
		bool pe;
		if (pam_map(out->auth_rc, out->acct_rc, &pe) == BACKEND_TEMPFAIL) {
			char su[160];
			bool in_auth = out->auth_rc != PAM_SUCCESS;
			log_warnx("pam: service %s: user %s: %s: %s", service,
			    log_safe(su, sizeof(su), user, 64),
			    in_auth ? "pam_authenticate" : "pam_acct_mgmt",
			    pam_strerror(ph, in_auth ? out->auth_rc : out->acct_rc));
		}
	}
	pam_end(ph, rc);
}

/* ---- the privileged helper process ------------------------------------- */

/*
 * helper_run_one - fork a child for one PAM transaction, wait for its
 * outcome at most timeout_ms (then kill it).  Fills rep.
 */
static void
helper_run_one(const char *service, const char *user, char *pass,
    const char *rhost, unsigned timeout_ms, struct pam_rep *rep)
{
	struct pam_outcome out;
	int p[2], status;
	pid_t pid;
	bool pe = false;
	char su[160];

	rep->result = BACKEND_TEMPFAIL;
	if (pipe2(p, O_CLOEXEC) == -1) {
		log_warn("pam: pipe");
		return;
	}
	pid = fork();
	if (pid == -1) {
		log_warn("pam: fork");
		close(p[0]);
		close(p[1]);
		return;
	}
	if (pid == 0) {
		/* its own process group, so that a timeout kills what PAM
		 * modules started (pam_exec) along with it */
		(void)setpgid(0, 0);
		close(p[0]);
		close(PAM_HELPER_FD);
		pam_transaction(service, user, pass, rhost, &out);
		secure_zero(pass, strlen(pass));
		if (write(p[1], &out, sizeof(out)) != (ssize_t)sizeof(out))
			_exit(1);
		_exit(0);
	}
	(void)setpgid(pid, pid);       /* as the child does: no race */
	close(p[1]);
	{
		struct pollfd pfd = { .fd = p[0], .events = POLLIN };
		uint64_t deadline = now_ms() + timeout_ms;
		ssize_t n = -1;

		for (;;) {
			uint64_t now = now_ms();
			int rc;

			if (now >= deadline) {
				rc = 0;
			} else {
				rc = poll(&pfd, 1, (int)(deadline - now));
				if (rc == -1 && errno == EINTR)
					continue;
			}
			if (rc == 0) {
				log_warnx("pam: service %s: user %s: no answer from PAM "
				    "within %u ms; aborted", service,
				    log_safe(su, sizeof(su), user, 64), timeout_ms);
				kill(-pid, SIGKILL);
				kill(pid, SIGKILL);
				break;
			}
			do
				n = read(p[0], &out, sizeof(out));
			while (n == -1 && errno == EINTR);
			break;
		}
		close(p[0]);
		while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
			;
		if (n != (ssize_t)sizeof(out)) {
			if (n >= 0 && WIFSIGNALED(status) && WTERMSIG(status) != SIGKILL)
				log_warnx("pam: service %s: user %s: the PAM process "
				    "was killed by signal %d", service,
				    log_safe(su, sizeof(su), user, 64), WTERMSIG(status));
			return;
		}
	}
	rep->result = (int32_t)pam_map(out.auth_rc, out.acct_rc, &pe);
	rep->pass_expired = pe;
	if (rep->result == BACKEND_OK || rep->result == BACKEND_DISABLED)
		memcpy(rep->user, out.user, sizeof(rep->user));
	secure_zero(&out, sizeof(out));
}

/* helper_main - the privileged helper: requests in, replies out, until
 * the auth role closes its end. */
static void __attribute__((noreturn))
helper_main(const char *service)
{
	static unsigned char buf[PAM_REQ_MAX + 1];
	char user[BACKEND_MAX_USER + 1], pass[BACKEND_MAX_PASSWORD + 1];
	char rhost[PAM_MAX_RHOST + 1];

	for (;;) {
		struct pam_req_hdr hdr;
		struct pam_rep rep;
		ssize_t n;

		n = recv(PAM_HELPER_FD, buf, sizeof(buf), MSG_TRUNC);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			_exit(0);            /* the auth role went away */
		if ((size_t)n < sizeof(hdr) || (size_t)n > PAM_REQ_MAX)
			_exit(2);
		memcpy(&hdr, buf, sizeof(hdr));
		if (hdr.magic != PAM_REQ_MAGIC || hdr.userlen == 0 ||
		    hdr.userlen > BACKEND_MAX_USER || hdr.passlen > BACKEND_MAX_PASSWORD ||
		    hdr.riplen > PAM_MAX_RHOST ||
		    (size_t)n != sizeof(hdr) + hdr.userlen + hdr.passlen + hdr.riplen)
			_exit(2);
		memcpy(user, buf + sizeof(hdr), hdr.userlen);
		user[hdr.userlen] = '\0';
		memcpy(pass, buf + sizeof(hdr) + hdr.userlen, hdr.passlen);
		pass[hdr.passlen] = '\0';
		memcpy(rhost, buf + sizeof(hdr) + hdr.userlen + hdr.passlen, hdr.riplen);
		rhost[hdr.riplen] = '\0';
		secure_zero(buf, (size_t)n);
		if (!pam_rhost_ok(rhost))
			rhost[0] = '\0';

		memset(&rep, 0, sizeof(rep));
		rep.magic = PAM_REP_MAGIC;
		rep.id = hdr.id;
		if (!pam_name_ok(user, strlen(user)) || strlen(pass) != hdr.passlen)
			rep.result = BACKEND_MISMATCH;
		else
			helper_run_one(service, user, pass, rhost,
			    hdr.timeout_ms > PAM_MAX_TIMEOUT_MS ? PAM_MAX_TIMEOUT_MS :
			    hdr.timeout_ms, &rep);
		secure_zero(pass, sizeof(pass));
		if (send(PAM_HELPER_FD, &rep, sizeof(rep), MSG_NOSIGNAL) !=
		    (ssize_t)sizeof(rep))
			_exit(0);
	}
}

/*
 * helper_start - fork one helper; fd is its end of the socketpair.  The
 * child keeps only that (as fd 3) and stdin/out/err.
 */
static pid_t
helper_start(const char *service, int fd)
{
	pid_t parent = getpid(), pid;

	pid = fork();
	if (pid != 0)
		return pid;
	/* the helper */
	(void)prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != parent)
		_exit(0);
	signal(SIGHUP, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGCHLD, SIG_DFL);
	closelog();          /* its descriptor goes with closefrom() */
	if (fd != PAM_HELPER_FD) {
		if (dup2(fd, PAM_HELPER_FD) == -1)
			_exit(1);
	} else {
		int fl = fcntl(fd, F_GETFD);
		if (fl != -1)
			(void)fcntl(fd, F_SETFD, fl & ~FD_CLOEXEC);
	}
	closefrom(PAM_HELPER_FD + 1);
	log_set_ident("msagated/pam");
	helper_main(service);
}

/* ---- the auth role's side ---------------------------------------------- */

static void pam_deinit(void *state);

static int
pam_check(const struct backend_cfg *cfg, char **error)
{
	static const char *const dirs[] = { "/etc/pam.d", "/usr/lib/pam.d",
	    "/lib/pam.d" };
	struct stat st;
	size_t i;

	if (!pam_service_ok(cfg->service)) {
		*error = xasprintf("pam backend: invalid service name '%s'",
		    cfg->service ? cfg->service : "");
		return -1;
	}
	if (backend_check_workers(cfg, "pam", error) != 0)
		return -1;
	if (stat("/etc/pam.d", &st) == 0 && S_ISDIR(st.st_mode)) {
		for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
			char path[256];
			snprintf(path, sizeof(path), "%s/%s", dirs[i], cfg->service);
			if (stat(path, &st) == 0)
				return 0;
		}
		*error = xasprintf("pam backend: no PAM service file /etc/pam.d/%s "
		    "(PAM would use the 'other' service; see conf/pam.d-msagate)",
		    cfg->service);
		return -1;
	}
	return 0;                    /* /etc/pam.conf only: cannot tell */
}

static int
pam_init(const struct backend_cfg *cfg, void **state, char **error)
{
	struct pam_state *s;
	size_t i;

	if (!pam_service_ok(cfg->service)) {
		*error = xasprintf("invalid service name '%s'",
		    cfg->service ? cfg->service : "");
		return -1;
	}
	s = xcalloc(1, sizeof(*s));
	s->service = xstrdup(cfg->service);
	backend_pool_settings(cfg, &s->timeout_ms, &s->n);
	s->h = xcalloc(s->n, sizeof(*s->h));
	for (i = 0; i < s->n; i++)
		s->h[i].fd = -1;
	for (i = 0; i < s->n; i++) {
		int sv[2];

		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == -1) {
			*error = xasprintf("socketpair: %s", strerror(errno));
			goto fail;
		}
		s->h[i].pid = helper_start(s->service, sv[1]);
		if (s->h[i].pid == -1) {
			*error = xasprintf("fork: %s", strerror(errno));
			close(sv[0]);
			close(sv[1]);
			goto fail;
		}
		close(sv[1]);
		s->h[i].fd = sv[0];
	}
	s->slots = slots_new(s->n, s->n);
	if (geteuid() != 0)
		log_warnx("pam: not started as root: PAM modules such as pam_unix "
		    "can only check the password of uid %ld", (long)geteuid());
	log_info("pam: service %s, %zu helper processes", s->service, s->n);
	*state = s;
	return 0;
fail:
	pam_deinit(s);
	return -1;
}

static void
pam_deinit(void *state)
{
	struct pam_state *s = state;
	uint64_t deadline = now_ms() + PAM_REAP_MS;
	size_t i, left;

	if (s == NULL)
		return;
	for (i = 0; i < s->n; i++)
		if (s->h[i].fd != -1) {
			close(s->h[i].fd);       /* the helper sees EOF and exits */
			s->h[i].fd = -1;
		}
	/* reap them, bounded: a helper inside PAM finishes that first */
	do {
		left = 0;
		for (i = 0; i < s->n; i++) {
			if (s->h[i].pid <= 0)
				continue;
			if (waitpid(s->h[i].pid, NULL, WNOHANG) != 0)
				s->h[i].pid = 0;
			else
				left++;
		}
		if (left > 0)
			usleep(10000);
	} while (left > 0 && now_ms() < deadline);
	slots_free(s->slots);
	free(s->h);
	free(s->service);
	free(s);
}

/*
 * helper_lost - a helper died or stopped answering: retire its slot for
 * good.  When none is left, stop the auth role so that the parent starts
 * a new one with fresh (privileged) helpers.
 */
static void
helper_lost(struct pam_state *s, int slot, const char *why)
{
	struct pam_helper *h = &s->h[slot];
	size_t left;

	if (h->fd != -1) {
		close(h->fd);
		h->fd = -1;
	}
	if (h->pid > 0 && waitpid(h->pid, NULL, WNOHANG) != 0)
		h->pid = 0;              /* reaped (else: exits on EOF later) */
	left = slots_retire(s->slots, slot);
	log_errx("pam: helper process %d %s; %zu of %zu left", slot, why, left, s->n);
	if (left == 0) {
		log_errx("pam: every PAM helper process is gone: PAM logins fail "
		    "temporarily; stopping the auth role so that it is restarted");
		kill(getpid(), SIGTERM);
	}
}

/* pam_exchange - one request to the helper in slot; TEMPFAIL on trouble.
 * *sent tells whether the helper got the request. */
static enum backend_result
pam_exchange(struct pam_state *s, int slot, const char *user, const char *pass,
    const char *rhost, uint64_t deadline, struct backend_reply *r, bool *sent)
{
	struct pam_helper *h = &s->h[slot];
	unsigned char msg[PAM_REQ_MAX];
	struct pam_req_hdr hdr;
	struct pam_rep rep;
	size_t ulen = strlen(user), plen = strlen(pass), rlen = strlen(rhost), len;
	uint64_t now = now_ms(), wait_until;
	ssize_t n;

	*sent = false;
	hdr.magic = PAM_REQ_MAGIC;
	hdr.id = ++h->next_id;
	hdr.timeout_ms = (uint32_t)(deadline > now + 1000 ? deadline - now : 1000);
	hdr.userlen = (uint16_t)ulen;
	hdr.passlen = (uint16_t)plen;
	hdr.riplen = (uint16_t)rlen;
	hdr.pad = 0;
	memcpy(msg, &hdr, sizeof(hdr));
	memcpy(msg + sizeof(hdr), user, ulen);
	memcpy(msg + sizeof(hdr) + ulen, pass, plen);
	memcpy(msg + sizeof(hdr) + ulen + plen, rhost, rlen);
	len = sizeof(hdr) + ulen + plen + rlen;
	do
		n = send(h->fd, msg, len, MSG_NOSIGNAL);
	while (n == -1 && errno == EINTR);
	secure_zero(msg, len);
	if (n != (ssize_t)len) {
		helper_lost(s, slot, "has gone away");
		return BACKEND_TEMPFAIL;
	}
	*sent = true;

	wait_until = now + hdr.timeout_ms + PAM_SLACK_MS;
	for (;;) {
		struct pollfd pfd = { .fd = h->fd, .events = POLLIN };
		int rc;

		now = now_ms();
		if (now >= wait_until) {
			helper_lost(s, slot, "did not answer in time");
			return BACKEND_TEMPFAIL;
		}
		rc = poll(&pfd, 1, (int)(wait_until - now));
		if (rc == -1 && errno == EINTR)
			continue;
		if (rc == -1) {
			helper_lost(s, slot, "cannot be polled");
			return BACKEND_TEMPFAIL;
		}
		if (rc == 0)
			continue;
		n = recv(h->fd, &rep, sizeof(rep), MSG_TRUNC);
		if (n == -1 && errno == EINTR)
			continue;
		break;
	}
	if (n != (ssize_t)sizeof(rep) || rep.magic != PAM_REP_MAGIC ||
	    rep.id != hdr.id) {
		helper_lost(s, slot, n == 0 ? "died" : "sent a malformed reply");
		return BACKEND_TEMPFAIL;
	}
	switch (rep.result) {
	case BACKEND_OK:
	case BACKEND_DISABLED:
		rep.user[sizeof(rep.user) - 1] = '\0';
		if (rep.user[0] != '\0' && pam_name_ok(rep.user, strlen(rep.user)))
			snprintf(r->user, sizeof(r->user), "%s", rep.user);
		r->pass_expired = rep.result == BACKEND_DISABLED && rep.pass_expired;
		return (enum backend_result)rep.result;
	case BACKEND_MISMATCH:
	case BACKEND_UNKNOWN_USER:
	case BACKEND_TEMPFAIL:
		return (enum backend_result)rep.result;
	default:
		helper_lost(s, slot, "sent a malformed reply");
		return BACKEND_TEMPFAIL;
	}
}

static enum backend_result
pam_verify_plain_req(void *state, const char *user, const char *password,
    const struct backend_request *req, struct backend_reply *r)
{
	struct pam_state *s = state;
	uint64_t deadline = now_ms() + (uint64_t)s->timeout_ms;
	const char *rhost = "";
	size_t tries;

	if (req != NULL && pam_rhost_ok(req->rip))
		rhost = req->rip;

	if (!pam_name_ok(user, strlen(user)))
		return BACKEND_UNKNOWN_USER;     /* no PAM user looks like that */
	if (strlen(password) > BACKEND_MAX_PASSWORD)
		return BACKEND_MISMATCH;
	/* a helper that is found dead before it got the request costs a
	 * retry on another one, not the user's login */
	for (tries = 0; tries <= s->n; tries++) {
		enum backend_result res;
		bool sent;
		int slot = slots_acquire(s->slots, deadline);

		if (slot < 0) {
			uint64_t now = now_ms(), last = atomic_load(&s->busy_logged);

			if (slot != SLOTS_NONE && now - last >= PAM_BUSY_LOG_MS &&
			    atomic_compare_exchange_strong(&s->busy_logged, &last, now))
				log_warnx("pam: every helper process is busy (%zu, "
				    "raise `workers`): temporary failure", s->n);
			return BACKEND_TEMPFAIL;
		}
		res = pam_exchange(s, slot, user, password, rhost, deadline, r, &sent);
		slots_release(s->slots, slot);
		if (sent || now_ms() >= deadline)
			return res;
	}
	return BACKEND_TEMPFAIL;
}

static enum backend_result
pam_verify_plain(void *state, const char *user, const char *password,
    struct backend_reply *r)
{
	return pam_verify_plain_req(state, user, password, NULL, r);
}

static size_t
pam_max_blocked_threads(void *state)
{
	struct pam_state *s = state;

	return slots_max_threads(s->slots);
}

/* pam_getpw - getpwnam_r into r: 1 found, 0 unknown, -1 NSS error. */
static int
pam_getpw(const char *name, struct backend_reply *r)
{
	struct passwd pw, *res = NULL;
	char buf[16384];
	int rc;

	rc = getpwnam_r(name, &pw, buf, sizeof(buf), &res);
	if (res == NULL) {
		/* "not found" comes back as 0 or one of these, depending on
		 * the NSS module (getpwnam_r(3)) */
		if (rc == 0 || rc == ENOENT || rc == ESRCH || rc == EBADF ||
		    rc == EPERM)
			return 0;
		return -1;
	}
	snprintf(r->user, sizeof(r->user), "%s", pw.pw_name);
	snprintf(r->extra, sizeof(r->extra), "uid=%lu\tgid=%lu",
	    (unsigned long)pw.pw_uid, (unsigned long)pw.pw_gid);
	if (pw.pw_dir != NULL && pw.pw_dir[0] != '\0' &&
	    strpbrk(pw.pw_dir, "\t\n") == NULL &&
	    strlen(r->extra) + 6 + strlen(pw.pw_dir) < sizeof(r->extra)) {
		strcat(r->extra, "\thome=");
		strcat(r->extra, pw.pw_dir);
	}
	secure_zero(buf, sizeof(buf));   /* may hold a shadow placeholder */
	return 1;
}

/* pam_lookup_user - the system account user, or user@domain's local part. */
static enum backend_result
pam_lookup_user(void *state, const char *user, struct backend_reply *r)
{
	char local[BACKEND_MAX_USER + 1];
	const char *at;
	int rc;

	(void)state;
	if (user[0] == '\0' || strlen(user) > BACKEND_MAX_USER)
		return BACKEND_UNKNOWN_USER;
	rc = pam_getpw(user, r);
	if (rc == 0 && (at = strrchr(user, '@')) != NULL && at > user) {
		memcpy(local, user, (size_t)(at - user));
		local[at - user] = '\0';
		rc = pam_getpw(local, r);
	}
	if (rc < 0)
		return BACKEND_TEMPFAIL;
	return rc > 0 ? BACKEND_OK : BACKEND_UNKNOWN_USER;
}

const struct auth_backend_ops backend_pam = {
	.name = "pam",
	.check = pam_check,
	.init = pam_init,
	.deinit = pam_deinit,
	.verify_plain = pam_verify_plain,
	.lookup_plain = NULL,        /* PAM never hands out a password */
	.reload = NULL,
	.max_blocked_threads = pam_max_blocked_threads,
	.verify_plain_req = pam_verify_plain_req,   /* PAM_RHOST */
	.lookup_user = pam_lookup_user,
	/* auth.cache_verdicts: OK verdicts are replayed by the chain (a
	 * password changed in PAM stays usable until the entry expires or
	 * SIGHUP) */
	.cache_verdicts = true,
};

#endif /* HAVE_PAM */
