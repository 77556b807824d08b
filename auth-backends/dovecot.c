/*
 * dovecot.c - the "dovecot" backend: plaintext passwords checked by an
 * upstream Dovecot auth server over its client socket, as Postfix's
 * dovecot SASL client does (../shared/spec/dovecot-auth-protocol.md,
 * sections 1-2 and the client checklist of section 6).
 *
 * Each auth-role thread that needs the upstream takes one connection of
 * a small pool (`workers` connections, default 4; backend-slots.h) and
 * uses it alone: VERSION 1.2 + CPID are sent at once, the handshake lines
 * are accepted in any order until DONE (major 1, at least one MECH, PLAIN
 * among them, one COOKIE), then
 *
 *	AUTH <id> PLAIN service=<svc> nologin [rip=<addr>] no-penalty
 *	    resp=<b64(\0user\0pass)>
 *
 * (service and rip as our own client sent them, so that Dovecot's logs
 * and passdb rules see the real client; service=smtp when unknown)
 * and the answer with that id is awaited until the configured timeout
 * (mind Dovecot's auth_failure_delay, 2 s by default, before each FAIL).
 * Connections are kept for the next request; a kept connection that turns
 * out dead is replaced and the request sent again, once.  When the
 * upstream is down (ECONNREFUSED, ENOENT) the answer is TEMPFAIL at once,
 * which the client sees as 454 4.7.0.
 *
 * Decisions:
 *  - `no-penalty`: msagate keeps its own per-client penalties, and the
 *    upstream would only see msagate itself, not the real client: its
 *    anvil penalty would slow every user of msagate for one attacker.
 *  - The protocol does not tell "unknown user" from "wrong password", so a
 *    dovecot backend decides for every user it is asked about (FAIL ->
 *    MISMATCH): put it last in the chain.
 *  - OK with `nologin` or `proxy` means "do not log in here": MISMATCH.
 *  - FAIL code=temp_fail -> TEMPFAIL; user_disabled -> DISABLED;
 *    pass_expired -> DISABLED with pass_expired; other FAILs -> MISMATCH.
 *  - User names with control characters (TAB, CR, LF...) are never sent.
 * Plaintext credentials cannot be looked up (lookup_plain = NULL).
 * With auth.cache_verdicts the chain (backend.c) replays recent OK
 * verdicts for the same service, client address, user and password (proxy
 * mode: src/auth-server.c caches PLAIN answers of the upstream likewise);
 * by default every login is asked upstream.
 * Userdb lookups are not answered either (lookup_user = NULL): the
 * upstream's client socket has no USER command, so the chain skips this
 * backend for them.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "auth-proto.h"
#include "backend.h"
#include "backend-slots.h"
#include "log.h"
#include "util.h"

#define DC_LOG_EVERY_MS		10000   /* "upstream down" at most this often */
#define DC_MIN_TIMEOUT_MS	3000    /* below Dovecot's failure delay: warn */
#define DC_MAX_ARGS		32
/* "\0" user "\0" password, and its base64 */
#define DC_RAW_MAX	(2 + BACKEND_MAX_USER + BACKEND_MAX_PASSWORD)
#define DC_B64_MAX	(((DC_RAW_MAX + 2) / 3) * 4)
#define DC_AUTH_LINE_MAX	(DC_B64_MAX + 256)

struct dc_conn {
	int fd;                          /* -1: not connected */
	uint32_t next_id;
	size_t len;                      /* bytes in buf */
	char buf[AUTH_PROTO_MAX_LINE];
	char line[AUTH_PROTO_MAX_LINE];  /* the line being looked at */
};

struct dc_state {
	char *socket;
	int timeout_ms;
	size_t n;
	struct dc_conn *c;
	struct backend_slots *slots;
	_Atomic uint64_t last_log;
};

/* What a connection attempt or exchange ran into. */
enum dc_io {
	DC_IO_OK,
	DC_IO_TIMEOUT,
	DC_IO_CLOSED,            /* EOF or a socket error */
	DC_IO_PROTO,             /* the upstream spoke nonsense */
};

