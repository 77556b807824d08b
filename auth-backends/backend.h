/*
 * backend.h - the one small interface every credential backend of the
 * auth role implements (like Dovecot's passdb_module_interface), and the
 * registry/chain that tries the configured backends in order.
 *
 * Backends are called from the auth role's worker threads, several at a
 * time: verify_plain/lookup_plain/reload must be thread-safe.  They may
 * block (file reads, hashing, PAM) - never call them on the event loop.
 * The one exception is verify_plain_fast, which answers only what it can
 * without blocking or hashing and is meant for the loop.
 *
 * Contract for results (never reveal more than the caller may tell):
 *   BACKEND_OK            the password is right (verify) / the credential
 *                         was found (lookup)
 *   BACKEND_MISMATCH      the user exists, the password is wrong
 *   BACKEND_UNKNOWN_USER  this backend does not know the user: try the next
 *   BACKEND_DISABLED      the password was right but the account may not log
 *                         in (only ever returned after a correct password)
 *   BACKEND_TEMPFAIL      could not decide (I/O error, service down)
 */
#ifndef MSAGATE_BACKEND_H
#define MSAGATE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

enum backend_result {
	BACKEND_OK,
	BACKEND_MISMATCH,
	BACKEND_UNKNOWN_USER,
	BACKEND_DISABLED,
	BACKEND_TEMPFAIL,
};

/* Longest user name any backend accepts (bytes, without NUL). */
#define BACKEND_MAX_USER	255
/* Longest password we verify; longer ones are a mismatch. */
#define BACKEND_MAX_PASSWORD	1024

/* What a successful (or decided) lookup returns besides the result. */
struct backend_reply {
	char user[BACKEND_MAX_USER + 1];  /* canonical user name, "" = as given */
	char extra[512];                  /* extra fields, TAB-separated, or "" */
	/* with BACKEND_DISABLED: the password has expired (FAIL code=
	 * pass_expired) rather than the account being locked or expired
	 * (code=user_disabled) */
	bool pass_expired;
	/* why a known user was refused despite (or regardless of) the
	 * password, for the log only ("nologin", "allow_nets"); "" if not */
	char reason[32];
};

struct auth_cache;

/* What a backend may know of the request besides the credentials. */
struct backend_request {
	const char *rip;         /* client address as text; NULL or "" unknown */
	const char *service;     /* "smtp", ...; NULL unknown */
};

