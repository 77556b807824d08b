/*
 * userdbc.h - asynchronous client of the auth role's userdb socket
 * (cfg->auth.userdb_socket), the Dovecot master/userdb protocol subset of
 * ../shared/spec/dovecot-auth-protocol.md section 3, on libevent.  The
 * SMTP role asks it "does this local user exist?" for RCPT.
 *
 * One struct userdbc is one connection multiplexing many USER requests,
 * reconnecting on demand.  Answers are cached briefly (positive and
 * negative, bounded); temporary failures are not cached.  Callbacks always
 * run from a deferred event, never from inside a userdbc_* call.
 */
#ifndef MSAGATE_USERDBC_H
#define MSAGATE_USERDBC_H

#include <stdint.h>

struct event_base;
struct userdbc;

enum userdbc_result {
	USERDBC_FOUND,
	USERDBC_NOTFOUND,
	USERDBC_TEMPFAIL,        /* FAIL, timeout, socket down, bad name */
	USERDBC_UNCACHED,        /* userdbc_cached() only: ask */
};

typedef void userdbc_cb(void *ctx, enum userdbc_result res);

/* timeout_ms per request; cache_secs how long answers are kept (0: none). */
struct userdbc *userdbc_new(struct event_base *base, const char *socket_path,
                            int timeout_ms, int cache_secs);
void userdbc_free(struct userdbc *c);

/*
 * Look user up.  Names with control characters or longer than 255 octets
 * fail (TEMPFAIL: we cannot know).  Returns a request id (never 0); the
 * callback runs later, once.
 */
uint32_t userdbc_lookup(struct userdbc *c, const char *user, userdbc_cb *cb,
                        void *ctx);
/* Forget a request: its callback will not run. */
void userdbc_abort(struct userdbc *c, uint32_t id);
/* A fresh cached answer for user, or USERDBC_UNCACHED. */
enum userdbc_result userdbc_cached(struct userdbc *c, const char *user);

#endif
