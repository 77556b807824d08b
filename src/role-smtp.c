/*
 * role-smtp.c - the SMTP session role: one process, one libevent loop,
 * every session of every listener (no thread or process per connection).
 * It builds the TLS context while still privileged, drops privileges,
 * accepts on the inherited listening sockets (parallel to cfg->listen),
 * enforces the connection limits, and stops gracefully on SIGTERM.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "authc.h"
#include "log.h"
#include "queue-client.h"
#include "roles.h"
#include "smtp-clients.h"
#include "smtp-policy.h"
#include "smtp-session.h"
#include "tls.h"
#include "userdbc.h"

/* cfg->smtp defaults used when a value is unset (0). */
#define DEF_MAX_CONNECTIONS        20000 /* per smtp process */
#define DEF_MAX_CONNECTIONS_CLIENT 50    /* per client address */
#define SHUTDOWN_GRACE             30    /* seconds for DATA to finish */
#define RETIRE_MAX                 600   /* seconds a retired generation
                                            keeps serving its sessions */
#define AUTH_TIMEOUT_MS            30000 /* one AUTH request, start to end */
#define USERDB_TIMEOUT_MS          5000  /* one userdb lookup (RCPT) */
#define USERDB_CACHE_SECS          30    /* userdb answers kept this long */

struct smtp_listener {
	struct smtp_server *srv;
	const struct listen_cfg *lc;
	struct evconnlistener *ev;
	struct event *retry;             /* re-enable after accept errors */
};

static struct smtp_listener *listeners;
static size_t n_listeners;

/* Refuse a connection at once: 421 in clear text, or just close (TLS). */
static void
refuse(const struct smtp_listener *l, int fd, const char *why)
{
	char buf[256];
	int n;

	if (l->lc->tls != LISTEN_TLS_IMPLICIT) {
		n = snprintf(buf, sizeof(buf), "421 4.7.0 %s Error: %s\r\n",
		             l->srv->cfg->hostname, why);
		(void)send(fd, buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
	}
	close(fd);
}

static void
accept_cb(struct evconnlistener *ev, evutil_socket_t fd, struct sockaddr *sa,
          int salen, void *arg)
{
	struct smtp_listener *l = arg;
	struct smtp_server *srv = l->srv;
	const struct msagate_config *cfg = srv->cfg;
	int max = cfg->smtp.max_connections > 0 ?
	    cfg->smtp.max_connections : DEF_MAX_CONNECTIONS;
	int per = cfg->smtp.max_connections_per_client > 0 ?
	    cfg->smtp.max_connections_per_client : DEF_MAX_CONNECTIONS_CLIENT;
	int one = 1;
	char ip[64];
	time_t until;

	if (srv->stopping) {
		close(fd);
		return;
	}
	if (srv->n_sessions >= max) {
		log_warnx("connection limit (%d) reached, refusing a client", max);
		refuse(l, fd, "too many connections");
		return;
	}
	if ((until = smtp_clients_blocked(srv->clients, sa, time(NULL))) != 0) {
		if (getnameinfo(sa, (socklen_t)salen, ip, sizeof(ip), NULL, 0,
		                NI_NUMERICHOST) != 0)
			snprintf(ip, sizeof(ip), "?");
		log_info("connect from [%s] refused: blocked for %lld s more "
		         "(failed authentications)", ip,
		         (long long)(until - time(NULL)));
		refuse(l, fd, "too many failed authentications from your "
		       "address; try again later");
		return;
	}
	/* clients inside mynetworks are exempt, as in Postfix
	 * (smtpd_client_event_limit_exceptions = $mynetworks) */
	if (smtp_clients_count(srv->clients, sa) >= per &&
	    !policy_in_mynetworks(cfg, sa)) {
		if (getnameinfo(sa, (socklen_t)salen, ip, sizeof(ip), NULL, 0,
		                NI_NUMERICHOST) != 0)
			snprintf(ip, sizeof(ip), "?");
		log_warnx("too many connections from [%s] (limit %d)", ip, per);
		refuse(l, fd, "too many connections from your address");
		return;
	}
	evutil_make_socket_nonblocking(fd);
	evutil_make_socket_closeonexec(fd);
	if (sa->sa_family == AF_INET || sa->sa_family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (smtp_session_new(srv, l->lc, fd, sa, salen) == NULL) {
		log_warnx("cannot create a session");
		close(fd);
	}
}

static void
retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_listener *l = arg;

	if (!l->srv->stopping && l->ev)
		evconnlistener_enable(l->ev);
}

/* accept() failed (EMFILE...): pause this listener for a second. */
static void
accept_error_cb(struct evconnlistener *ev, void *arg)
{
	struct smtp_listener *l = arg;
	struct timeval tv = { 1, 0 };
	int err = EVUTIL_SOCKET_ERROR();

	log_warnx("accept on %s:%d: %s", l->lc->address, l->lc->port,
	          evutil_socket_error_to_string(err));
	evconnlistener_disable(ev);
	evtimer_add(l->retry, &tv);
}

static void
close_listeners(void)
{
	for (size_t i = 0; i < n_listeners; i++) {
		if (listeners[i].ev) {
			evconnlistener_free(listeners[i].ev);  /* closes the fd */
			listeners[i].ev = NULL;
		}
		if (listeners[i].retry) {
			event_free(listeners[i].retry);
			listeners[i].retry = NULL;
		}
	}
}

static void
stop_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_server *srv = arg;

	log_info("shutdown: %d session(s) still busy after %d s, closing them",
	         srv->n_sessions, SHUTDOWN_GRACE);
	event_base_loopexit(srv->base, NULL);
}

