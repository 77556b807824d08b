/*
 * auth-sasl.h - Cyrus SASL as the auth role's mechanism engine.
 *
 * auth_sasl_init() runs once, before privileges are dropped: it forces
 * the Cyrus options we rely on (our own auxprop plugin, never sasldb; the
 * configured mech_list; no fallback password checkers), registers our
 * callbacks and decides which configured mechanisms can really be served.
 *
 * One struct auth_sasl_req per AUTH request.  auth_sasl_step() is
 * synchronous and may hash passwords: call it from a worker thread only,
 * and from one thread at a time per request.  auth_sasl_step_fast() is
 * the exception for the event loop: the first step of PLAIN or LOGIN as
 * far as the backends can answer without blocking or hashing.  Cyrus' own return codes are
 * not trusted to tell "wrong password" from "backend down": our callbacks
 * record their verdict in the request, and the outcome is decided from it.
 */
#ifndef MSAGATE_AUTH_SASL_H
#define MSAGATE_AUTH_SASL_H

#include <stdbool.h>
#include <stddef.h>

#include "backend.h"
#include "config.h"

/* A mechanism we advertise, with its Dovecot MECH flag words. */
struct auth_mech {
	char name[32];           /* upper case, as advertised */
	const char *flags;       /* e.g. "plaintext", "dictionary\tactive" or "" */
	bool plaintext;          /* the password travels (PLAIN, LOGIN) */
};

/* What our callbacks found out (not what Cyrus returned). */
enum auth_verdict {
	VERDICT_NONE,            /* no backend was asked */
	VERDICT_OK,              /* plaintext password verified */
	VERDICT_FOUND,           /* credential handed to the mechanism */
	VERDICT_MISMATCH,
	VERDICT_UNKNOWN,
	VERDICT_DISABLED,
	VERDICT_TEMPFAIL,
	VERDICT_AUTHZ,           /* authzid != authcid refused */
};

enum auth_sasl_status {
	AUTH_SASL_CONTINUE,      /* send CONT with out_b64 */
	AUTH_SASL_OK,            /* success: user, out_b64 = final data or NULL */
	AUTH_SASL_FAIL,          /* credentials refused */
	AUTH_SASL_TEMPFAIL,      /* backend or internal error */
	AUTH_SASL_DEFERRED,      /* auth_sasl_step_fast only: run auth_sasl_step */
};

struct auth_sasl_req;

/* Initialise Cyrus; -1 with *error (malloc'd). */
int auth_sasl_init(const struct msagate_config *cfg, struct backend_chain *chain,
    char **error);
/*
 * auth_sasl_init_proxy - instead of auth_sasl_init when every AUTH is
 * forwarded to an upstream Dovecot (the chain is one `dovecot` backend):
 * the configured mechanisms we know are advertised with Dovecot's flags,
 * Cyrus SASL is not used.  -1 with *error when none is left.
 */
int auth_sasl_init_proxy(const struct msagate_config *cfg, char **error);
void auth_sasl_done(void);

/* The usable mechanisms in configuration order. */
size_t auth_sasl_mech_count(void);
const struct auth_mech *auth_sasl_mech(size_t i);
/* Case-insensitive lookup among the usable mechanisms; NULL if none. */
const struct auth_mech *auth_sasl_mech_find(const char *name);

/* New request (cheap, no Cyrus work yet; call from any thread). */
struct auth_sasl_req *auth_sasl_req_new(const struct auth_mech *mech,
    const char *service, bool final_data_ok);
/* The client's address (rip=), passed on to the backends (PAM_RHOST). */
void auth_sasl_req_set_rip(struct auth_sasl_req *r, const char *rip);
/* Dispose; never while a worker runs a step on it. */
void auth_sasl_req_free(struct auth_sasl_req *r);

/*
 * auth_sasl_step - the first call starts the mechanism (with the initial
 * response if have_in), later calls continue it.  Returns the status;
 * *out_b64 is a malloc'd base64 string (CONT challenge or final data) or
 * NULL.  The request remembers user, verdict and reply data.
 */
enum auth_sasl_status auth_sasl_step(struct auth_sasl_req *r,
    const unsigned char *in, size_t inlen, bool have_in, char **out_b64);
/*
 * auth_sasl_step_fast - the first step of a plaintext mechanism (PLAIN,
 * LOGIN: true of auth_sasl_can_step_fast), on the event loop: as
 * auth_sasl_step, except that the backends are only asked through
 * backend_chain_verify_plain_fast.  When one of them needs the real check
 * the answer is AUTH_SASL_DEFERRED: nothing was decided or kept, the
 * request is as new, and the same step must be run with auth_sasl_step
 * (on a worker).
 */
enum auth_sasl_status auth_sasl_step_fast(struct auth_sasl_req *r,
    const unsigned char *in, size_t inlen, bool have_in, char **out_b64);
/* May the next step of r run with auth_sasl_step_fast? */
bool auth_sasl_can_step_fast(const struct auth_sasl_req *r);

/* After a step: the user to report (authenticated, or the one that was
 * tried; "" if unknown), the verdict, extra fields (space separated). */
const char *auth_sasl_req_user(const struct auth_sasl_req *r);
enum auth_verdict auth_sasl_req_verdict(const struct auth_sasl_req *r);
const char *auth_sasl_req_extra(const struct auth_sasl_req *r);
const char *auth_verdict_str(enum auth_verdict v);
/* Why a backend refused a known user ("nologin", "allow_nets") or "":
 * for the log only, never for the client. */
const char *auth_sasl_req_reason(const struct auth_sasl_req *r);
/* VERDICT_DISABLED because the password expired (FAIL code=pass_expired). */
bool auth_sasl_req_pass_expired(const struct auth_sasl_req *r);

#endif
