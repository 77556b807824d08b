/*
 * auth-server.h - the server side of the Dovecot auth protocol (as
 * Dovecot 2.3 speaks it, ../shared/spec/dovecot-auth-protocol.md) on a
 * libevent loop, with a pool of worker threads that run the Cyrus SASL
 * steps (and so every password hash) off the loop.
 *
 * auth_sasl_init() must have succeeded before auth_server_new(): the
 * advertised mechanisms come from it.
 */
#ifndef MSAGATE_AUTH_SERVER_H
#define MSAGATE_AUTH_SERVER_H

#include <stdint.h>
#include <sys/queue.h>

struct event_base;
struct backend_chain;
struct auth_server;
struct penalty;
struct authc;
struct auth_cache;

struct auth_server_settings {
	int failure_delay_ms;    /* hold credential FAILs this long (0: no hold) */
	int min_time_ms;         /* no final answer earlier than this after AUTH */
	int workers;             /* worker threads; <= 0: number of CPUs */
	int max_clients;         /* connections at once; <= 0: default 1024 */
	int request_timeout_ms;  /* <= 0: 150 s (Dovecot's) */
	struct penalty *penalty; /* brute-force defence (auth-penalty.h); NULL: none */
	/*
	 * Proxy mode: every AUTH is forwarded to this upstream Dovecot
	 * (src/authc.h, on the same event loop) instead of Cyrus SASL; the
	 * mechanisms are then those of auth_sasl_init_proxy().  NULL: none.
	 */
	struct authc *upstream;
	/*
	 * Proxy mode with auth.cache_verdicts: PLAIN logins the upstream said OK
	 * to are remembered here (src/auth-cache.h) and answered from it
	 * while they last.  NULL: none.  (Otherwise the backends use the
	 * cache through the chain; the server never sees it.)
	 */
	struct auth_cache *cache;
};

/*
 * listen_fd: a listening socket (the parent bound it) or -1 when clients
 * are only added with auth_server_add_client() (tests).  chain is used for
 * SIGHUP reloads (on a worker thread).
 */
struct auth_server *auth_server_new(struct event_base *base, int listen_fd,
    struct backend_chain *chain, const struct auth_server_settings *set);
/* Stop accepting, drop every client, stop and join the workers. */
void auth_server_free(struct auth_server *srv);
#define AUTH_SERVER_MAX_LISTENERS 16
/* Serve one more listening socket (takes ownership); -1 if too many. */
int auth_server_add_listener(struct auth_server *srv, int fd);
/* Serve an already connected socket (takes ownership of fd). */
int auth_server_add_client(struct auth_server *srv, int fd);
/* Stop accepting new connections (graceful stop); clients are kept. */
void auth_server_stop_listening(struct auth_server *srv);
/* Re-read the backends' files, on a worker thread (SIGHUP). */
void auth_server_reload(struct auth_server *srv);
/* Connected clients right now. */
unsigned auth_server_client_count(const struct auth_server *srv);
/*
 * Stopping (a reload's new auth role takes over, or SIGTERM): close the
 * clients that have nothing in flight and nothing unsent, so they
 * reconnect to the new role at once...
 */
void auth_server_close_idle(struct auth_server *srv);
/* ...and at the end of the grace, send the answers held back for their
 * delay (min_time, failure_delay) now rather than drop them. */
void auth_server_send_held(struct auth_server *srv);

/* Where the mechanism steps ran (since auth_server_new; loop only). */
struct auth_server_stats {
	unsigned long long steps_loop;    /* answered on the event loop */
	unsigned long long steps_worker;  /* handed to a worker thread */
	unsigned long long wakeups;       /* times the workers woke the loop */
};
void auth_server_get_stats(const struct auth_server *srv,
    struct auth_server_stats *st);

/*
 * A piece of blocking work for the worker threads (e.g. a userdb lookup,
 * src/auth-userdb.c).  work(arg) runs on a worker thread; done(arg, ran)
 * then runs on the event loop, exactly once: ran is false when the server
 * was freed before the work could run.  The caller owns the job memory
 * until done() is called.
 */
struct auth_job {
	TAILQ_ENTRY(auth_job) entry;        /* the server's */
	void (*work)(void *arg);
	void (*done)(void *arg, int ran);
	void *arg;
};
void auth_server_submit_job(struct auth_server *srv, struct auth_job *job);

#endif