/*
 * Graceful stop: stop accepting, tell idle sessions 421 4.3.2, let those
 * in DATA finish (bounded by SHUTDOWN_GRACE), then leave the loop.
 */
static void
stop(struct smtp_server *srv)
{
	struct smtp_session *s, *next;
	struct timeval tv = { SHUTDOWN_GRACE, 0 };

	if (srv->stopping)
		return;
	srv->stopping = true;
	close_listeners();
	for (s = TAILQ_FIRST(&srv->sessions); s; s = next) {
		next = TAILQ_NEXT(s, entry);
		smtp_session_shutdown_idle(s);
	}
	if (srv->n_sessions == 0) {
		event_base_loopexit(srv->base, NULL);
		return;
	}
	if (srv->stop_timer)
		event_free(srv->stop_timer);
	srv->stop_timer = evtimer_new(srv->base, stop_timer_cb, srv);
	evtimer_add(srv->stop_timer, &tv);
}

static void
sigterm_cb(evutil_socket_t sig, short what, void *arg)
{
	struct smtp_server *srv = arg;

	log_info("%s: stopping, %d session(s)", sig == SIGTERM ? "SIGTERM" : "SIGINT",
	         srv->n_sessions);
	stop(srv);
}

static void
retire_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_server *srv = arg;

	log_info("retired for %d s, stopping %d session(s)", RETIRE_MAX,
	         srv->n_sessions);
	stop(srv);
}

/*
 * SIGUSR1: retire.  A reload is a new generation of this role started by
 * the parent (new configuration and certificates) on the same listening
 * sockets; this process stops accepting and keeps serving its established
 * sessions until they end (nothing is dropped), bounded by RETIRE_MAX,
 * then exits 0.  SIGTERM during that time stops as usual.
 */
static void
retire_cb(evutil_socket_t sig, short what, void *arg)
{
	struct smtp_server *srv = arg;
	struct timeval tv = { RETIRE_MAX, 0 };

	if (srv->stopping || srv->retiring)
		return;
	srv->retiring = true;
	log_info("SIGUSR1: retiring, %d established session(s) kept",
	         srv->n_sessions);
	close_listeners();
	if (srv->n_sessions == 0) {
		event_base_loopexit(srv->base, NULL);
		return;
	}
	srv->stop_timer = evtimer_new(srv->base, retire_timer_cb, srv);
	evtimer_add(srv->stop_timer, &tv);
}

/* SIGHUP: nothing to re-read here (the parent reloads by retiring us). */
static void
sighup_cb(evutil_socket_t sig, short what, void *arg)
{
	log_info("SIGHUP: a reload starts a new smtp generation (parent)");
}

/*
 * Every session is a descriptor: raise the soft RLIMIT_NOFILE to the hard
 * limit, and say so when max_connections cannot be reached.
 */
static void
raise_fd_limit(const struct msagate_config *cfg)
{
	struct rlimit rl;
	int max = cfg->smtp.max_connections > 0 ?
	    cfg->smtp.max_connections : DEF_MAX_CONNECTIONS;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
		(void)getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)max + 64)
		log_info("smtp.max_connections = %d, but the file descriptor limit "
		         "(ulimit -n) is %llu and about 64 are needed besides the "
		         "connections: accepting will fail near %lld connections", max,
		         (unsigned long long)rl.rlim_cur,
		         (long long)rl.rlim_cur - 64);
}

