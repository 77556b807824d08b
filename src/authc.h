/*
 * authc.h - asynchronous client of the Dovecot auth protocol (client side
 * of ../shared/spec/dovecot-auth-protocol.md), on libevent.
 *
 * One struct authc is one connection to an auth socket, multiplexing many
 * requests.  The SMTP role keeps one; `msagatectl auth test` uses one on a
 * private event_base.  It reconnects on demand; while it is down, requests
 * complete at once with AUTHC_TEMPFAIL.
 */
#ifndef MSAGATE_AUTHC_H
#define MSAGATE_AUTHC_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

struct event_base;
struct authc;

enum authc_result {
	AUTHC_OK,        /* user = authenticated user name */
	AUTHC_CONT,      /* data = base64 challenge (may be "") */
	AUTHC_FAIL,      /* credentials refused (535); reason may be NULL */
	AUTHC_TEMPFAIL,  /* server down, timeout, code=temp_fail (454) */
	AUTHC_BADB64,    /* code=invalid_base64 (501) */
};

/*
 * Callback for one step of a request.  `data` is the challenge for CONT,
 * the user name for OK, the reason (if any) for FAIL/TEMPFAIL.  `extra`
 * is the rest of the reply's fields (TAB-separated, unescaped) or NULL.
 * After OK/FAIL/TEMPFAIL/BADB64 the request is finished.
 */
typedef void authc_cb(void *ctx, enum authc_result res, const char *data,
                      const char *extra);

/* What the client knows about the connection being authenticated. */
struct authc_info {
	const char *service;     /* "smtp" */
	const char *local_ip;    /* may be NULL */
	const char *remote_ip;
	unsigned local_port, remote_port;  /* 0 = unknown */
	bool secured;            /* TLS */
	bool no_penalty;
	const char *session;     /* session id for logs, may be NULL */
};

/* timeout_ms: per request, from AUTH to the final answer (>= 20000 advised). */
struct authc *authc_new(struct event_base *base, const char *socket_path,
                        int timeout_ms);
void authc_free(struct authc *c);

/* Start connecting now (otherwise done on the first request). */
void authc_connect(struct authc *c);
/* true once the handshake finished (DONE received) on a live connection. */
bool authc_ready(const struct authc *c);
/* Mechanism offered by the server (not "private")?  Case-insensitive. */
bool authc_has_mech(const struct authc *c, const char *mech);
/* Space-separated non-private mechanisms, "" before the handshake. */
const char *authc_mechs(const struct authc *c);

/*
 * Begin an AUTH.  initial_b64 is the initial response ("=" or "" means an
 * empty one) or NULL for none.  Returns a request id (never 0); the
 * callback runs later, never from inside this call.
 */
uint32_t authc_begin(struct authc *c, const char *mech, const char *initial_b64,
                     const struct authc_info *info, authc_cb *cb, void *ctx);
/* Answer a CONT with base64 data. */
void authc_continue(struct authc *c, uint32_t id, const char *b64);
/* Forget a request: its callback will not be called again. */
void authc_abort(struct authc *c, uint32_t id);

#endif