struct auth_backend_ops {
	const char *name;
	/* Config check for `msagated -n`: 0 ok, -1 with *error (malloc'd). */
	int (*check)(const struct backend_cfg *cfg, char **error);
	/* Called while still privileged; -1 with *error (malloc'd) on failure. */
	int (*init)(const struct backend_cfg *cfg, void **state, char **error);
	void (*deinit)(void *state);
	/* Check a plaintext password (PLAIN, LOGIN). */
	enum backend_result (*verify_plain)(void *state, const char *user,
	    const char *password, struct backend_reply *r);
	/*
	 * Hand out the plaintext credential, for CRAM-MD5/SCRAM/DIGEST-MD5.
	 * NULL when the backend can never do it.  On BACKEND_OK *plain is a
	 * malloc'd copy the caller wipes and frees.  Users without a plaintext
	 * credential answer BACKEND_MISMATCH (they exist, but cannot use it).
	 */
	enum backend_result (*lookup_plain)(void *state, const char *user,
	    char **plain, struct backend_reply *r);
	/* Re-read files now (SIGHUP); 0 or -1 (old data kept, error logged). */
	int (*reload)(void *state);
	/*
	 * Backends that wait on something slow (PAM helper processes, an
	 * upstream server): at most how many of the auth role's worker
	 * threads this instance keeps waiting at once.  The auth role adds
	 * that many threads, so that a slow backend cannot starve the others.
	 * NULL: never waits on anything slow.
	 */
	size_t (*max_blocked_threads)(void *state);
	/*
	 * verify_plain with the request's context (req may be NULL).  When
	 * set, the chain calls this instead of verify_plain.
	 */
	enum backend_result (*verify_plain_req)(void *state, const char *user,
	    const char *password, const struct backend_request *req,
	    struct backend_reply *r);
	/* lookup_plain with the request's context (req may be NULL); when
	 * set, the chain calls this instead of lookup_plain. */
	enum backend_result (*lookup_plain_req)(void *state, const char *user,
	    char **plain, const struct backend_request *req,
	    struct backend_reply *r);
	/*
	 * Userdb lookup (the auth role's userdb socket): does the user exist,
	 * and with which canonical name and fields (r->user, r->extra:
	 * TAB-separated "uid=.. gid=.. home=.."; never a credential).
	 * BACKEND_OK / BACKEND_UNKNOWN_USER / BACKEND_TEMPFAIL only.  NULL:
	 * the backend cannot tell; the chain moves on to the next one.
	 */
	enum backend_result (*lookup_user)(void *state, const char *user,
	    struct backend_reply *r);
	/*
	 * SCRAM-* (mech is the mechanism name, "SCRAM-SHA-256"): the stored
	 * secret in Cyrus' authPassword form "MECH$iter:salt$StoredKey:
	 * ServerKey" into *secret, or, for users with a plaintext credential,
	 * that into *plain (exactly one is set on BACKEND_OK, malloc'd; the
	 * caller wipes and frees).  Users with neither answer
	 * BACKEND_MISMATCH; access fields apply as for lookup_plain_req.
	 * NULL: the chain uses lookup_plain(_req) instead.
	 */
	enum backend_result (*lookup_scram_req)(void *state, const char *user,
	    const char *mech, char **plain, char **secret,
	    const struct backend_request *req, struct backend_reply *r);
	/*
	 * Verified-credential cache (auth.cache_ttl): true when the chain
	 * may remember this backend's positive verify answers as a whole
	 * (the backend has no stored secret to bind an entry to: PAM, an
	 * upstream Dovecot).  Such a verdict is keyed by the backend, the
	 * service, the client address, the user and the password, and
	 * replayed (canonical name, extra fields) until it expires.  It can
	 * go stale (a password changed or an account locked there keeps
	 * working here until then), so the chain only does this with
	 * auth.cache_verdicts = true.
	 */
	bool cache_verdicts;
	/*
	 * Or the backend caches finer itself (passwd-file skips only the
	 * hash and still applies its access fields on every login): the
	 * chain hands it the cache (NULL: off) and the backend's place in
	 * the chain, which its keys include so that backends never share
	 * entries.  Called before any verify, and again with NULL before the
	 * cache is freed.  NULL: not cached (unless cache_verdicts).
	 */
	void (*set_cache)(void *state, struct auth_cache *cache, unsigned id);
	/*
	 * verify_plain_req without blocking and without hashing, for the
	 * event loop: true with *res (and r filled as verify_plain_req
	 * would) when the answer costs no more than a table lookup and a
	 * comparison (passwd-file: a {PLAIN} entry, or a cache hit); false
	 * when it would need the real check (a hash, a dummy hash for an
	 * unknown user, a file to re-read): nothing was decided, run
	 * verify_plain_req on a worker.  NULL: always false.
	 */
	bool (*verify_plain_fast)(void *state, const char *user,
	    const char *password, const struct backend_request *req,
	    struct backend_reply *r, enum backend_result *res);
};

/* The registry: a driver name -> ops (ops->init NULL: not compiled in). */
const struct auth_backend_ops *backend_find(const char *driver);

/*
 * backend_check - what `msagated -n` asks about one backends entry: the
 * driver is known and compiled in, its files readable and parseable.
 * 0 when good; -1 with *error = malloc'd message (a file problem reads
 * "PATH:LINE: message").
 */
int backend_check(const struct backend_cfg *b, char **error);

/* The configured chain, in order. */
struct backend_chain;

struct backend_chain *backend_chain_new(const struct backend_cfg *cfgs, size_t n,
    char **error);
void backend_chain_free(struct backend_chain *c);
/* Try each backend in order; the first that knows the user decides. */
enum backend_result backend_chain_verify_plain(struct backend_chain *c,
    const char *user, const char *password, struct backend_reply *r);
/* As above, telling the backends about the request (client address). */
enum backend_result backend_chain_verify_plain_req(struct backend_chain *c,
    const char *user, const char *password, const struct backend_request *req,
    struct backend_reply *r);