int
role_smtp_main(struct msagate_config *cfg, const struct smtp_listeners *ls)
{
	struct smtp_server srv;
	struct event *ev_term, *ev_hup, *ev_int, *ev_usr1;
	struct smtp_session *s;
	bool need_tls = false;
	size_t i;

	log_set_ident("msagated/smtp");
	memset(&srv, 0, sizeof(srv));
	srv.cfg = cfg;
	TAILQ_INIT(&srv.sessions);
	srv.clients = smtp_clients_new();
	signal(SIGPIPE, SIG_IGN);

	for (i = 0; i < cfg->n_listen; i++)
		if (cfg->listen[i].tls != LISTEN_TLS_NONE)
			need_tls = true;
	/* The key is readable only now, before the privilege drop. */
	if (need_tls && (srv.ssl_ctx = tls_server_ctx(cfg)) == NULL) {
		log_errx("smtp: cannot set up TLS");
		return 1;
	}
	raise_fd_limit(cfg);
	privsep_drop(cfg, "smtp");

	if ((srv.base = event_base_new()) == NULL)
		fatalx("event_base_new failed");
	srv.authc = authc_new(srv.base, cfg->auth.socket, AUTH_TIMEOUT_MS);
	srv.queuec = queuec_new(srv.base, cfg->queue_socket);
	authc_connect(srv.authc);
	srv.userdbc = userdbc_new(srv.base, cfg->auth.userdb_socket,
	                          USERDB_TIMEOUT_MS, USERDB_CACHE_SECS);
	smtp_maps_load(&srv);

	n_listeners = ls->n < cfg->n_listen ? ls->n : cfg->n_listen;
	listeners = xcalloc(n_listeners ? n_listeners : 1, sizeof(*listeners));
	for (i = 0; i < n_listeners; i++) {
		struct smtp_listener *l = &listeners[i];

		l->srv = &srv;
		l->lc = &cfg->listen[i];
		if (ls->fds[i] < 0)
			continue;
		evutil_make_socket_nonblocking(ls->fds[i]);
		/* backlog 0: the parent already called listen() */
		l->ev = evconnlistener_new(srv.base, accept_cb, l,
		    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, ls->fds[i]);
		if (l->ev == NULL)
			fatalx("evconnlistener_new failed for %s:%d",
			       l->lc->address, l->lc->port);
		evconnlistener_set_error_cb(l->ev, accept_error_cb);
		l->retry = evtimer_new(srv.base, retry_cb, l);
		log_info("listening on %s port %d (%s, %s)", l->lc->address,
		         l->lc->port, l->lc->role == LISTEN_RELAY ? "relay" : "submission",
		         l->lc->tls == LISTEN_TLS_IMPLICIT ? "implicit TLS" :
		         l->lc->tls == LISTEN_TLS_STARTTLS ? "STARTTLS" : "no TLS");
	}

	ev_term = evsignal_new(srv.base, SIGTERM, sigterm_cb, &srv);
	ev_int = evsignal_new(srv.base, SIGINT, sigterm_cb, &srv);
	ev_hup = evsignal_new(srv.base, SIGHUP, sighup_cb, &srv);
	ev_usr1 = evsignal_new(srv.base, SIGUSR1, retire_cb, &srv);
	evsignal_add(ev_usr1, NULL);
	evsignal_add(ev_term, NULL);
	evsignal_add(ev_int, NULL);
	evsignal_add(ev_hup, NULL);

	event_base_dispatch(srv.base);

	/* Out of the loop: whatever is left is closed now. */
	while ((s = TAILQ_FIRST(&srv.sessions)) != NULL) {
		if (!(s->flags & SF_CLOSING))
			smtp_session_reply(s, "421 4.3.2 %s Service shutting down",
			                   cfg->hostname);
		smtp_session_free(s);
	}
	close_listeners();
	free(listeners);
	listeners = NULL;
	if (srv.stop_timer)
		event_free(srv.stop_timer);
	event_free(ev_term);
	event_free(ev_int);
	event_free(ev_hup);
	event_free(ev_usr1);
	authc_free(srv.authc);
	userdbc_free(srv.userdbc);
	smtp_maps_free(&srv);
	queuec_free(srv.queuec);
	event_base_free(srv.base);
	smtp_clients_free(srv.clients);
	if (srv.ssl_ctx)
		SSL_CTX_free(srv.ssl_ctx);
	log_info("smtp role stopped");
	return 0;
}
