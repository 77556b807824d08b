/*
 * role-auth.c - the auth role: the only process that reads credentials.
 *
 * Started by the parent with the auth socket already bound and listening.
 * While still privileged it loads the backends (they open their files) and
 * initialises Cyrus SASL (plugins are loaded now), then drops to
 * cfg->user and serves the Dovecot auth protocol on a libevent loop
 * (src/auth-server.c), and the userdb lookup socket (src/auth-userdb.c)
 * whose lookups share the auth server's worker threads.  When the chain is
 * exactly one `dovecot` backend the role is a proxy: the upstream Dovecot
 * runs the configured mechanisms (passed through, as Postfix's dovecot
 * client does), every AUTH is forwarded over one src/authc.c connection.
 * With auth.cache_ttl (default 60 s) the role keeps a verified-credential
 * cache (src/auth-cache.h) for passwd-file hashes, and with
 * auth.cache_verdicts also for the OKs of PAM and an upstream Dovecot
 * (through the chain or, in proxy mode, the server).  SIGHUP re-reads the
 * passwd files and flushes that cache; SIGTERM stops accepting, closes each
 * client once it has nothing in flight and exits when all are gone
 * (bounded; answers held for their delay are sent, not dropped).
 */
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "auth-cache.h"
#include "auth-penalty.h"
#include "auth-sasl.h"
#include "auth-server.h"
#include "auth-userdb.h"
#include "authc.h"
#include "backend.h"
#include "log.h"
#include "roles.h"
#include "util.h"

#define STOP_GRACE_MS	5000    /* SIGTERM: wait at most this for clients */
#define STOP_POLL_MS	200
#define STOP_FLUSH_MS	400     /* then this long for the last answers to go */

struct role_auth {
	struct event_base *base;
	struct auth_server *srv;
	struct userdb_server *udb;
	struct authc *upstream;         /* proxy mode, else NULL */
	struct auth_cache *cache;       /* auth.cache_ttl, else NULL */
	struct event *ev_hup, *ev_term, *ev_int, *ev_stop;
	uint64_t stop_deadline;
	bool held_sent;                 /* the grace is over: held answers sent */
};

static void
on_sighup(evutil_socket_t sig, short what, void *arg)
{
	struct role_auth *ra = arg;

	(void)sig;
	(void)what;
	log_info("SIGHUP: re-reading the passwd files%s",
	    ra->cache ? ", credential cache flushed" : "");
	if (ra->cache != NULL)
		auth_cache_flush(ra->cache);
	auth_server_reload(ra->srv);
}

/*
 * stop_poll - clients with nothing in flight are closed at once (they
 * reconnect to a reload's new auth role); exit when every client has gone.
 * When the grace ends, answers held for their delay go out now, and the
 * role waits STOP_FLUSH_MS more for them to be written.
 */
static void
stop_poll(evutil_socket_t fd, short what, void *arg)
{
	struct role_auth *ra = arg;
	struct timeval tv = { 0, STOP_POLL_MS * 1000 };
	uint64_t now = now_ms();

	(void)fd;
	(void)what;
	if (now >= ra->stop_deadline && !ra->held_sent) {
		auth_server_send_held(ra->srv);
		ra->held_sent = true;
		ra->stop_deadline = now + STOP_FLUSH_MS;
	}
	auth_server_close_idle(ra->srv);
	if (auth_server_client_count(ra->srv) == 0 ||
	    (ra->held_sent && now >= ra->stop_deadline)) {
		event_base_loopexit(ra->base, NULL);
		return;
	}
	evtimer_add(ra->ev_stop, &tv);
}