/* dc_log_limited - warn, but at most once per DC_LOG_EVERY_MS. */
static void __attribute__((format(printf, 2, 3)))
dc_log_limited(struct dc_state *s, const char *fmt, ...)
{
	uint64_t now = now_ms(), last = atomic_load(&s->last_log);
	char msg[512];
	va_list ap;

	if (last != 0 && now - last < DC_LOG_EVERY_MS)
		return;
	if (!atomic_compare_exchange_strong(&s->last_log, &last, now))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warnx("dovecot %s: %s", s->socket, msg);
}

static void
dc_close(struct dc_conn *c)
{
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
	c->len = 0;
}

/* dc_left - milliseconds until deadline, 0 when past. */
static int
dc_left(uint64_t deadline)
{
	uint64_t now = now_ms();

	return now >= deadline ? 0 : (int)(deadline - now);
}

/* dc_write - the whole buffer, waiting for room until the deadline. */
static enum dc_io
dc_write(struct dc_conn *c, const char *p, size_t len, uint64_t deadline)
{
	while (len > 0) {
		ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);

		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd pfd = { .fd = c->fd, .events = POLLOUT };
			int ms = dc_left(deadline);

			if (ms == 0 || poll(&pfd, 1, ms) == 0)
				return DC_IO_TIMEOUT;
			continue;
		}
		return DC_IO_CLOSED;
	}
	return DC_IO_OK;
}

/*
 * dc_read_line - the next line into c->line (without LF, NUL-terminated),
 * reading until the deadline.
 */
static enum dc_io
dc_read_line(struct dc_conn *c, uint64_t deadline)
{
	for (;;) {
		size_t linelen;
		int r = auth_proto_line(c->buf, c->len, AUTH_PROTO_MAX_LINE, &linelen);
		ssize_t n;

		if (r < 0)
			return DC_IO_PROTO;
		if (r > 0) {
			memcpy(c->line, c->buf, linelen - 1);
			c->line[linelen - 1] = '\0';
			memmove(c->buf, c->buf + linelen, c->len - linelen);
			c->len -= linelen;
			if (strlen(c->line) != linelen - 1)
				return DC_IO_PROTO;      /* NUL byte in a line */
			return DC_IO_OK;
		}
		n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
		if (n > 0) {
			c->len += (size_t)n;
			continue;
		}
		if (n == 0)
			return DC_IO_CLOSED;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
			int ms = dc_left(deadline), rc;

			if (ms == 0)
				return DC_IO_TIMEOUT;
			rc = poll(&pfd, 1, ms);
			if (rc == 0)
				return DC_IO_TIMEOUT;
			if (rc == -1 && errno != EINTR)
				return DC_IO_CLOSED;
			continue;
		}
		return DC_IO_CLOSED;
	}
}

/* dc_handshake_line - look at one handshake line; true at DONE. */
static bool
dc_handshake_line(struct dc_state *s, char *line, bool *ok, bool *seen_version,
    unsigned *mechs, bool *plain, bool *cookie)
{
	char *argv[DC_MAX_ARGS];
	size_t argc = auth_proto_split(line, argv, DC_MAX_ARGS);
	unsigned major = 0, minor = 0;

	if (strcmp(argv[0], "VERSION") == 0) {
		if (argc < 3 || !auth_proto_parse_uint(argv[1], &major) ||
		    !auth_proto_parse_uint(argv[2], &minor) || major != 1) {
			dc_log_limited(s, "upstream speaks an incompatible protocol "
			    "version (%s.%s); not a Dovecot auth-client socket?",
			    argc > 1 ? argv[1] : "?", argc > 2 ? argv[2] : "?");
			*ok = false;
			return true;
		}
		*seen_version = true;
	} else if (strcmp(argv[0], "MECH") == 0) {
		if (argc < 2 || argv[1][0] == '\0') {
			*ok = false;
			return true;
		}
		(*mechs)++;
		if (strcasecmp(argv[1], "PLAIN") == 0)
			*plain = true;
	} else if (strcmp(argv[0], "COOKIE") == 0) {
		if (*cookie || argc < 2) {
			*ok = false;
			return true;
		}
		*cookie = true;
	} else if (strcmp(argv[0], "DONE") == 0) {
		*ok = *seen_version && *mechs > 0 && *cookie;
		if (!*ok)
			dc_log_limited(s, "incomplete handshake (VERSION, MECH and "
			    "COOKIE are required); an auth-master socket?");
		else if (!*plain) {
			dc_log_limited(s, "the upstream does not offer PLAIN; add it "
			    "to Dovecot's auth_mechanisms");
			*ok = false;
		}
		return true;
	}
	/* SPID, CUID and anything newer: nothing to check */
	return false;
}