/* As above for the plaintext credential (CRAM-MD5, SCRAM). */
enum backend_result backend_chain_lookup_plain(struct backend_chain *c,
    const char *user, char **plain, struct backend_reply *r);
/* As above, telling the backends about the request (client address). */
enum backend_result backend_chain_lookup_plain_req(struct backend_chain *c,
    const char *user, char **plain, const struct backend_request *req,
    struct backend_reply *r);
/* SCRAM: the plaintext or the stored secret for mech (see lookup_scram_req;
 * backends without it answer their plaintext). */
enum backend_result backend_chain_lookup_scram_req(struct backend_chain *c,
    const char *user, const char *mech, char **plain, char **secret,
    const struct backend_request *req, struct backend_reply *r);
/* Userdb lookup: the first backend that knows the user answers (OK);
 * UNKNOWN_USER when none does; a TEMPFAIL stops the walk. */
enum backend_result backend_chain_lookup_user(struct backend_chain *c,
    const char *user, struct backend_reply *r);
/* Can every backend of the chain hand out plaintext credentials? */
bool backend_chain_can_lookup_plain(const struct backend_chain *c);
/* Can every backend hand out a plaintext or a stored SCRAM secret? */
bool backend_chain_can_lookup_scram(const struct backend_chain *c);
/* Sum of the backends' max_blocked_threads (threads to add for them). */
size_t backend_chain_max_blocked_threads(const struct backend_chain *c);
/*
 * backend_chain_verify_plain_fast - backend_chain_verify_plain_req as far
 * as every backend asked can answer at once (verify_plain_fast, or a
 * cached verdict): true with *res, false when some backend needs the
 * real check (then call backend_chain_verify_plain_req on a worker; r is
 * reset by it).  Never blocks; safe on the event loop.
 */
bool backend_chain_verify_plain_fast(struct backend_chain *c, const char *user,
    const char *password, const struct backend_request *req,
    struct backend_reply *r, enum backend_result *res);
/*
 * backend_chain_set_cache - use a verified-credential cache for verify
 * (NULL: none; not owned).  Backends with their own fine-grained use
 * (passwd-file) always use it; verdicts of backends that can go stale
 * (cache_verdicts: PAM, an upstream Dovecot) only when verdicts is true
 * (auth.cache_verdicts).  Returns how many backends will use the cache.
 */
size_t backend_chain_set_cache(struct backend_chain *c, struct auth_cache *cache,
    bool verdicts);
/* Reload every backend (SIGHUP); returns the number that failed. */
int backend_chain_reload(struct backend_chain *c);

const char *backend_result_str(enum backend_result r);

/* ---- small checks and settings shared by the drivers ---- */

/*
 * backend_name_ok - a user name of len bytes (1..BACKEND_MAX_USER) without
 * control bytes (below 0x20, 0x7f) and without any byte of forbid (a
 * driver's own exclusions, e.g. " " or " :"; "" for none).
 */
bool backend_name_ok(const char *s, size_t len, const char *forbid);
/*
 * backend_token_ok - s (NULL is not) has 1..max bytes, each an ASCII
 * letter, a digit or one of punct: a service name or an address that can
 * be handed on as is.
 */
bool backend_token_ok(const char *s, size_t max, const char *punct);
/*
 * backend_check_workers - the pool size of a driver with helper processes
 * or connections (pam, dovecot) is 1..64; else -1 with *error (malloc'd,
 * "DRIVER backend: workers must be 1..64").
 */
int backend_check_workers(const struct backend_cfg *cfg, const char *driver,
    char **error);
/* backend_pool_settings - such a driver's timeout (default 10 s) and pool
 * size (default 4), for settings left at 0. */
void backend_pool_settings(const struct backend_cfg *cfg, int *timeout_ms,
    size_t *workers);

/* The passwd-file driver (auth-backends/passwd-file.c). */
extern const struct auth_backend_ops backend_passwd_file;
#ifdef HAVE_PAM
/* PAM in privileged helper processes (auth-backends/pam.c). */
extern const struct auth_backend_ops backend_pam;
#endif
/* Client of an upstream Dovecot auth socket (auth-backends/dovecot.c). */
extern const struct auth_backend_ops backend_dovecot;

#endif