static void
on_sigterm(evutil_socket_t sig, short what, void *arg)
{
	struct role_auth *ra = arg;

	(void)what;
	if (ra->ev_stop != NULL)
		return;            /* already stopping */
	log_info("%s: auth role stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
	auth_server_stop_listening(ra->srv);
	if (ra->udb != NULL)
		userdb_server_stop_listening(ra->udb);
	ra->stop_deadline = now_ms() + STOP_GRACE_MS;
	ra->ev_stop = evtimer_new(ra->base, stop_poll, ra);
	stop_poll(-1, 0, ra);
}

/* is_proxy - the chain is one upstream Dovecot: pass mechanisms through. */
static bool
is_proxy(const struct msagate_config *cfg)
{
	return cfg->auth.n_backends == 1 && cfg->auth.backends[0].driver != NULL &&
	    strcmp(cfg->auth.backends[0].driver, "dovecot") == 0 &&
	    cfg->auth.backends[0].socket != NULL;
}

int
role_auth_main(struct msagate_config *cfg, const struct auth_fds *fds)
{
	int listen_fd = fds->n_client > 0 ? fds->client[0] : -1;
	size_t i;
	struct role_auth ra = { 0 };
	struct auth_server_settings set = { 0 };
	struct backend_chain *chain;
	char *err = NULL;

	/* privileged part: open the credential files, load the SASL plugins */
	chain = backend_chain_new(cfg->auth.backends, cfg->auth.n_backends, &err);
	if (chain == NULL) {
		log_errx("auth: %s", err ? err : "cannot set up the backends");
		free(err);
		return 1;
	}
	if ((is_proxy(cfg) ? auth_sasl_init_proxy(cfg, &err) :
	    auth_sasl_init(cfg, chain, &err)) != 0) {
		log_errx("auth: %s", err ? err : "Cyrus SASL initialisation failed");
		free(err);
		backend_chain_free(chain);
		return 1;
	}
	if (cfg->auth.cache_ttl_ms > 0) {
		ra.cache = auth_cache_new((size_t)cfg->auth.cache_size,
		    (uint64_t)cfg->auth.cache_ttl_ms);
		/* no backend that may use it (only PAM/dovecot, verdicts off) */
		if (backend_chain_set_cache(chain, ra.cache,
		    cfg->auth.cache_verdicts) == 0) {
			backend_chain_set_cache(chain, NULL, false);
			auth_cache_free(ra.cache);
			ra.cache = NULL;
		}
	}
	privsep_drop(cfg, "auth");

	ra.base = event_base_new();
	if (ra.base == NULL)
		fatalx("auth: event_base_new failed");
	set.failure_delay_ms = cfg->auth.failure_delay_ms;
	set.min_time_ms = cfg->auth.min_time_ms;
	set.penalty = penalty_new(cfg);   /* lives as long as the role */
	set.workers = cfg->auth.workers;
	/* backends that wait on slow helpers (PAM, an upstream Dovecot) get
	 * threads of their own, so that they cannot starve the others */
	set.workers += (int)backend_chain_max_blocked_threads(chain);
	if (is_proxy(cfg)) {
		const struct backend_cfg *b = &cfg->auth.backends[0];

		ra.upstream = authc_new(ra.base, b->socket,
		    b->timeout_ms > 0 ? b->timeout_ms : 10000);
		authc_connect(ra.upstream);
		set.upstream = ra.upstream;
		/* upstream verdicts: only with auth.cache_verdicts */
		set.cache = cfg->auth.cache_verdicts ? ra.cache : NULL;
	}
	ra.srv = auth_server_new(ra.base, listen_fd, chain, &set);
	for (i = 1; ra.srv != NULL && i < fds->n_client; i++)
		if (auth_server_add_listener(ra.srv, fds->client[i]) != 0)
			fatalx("auth: cannot serve auth listener %zu", i);
	/* the internal USER lookup socket (recipient checks of the SMTP role) */
	if (ra.srv != NULL && fds->userdb >= 0) {
		ra.udb = userdb_server_new(ra.base, fds->userdb, ra.srv, chain);
		if (ra.udb == NULL)
			fatalx("auth: cannot serve the userdb socket");
	}

	ra.ev_hup = evsignal_new(ra.base, SIGHUP, on_sighup, &ra);
	ra.ev_term = evsignal_new(ra.base, SIGTERM, on_sigterm, &ra);
	ra.ev_int = evsignal_new(ra.base, SIGINT, on_sigterm, &ra);
	if (ra.ev_hup == NULL || ra.ev_term == NULL || ra.ev_int == NULL ||
	    evsignal_add(ra.ev_hup, NULL) || evsignal_add(ra.ev_term, NULL) ||
	    evsignal_add(ra.ev_int, NULL))
		fatalx("auth: cannot install signal handlers");

	{
		struct sbuf mechs;
		sbuf_init(&mechs, 0);
		for (i = 0; i < auth_sasl_mech_count(); i++)
			sbuf_printf(&mechs, "%s%s", i ? " " : "", auth_sasl_mech(i)->name);
		if (ra.cache != NULL)
			log_info("auth: credential cache on: %d entries of at most "
			    "%.3g s (%s)", cfg->auth.cache_size,
			    cfg->auth.cache_ttl_ms / 1000.0, cfg->auth.cache_verdicts ?
			    "passwd-file hashes, PAM and upstream Dovecot verdicts" :
			    "passwd-file hashes; PAM and upstream Dovecot always asked");
		log_info("auth role ready: mechanisms %s, %zu backend(s)%s",
		    mechs.s ? mechs.s : "", cfg->auth.n_backends,
		    ra.upstream ? " (passed through to the upstream Dovecot)" : "");
		sbuf_free(&mechs);
	}

	event_base_dispatch(ra.base);

	userdb_server_free(ra.udb);      /* before the workers' last jobs */
	auth_server_free(ra.srv);
	authc_free(ra.upstream);
	if (ra.ev_stop)
		event_free(ra.ev_stop);
	event_free(ra.ev_hup);
	event_free(ra.ev_term);
	event_free(ra.ev_int);
	event_base_free(ra.base);
	auth_sasl_done();
	backend_chain_set_cache(chain, NULL, false);
	backend_chain_free(chain);
	auth_cache_free(ra.cache);
	return 0;
}