/*
 * dc_connect - connect and finish the handshake; DC_IO_OK with c->fd
 * set, else the connection is closed again.  *err: errno of connect().
 */
static enum dc_io
dc_connect(struct dc_state *s, struct dc_conn *c, uint64_t deadline, int *err)
{
	struct sockaddr_un sun;
	char hello[64];
	bool ok = false, seen_version = false, plain = false, cookie = false;
	unsigned mechs = 0;
	enum dc_io io;
	int fd;

	*err = 0;
	dc_close(c);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(s->socket) >= sizeof(sun.sun_path)) {
		*err = ENAMETOOLONG;
		return DC_IO_CLOSED;
	}
	memcpy(sun.sun_path, s->socket, strlen(s->socket) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd == -1) {
		*err = errno;
		return DC_IO_CLOSED;
	}
	/* a UNIX socket connects at once or not at once (EAGAIN: backlog full) */
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		*err = errno;
		close(fd);
		return DC_IO_CLOSED;
	}
	c->fd = fd;
	c->len = 0;
	c->next_id = 0;
	snprintf(hello, sizeof(hello), "VERSION\t%d\t%d\nCPID\t%ld\n",
	    AUTH_PROTO_MAJOR, AUTH_PROTO_MINOR, (long)getpid());
	if ((io = dc_write(c, hello, strlen(hello), deadline)) != DC_IO_OK)
		goto fail;
	for (;;) {
		if ((io = dc_read_line(c, deadline)) != DC_IO_OK)
			goto fail;
		if (dc_handshake_line(s, c->line, &ok, &seen_version, &mechs, &plain,
		    &cookie))
			break;
	}
	if (!ok) {
		io = DC_IO_PROTO;
		goto fail;
	}
	return DC_IO_OK;
fail:
	dc_close(c);
	return io;
}

/* dc_user_ok - a name we may put on the wire (Dovecot would refuse the
 * rest, or we could not tell it from a field separator). */
static bool
dc_user_ok(const char *s, size_t len)
{
	return backend_name_ok(s, len, "");
}

/*
 * dc_reply - interpret the final answer (the fields of c->line, already
 * split).  Returns the result; fills r on success.
 */
static enum backend_result
dc_reply(struct dc_state *s, char **argv, size_t argc, const char *user,
    struct backend_reply *r)
{
	size_t i;
	const char *v;
	char su[160];

	if (strcmp(argv[0], "OK") == 0) {
		for (i = 2; i < argc; i++) {
			if (auth_proto_param(argv[i], "nologin") != NULL ||
			    auth_proto_param(argv[i], "proxy") != NULL) {
				log_warnx("dovecot %s: user %s: upstream says OK but "
				    "with nologin/proxy; treated as a failure",
				    s->socket, log_safe(su, sizeof(su), user, 64));
				return BACKEND_MISMATCH;
			}
		}
		for (i = 2; i < argc; i++) {
			if ((v = auth_proto_param(argv[i], "user")) == NULL)
				continue;
			if (auth_proto_unescape(argv[i]) &&
			    (v = auth_proto_param(argv[i], "user")) != NULL &&
			    dc_user_ok(v, strlen(v)))
				snprintf(r->user, sizeof(r->user), "%s", v);
			break;
		}
		return BACKEND_OK;
	}
	/* FAIL */
	for (i = 2; i < argc; i++) {
		const char *code = auth_proto_param(argv[i], "code");

		if (code == NULL) {
			/* protocol 1.1 and older: bare flags */
			if (strcmp(argv[i], "temp") == 0)
				code = "temp_fail";
			else if (strcmp(argv[i], "user_disabled") == 0 ||
			    strcmp(argv[i], "pass_expired") == 0)
				code = argv[i];
			else
				continue;
		}
		if (strcmp(code, "temp_fail") == 0) {
			dc_log_limited(s, "upstream reports a temporary failure");
			return BACKEND_TEMPFAIL;
		}
		if (strcmp(code, "user_disabled") == 0)
			return BACKEND_DISABLED;
		if (strcmp(code, "pass_expired") == 0) {
			r->pass_expired = true;
			return BACKEND_DISABLED;
		}
	}
	return BACKEND_MISMATCH;
}

/* dc_token_ok - a service name or address we can put on the wire as is. */
static bool
dc_token_ok(const char *s, size_t max)
{
	return backend_token_ok(s, max, ".:-_");
}

/*
 * dc_exchange - send the AUTH on c and wait for its answer.  DC_IO_OK
 * with *res set, or what went wrong (the connection is closed then).
 */
static enum dc_io
dc_exchange(struct dc_state *s, struct dc_conn *c, const char *user,
    const char *b64, const struct backend_request *req, uint64_t deadline,
    enum backend_result *res, struct backend_reply *r)
{
	const char *service = "smtp", *rip = NULL;
	char line[DC_AUTH_LINE_MAX];
	uint32_t id;
	enum dc_io io;
	int len;

	if (++c->next_id == 0)
		c->next_id = 1;
	id = c->next_id;
	if (req != NULL && dc_token_ok(req->service, 32))
		service = req->service;
	if (req != NULL && dc_token_ok(req->rip, 63))
		rip = req->rip;
	len = snprintf(line, sizeof(line),
	    "AUTH\t%u\tPLAIN\tservice=%s\tnologin%s%s\tno-penalty\tresp=%s\n",
	    id, service, rip ? "\trip=" : "", rip ? rip : "", b64);
	if (len < 0 || (size_t)len >= sizeof(line)) {
		secure_zero(line, sizeof(line));
		*res = BACKEND_MISMATCH;
		return DC_IO_OK;
	}
	io = dc_write(c, line, (size_t)len, deadline);
	secure_zero(line, sizeof(line));
	if (io != DC_IO_OK)
		goto fail;
	for (;;) {
		char *argv[DC_MAX_ARGS];
		size_t argc;
		uint32_t rid;

		if ((io = dc_read_line(c, deadline)) != DC_IO_OK)
			goto fail;
		argc = auth_proto_split(c->line, argv, DC_MAX_ARGS);
		if (argc < 2 || !auth_proto_parse_id(argv[1], &rid) || rid != id)
			continue;            /* not ours (or noise): skip */
		if (strcmp(argv[0], "OK") == 0 || strcmp(argv[0], "FAIL") == 0) {
			*res = dc_reply(s, argv, argc, user, r);
			return DC_IO_OK;
		}
		if (strcmp(argv[0], "CONT") == 0) {
			/* PLAIN with an initial response needs no round trip */
			io = DC_IO_PROTO;
			goto fail;
		}
	}
fail:
	dc_close(c);
	return io;
}

static enum backend_result
dc_verify_plain_req(void *state, const char *user, const char *password,
    const struct backend_request *req, struct backend_reply *r)
{
	struct dc_state *s = state;
	unsigned char raw[DC_RAW_MAX];
	char b64[DC_B64_MAX + 1];
	size_t ulen = strlen(user), plen = strlen(password), rawlen;
	uint64_t deadline = now_ms() + (uint64_t)s->timeout_ms;
	enum backend_result res = BACKEND_TEMPFAIL;
	struct dc_conn *c;
	int slot, attempt;

	if (!dc_user_ok(user, ulen))
		return BACKEND_MISMATCH;         /* we decide for every name */
	if (plen > BACKEND_MAX_PASSWORD)
		return BACKEND_MISMATCH;
	slot = slots_acquire(s->slots, deadline);
	if (slot < 0) {
		if (slot == SLOTS_BUSY)
			dc_log_limited(s, "every connection is busy (%zu, raise "
			    "`workers`): temporary failure", s->n);
		return BACKEND_TEMPFAIL;
	}
	c = &s->c[slot];

	raw[0] = '\0';
	memcpy(raw + 1, user, ulen);
	raw[1 + ulen] = '\0';
	memcpy(raw + 2 + ulen, password, plen);
	rawlen = 2 + ulen + plen;
	b64_encode(raw, rawlen, b64);
	secure_zero(raw, rawlen);

	/* a kept connection may have died meanwhile (Dovecot restarted):
	 * then connect again and send once more */
	for (attempt = 0; attempt < 2; attempt++) {
		bool fresh = false;
		enum dc_io io;
		int err = 0;

		if (c->fd == -1) {
			io = dc_connect(s, c, deadline, &err);
			if (io != DC_IO_OK) {
				if (err != 0)
					dc_log_limited(s, "cannot connect: %s "
					    "(upstream down?)", strerror(err));
				else
					dc_log_limited(s, "handshake failed (%s)",
					    io == DC_IO_TIMEOUT ? "timeout" :
					    io == DC_IO_CLOSED ? "connection closed" :
					    "protocol error");
				res = BACKEND_TEMPFAIL;
				break;
			}
			fresh = true;
		}
		io = dc_exchange(s, c, user, b64, req, deadline, &res, r);
		if (io == DC_IO_OK)
			break;
		res = BACKEND_TEMPFAIL;
		if (io == DC_IO_CLOSED && !fresh)
			continue;                /* stale connection: once more */
		dc_log_limited(s, "%s while waiting for the answer",
		    io == DC_IO_TIMEOUT ? "timeout" : io == DC_IO_CLOSED ?
		    "connection closed" : "protocol error");
		break;
	}
	secure_zero(b64, sizeof(b64));
	slots_release(s->slots, slot);
	return res;
}

static enum backend_result
dc_verify_plain(void *state, const char *user, const char *password,
    struct backend_reply *r)
{
	return dc_verify_plain_req(state, user, password, NULL, r);
}

/* ---- the backend interface --------------------------------------------- */

static int
dc_check(const struct backend_cfg *cfg, char **error)
{
	struct sockaddr_un sun;

	if (cfg->socket == NULL || cfg->socket[0] == '\0') {
		*error = xstrdup("dovecot backend needs a socket (Dovecot's "
		    "auth-client socket, e.g. /run/dovecot/auth-client)");
		return -1;
	}
	if (strlen(cfg->socket) >= sizeof(sun.sun_path)) {
		*error = xasprintf("dovecot backend: socket path longer than %zu bytes",
		    sizeof(sun.sun_path) - 1);
		return -1;
	}
	return backend_check_workers(cfg, "dovecot", error);
}

static int
dc_init(const struct backend_cfg *cfg, void **state, char **error)
{
	struct dc_state *s;
	size_t i;

	if (dc_check(cfg, error) != 0)
		return -1;
	s = xcalloc(1, sizeof(*s));
	s->socket = xstrdup(cfg->socket);
	backend_pool_settings(cfg, &s->timeout_ms, &s->n);
	s->c = xcalloc(s->n, sizeof(*s->c));
	for (i = 0; i < s->n; i++)
		s->c[i].fd = -1;
	s->slots = slots_new(s->n, s->n);
	if (s->timeout_ms < DC_MIN_TIMEOUT_MS)
		log_warnx("dovecot %s: timeout %d ms is below Dovecot's default "
		    "auth_failure_delay (2 s): wrong passwords may look like an "
		    "unreachable upstream", s->socket, s->timeout_ms);
	log_info("dovecot: upstream auth socket %s, up to %zu connections",
	    s->socket, s->n);
	*state = s;
	return 0;
}

static void
dc_deinit(void *state)
{
	struct dc_state *s = state;
	size_t i;

	if (s == NULL)
		return;
	for (i = 0; i < s->n; i++)
		dc_close(&s->c[i]);
	slots_free(s->slots);
	free(s->c);
	free(s->socket);
	free(s);
}

static size_t
dc_max_blocked_threads(void *state)
{
	struct dc_state *s = state;

	return slots_max_threads(s->slots);
}

const struct auth_backend_ops backend_dovecot = {
	.name = "dovecot",
	.check = dc_check,
	.init = dc_init,
	.deinit = dc_deinit,
	.verify_plain = dc_verify_plain,
	.lookup_plain = NULL,        /* the upstream never hands out passwords */
	.reload = NULL,
	.max_blocked_threads = dc_max_blocked_threads,
	.verify_plain_req = dc_verify_plain_req,    /* service=, rip= */
	/* auth.cache_verdicts: OK verdicts are replayed by the chain (a
	 * password changed upstream stays usable until the entry expires or
	 * SIGHUP) */
	.cache_verdicts = true,
};
