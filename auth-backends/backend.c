/*
 * backend.c - registry of the credential backends and the chain that
 * tries the configured ones in order (see backend.h).
 *
 * Drivers that exist by name but are not available in this build (PAM
 * without libpam) have entries without functions, so that both
 * `msagated -n` and the auth role say "not compiled in" clearly instead of
 * pretending to work.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth-cache.h"
#include "backend.h"
#include "log.h"
#include "util.h"

#ifndef HAVE_PAM
/* Placeholder: a known name, not compiled in (configure --without-pam). */
static const struct auth_backend_ops backend_pam = { .name = "pam" };
#endif

static const struct auth_backend_ops *const registry[] = {
	&backend_passwd_file,
	&backend_pam,
	&backend_dovecot,
};

struct backend_instance {
	const struct auth_backend_ops *ops;
	void *state;
};

struct backend_chain {
	struct backend_instance *b;
	size_t n;
	struct auth_cache *cache;     /* verified-credential cache, or NULL */
	bool verdicts;                /* ... also for cache_verdicts backends */
};

const struct auth_backend_ops *
backend_find(const char *driver)
{
	size_t i;

	if (driver == NULL)
		return NULL;
	for (i = 0; i < sizeof(registry) / sizeof(registry[0]); i++)
		if (strcmp(registry[i]->name, driver) == 0)
			return registry[i];
	return NULL;
}

const char *
backend_result_str(enum backend_result r)
{
	switch (r) {
	case BACKEND_OK: return "ok";
	case BACKEND_MISMATCH: return "mismatch";
	case BACKEND_UNKNOWN_USER: return "unknown user";
	case BACKEND_DISABLED: return "disabled";
	case BACKEND_TEMPFAIL: return "temporary failure";
	}
	return "?";
}

/* ---- checks and settings shared by the drivers (see backend.h) ---- */

bool
backend_name_ok(const char *s, size_t len, const char *forbid)
{
	size_t i;

	if (len == 0 || len > BACKEND_MAX_USER)
		return false;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f || strchr(forbid, c) != NULL)
			return false;
	}
	return true;
}

bool
backend_token_ok(const char *s, size_t max, const char *punct)
{
	size_t i, len = s ? strlen(s) : 0;

	if (len == 0 || len > max)
		return false;
	for (i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
		    (c >= 'A' && c <= 'Z') || strchr(punct, c) != NULL))
			return false;
	}
	return true;
}

int
backend_check_workers(const struct backend_cfg *cfg, const char *driver,
    char **error)
{
	if (cfg->workers < 1 || cfg->workers > 64) {
		*error = xasprintf("%s backend: workers must be 1..64", driver);
		return -1;
	}
	return 0;
}

void
backend_pool_settings(const struct backend_cfg *cfg, int *timeout_ms,
    size_t *workers)
{
	*timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 10000;
	*workers = cfg->workers > 0 ? (size_t)cfg->workers : 4;
}

/* driver_usable - known and implemented; *error otherwise. */
static const struct auth_backend_ops *
driver_usable(const struct backend_cfg *b, char **error)
{
	const struct auth_backend_ops *ops = backend_find(b->driver);

	if (ops == NULL) {
		*error = xasprintf("unknown auth backend driver '%s'",
		    b->driver ? b->driver : "(none)");
		return NULL;
	}
	if (ops->init == NULL) {
		*error = xasprintf("auth backend driver '%s' is not compiled in",
		    ops->name);
		return NULL;
	}
	return ops;
}

int
backend_check(const struct backend_cfg *b, char **error)
{
	const struct auth_backend_ops *ops;

	*error = NULL;
	if ((ops = driver_usable(b, error)) == NULL)
		return -1;
	if (ops->check != NULL)
		return ops->check(b, error);
	return 0;
}

struct backend_chain *
backend_chain_new(const struct backend_cfg *cfgs, size_t n, char **error)
{
	struct backend_chain *c = xcalloc(1, sizeof(*c));
	size_t i;

	*error = NULL;
	c->b = xcalloc(n ? n : 1, sizeof(*c->b));
	for (i = 0; i < n; i++) {
		const struct auth_backend_ops *ops = driver_usable(&cfgs[i], error);
		char *err = NULL;

		if (ops == NULL)
			goto fail;
		if (ops->init(&cfgs[i], &c->b[i].state, &err) != 0) {
			*error = xasprintf("backend %s: %s", ops->name,
			    err ? err : "initialisation failed");
			free(err);
			goto fail;
		}
		c->b[i].ops = ops;
		c->n++;
	}
	return c;
fail:
	backend_chain_free(c);
	return NULL;
}

void
backend_chain_free(struct backend_chain *c)
{
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < c->n; i++)
		if (c->b[i].ops->deinit)
			c->b[i].ops->deinit(c->b[i].state);
	free(c->b);
	free(c);
}

static void
reply_init(struct backend_reply *r, const char *user)
{
	memset(r, 0, sizeof(*r));
	(void)user;
}

size_t
backend_chain_set_cache(struct backend_chain *c, struct auth_cache *cache,
    bool verdicts)
{
	size_t i, users = 0;

	c->cache = cache;
	c->verdicts = cache != NULL && verdicts;
	for (i = 0; i < c->n; i++) {
		if (c->b[i].ops->set_cache != NULL) {
			c->b[i].ops->set_cache(c->b[i].state, cache, (unsigned)i);
			users++;
		} else if (c->verdicts && c->b[i].ops->cache_verdicts)
			users++;
	}
	return cache != NULL ? users : 0;
}

/* uses_verdict_cache - are backend i's OK verdicts cached? */
static bool
uses_verdict_cache(const struct backend_chain *c, size_t i)
{
	return c->cache != NULL && c->verdicts && c->b[i].ops->cache_verdicts;
}

/* verify_one - ask backend i, without the cache. */
static enum backend_result
verify_one(struct backend_chain *c, size_t i, const char *user,
    const char *password, const struct backend_request *req,
    struct backend_reply *r)
{
	const struct auth_backend_ops *ops = c->b[i].ops;

	return ops->verify_plain_req != NULL ?
	    ops->verify_plain_req(c->b[i].state, user, password, req, r) :
	    ops->verify_plain(c->b[i].state, user, password, r);
}

/*
 * verdict_key - the cache key of backend i's verdict on (service, client
 * address, user, password); -1 when the cache cannot make one.
 */
static int
verdict_key(struct backend_chain *c, size_t i, const char *user,
    const char *password, const struct backend_request *req,
    struct auth_cache_key *k)
{
	static const char tag[] = "msagate verdict v1";
	const char *name = c->b[i].ops->name;
	const char *service = req && req->service ? req->service : "";
	const char *rip = req && req->rip ? req->rip : "";
	uint32_t id = (uint32_t)i;
	struct auth_cache_field f[] = {
		{ tag, sizeof(tag) - 1 }, { &id, sizeof(id) },
		{ name, strlen(name) }, { service, strlen(service) },
		{ rip, strlen(rip) }, { user, strlen(user) },
		{ password, strlen(password) },
	};

	return auth_cache_key(c->cache, f, sizeof(f) / sizeof(f[0]), k);
}

/*
 * verdict_hit - a live entry for k: its payload "user\0extra" into r.
 * peek: a miss is not counted (a first look from the event loop).
 */
static bool
verdict_hit(struct backend_chain *c, const struct auth_cache_key *k,
    bool peek, struct backend_reply *r)
{
	char payload[sizeof(r->user) + sizeof(r->extra)];
	size_t len = sizeof(payload), ul;
	bool hit = peek ? auth_cache_peek(c->cache, k, payload, &len) :
	    auth_cache_lookup(c->cache, k, payload, &len);

	if (!hit || len >= sizeof(payload) || (ul = strnlen(payload, len)) >= len ||
	    ul >= sizeof(r->user) || len - ul - 1 >= sizeof(r->extra))
		return false;
	memcpy(r->user, payload, ul + 1);
	memcpy(r->extra, payload + ul + 1, len - ul - 1);
	r->extra[len - ul - 1] = '\0';
	return true;
}

/*
 * verify_cached_verdict - backend i (cache_verdicts, with
 * auth.cache_verdicts) through the cache: a live entry for (backend,
 * service, client address, user, password) replays the backend's OK with
 * its canonical name and extra fields; otherwise the backend decides and
 * an OK is remembered.  Nothing but OK is ever cached.
 */
static enum backend_result
verify_cached_verdict(struct backend_chain *c, size_t i, const char *user,
    const char *password, const struct backend_request *req,
    struct backend_reply *r)
{
	const char *name = c->b[i].ops->name;
	struct auth_cache_key k;
	char payload[sizeof(r->user) + sizeof(r->extra)];
	size_t len, ul;
	enum backend_result res;

	if (verdict_key(c, i, user, password, req, &k) != 0)
		return verify_one(c, i, user, password, req, r);
	if (verdict_hit(c, &k, false, r)) {
		auth_cache_log_debug(c->cache, true, name, user);
		return BACKEND_OK;
	}
	auth_cache_log_debug(c->cache, false, name, user);
	res = verify_one(c, i, user, password, req, r);
	if (res == BACKEND_OK) {
		ul = strnlen(r->user, sizeof(r->user) - 1);
		len = strnlen(r->extra, sizeof(r->extra) - 1);
		memcpy(payload, r->user, ul);
		payload[ul] = '\0';
		memcpy(payload + ul + 1, r->extra, len);
		auth_cache_insert(c->cache, &k, payload, ul + 1 + len);
	}
	return res;
}

/*
 * backend_chain_verify_plain - the first backend that knows the user
 * decides; a TEMPFAIL stops the walk (we cannot tell whether that backend
 * would have known the user, so nobody after it may decide).
 */
enum backend_result
backend_chain_verify_plain_req(struct backend_chain *c, const char *user,
    const char *password, const struct backend_request *req,
    struct backend_reply *r)
{
	size_t i;

	reply_init(r, user);
	for (i = 0; i < c->n; i++) {
		enum backend_result res = uses_verdict_cache(c, i) ?
		    verify_cached_verdict(c, i, user, password, req, r) :
		    verify_one(c, i, user, password, req, r);
		if (res != BACKEND_UNKNOWN_USER)
			return res;
	}
	return BACKEND_UNKNOWN_USER;
}

/*
 * backend_chain_verify_plain_fast - the chain walk of
 * backend_chain_verify_plain_req, but each backend only through what it
 * can answer at once: a cached verdict (a miss gives up: the backend
 * itself may block) or its verify_plain_fast.  The first backend that
 * cannot answer so ends the attempt (false): the real walk must run.
 */
bool
backend_chain_verify_plain_fast(struct backend_chain *c, const char *user,
    const char *password, const struct backend_request *req,
    struct backend_reply *r, enum backend_result *res)
{
	size_t i;

	reply_init(r, user);
	for (i = 0; i < c->n; i++) {
		const struct auth_backend_ops *ops = c->b[i].ops;

		if (uses_verdict_cache(c, i)) {
			struct auth_cache_key k;

			if (verdict_key(c, i, user, password, req, &k) != 0 ||
			    !verdict_hit(c, &k, true, r))
				return false;
			auth_cache_log_debug(c->cache, true, ops->name, user);
			*res = BACKEND_OK;
			return true;
		}
		if (ops->verify_plain_fast == NULL ||
		    !ops->verify_plain_fast(c->b[i].state, user, password, req, r, res))
			return false;
		if (*res != BACKEND_UNKNOWN_USER)
			return true;
	}
	*res = BACKEND_UNKNOWN_USER;
	return true;
}

enum backend_result
backend_chain_verify_plain(struct backend_chain *c, const char *user,
    const char *password, struct backend_reply *r)
{
	return backend_chain_verify_plain_req(c, user, password, NULL, r);
}

/*
 * chain_lookup - the credential walk of lookup_plain_req (secret NULL)
 * and lookup_scram_req (secret set: backends with lookup_scram_req are
 * asked for mech's stored secret too, the others for their plaintext).
 * The first backend that knows the user decides; one that cannot hand
 * out credentials at all stops the walk with TEMPFAIL.
 */
static enum backend_result
chain_lookup(struct backend_chain *c, const char *user, const char *mech,
    char **plain, char **secret, const struct backend_request *req,
    struct backend_reply *r)
{
	size_t i;

	*plain = NULL;
	if (secret != NULL)
		*secret = NULL;
	reply_init(r, user);
	for (i = 0; i < c->n; i++) {
		const struct auth_backend_ops *ops = c->b[i].ops;
		enum backend_result res;

		if (secret != NULL && ops->lookup_scram_req != NULL)
			res = ops->lookup_scram_req(c->b[i].state, user, mech, plain,
			    secret, req, r);
		else if (ops->lookup_plain_req != NULL)
			res = ops->lookup_plain_req(c->b[i].state, user, plain, req, r);
		else if (ops->lookup_plain != NULL)
			res = ops->lookup_plain(c->b[i].state, user, plain, r);
		else
			return BACKEND_TEMPFAIL;   /* cannot answer for this user */
		if (res != BACKEND_UNKNOWN_USER)
			return res;
	}
	return BACKEND_UNKNOWN_USER;
}

enum backend_result
backend_chain_lookup_plain_req(struct backend_chain *c, const char *user,
    char **plain, const struct backend_request *req, struct backend_reply *r)
{
	return chain_lookup(c, user, NULL, plain, NULL, req, r);
}

enum backend_result
backend_chain_lookup_plain(struct backend_chain *c, const char *user,
    char **plain, struct backend_reply *r)
{
	return backend_chain_lookup_plain_req(c, user, plain, NULL, r);
}

enum backend_result
backend_chain_lookup_scram_req(struct backend_chain *c, const char *user,
    const char *mech, char **plain, char **secret,
    const struct backend_request *req, struct backend_reply *r)
{
	return chain_lookup(c, user, mech, plain, secret, req, r);
}

/*
 * backend_chain_lookup_user - userdb lookup in backend order.  Backends
 * without lookup_user are skipped (they cannot say anything about
 * existence); an OK canonical name defaults to the name asked for.
 */
enum backend_result
backend_chain_lookup_user(struct backend_chain *c, const char *user,
    struct backend_reply *r)
{
	size_t i;

	reply_init(r, user);
	for (i = 0; i < c->n; i++) {
		const struct auth_backend_ops *ops = c->b[i].ops;
		enum backend_result res;

		if (ops->lookup_user == NULL)
			continue;
		res = ops->lookup_user(c->b[i].state, user, r);
		if (res == BACKEND_OK) {
			if (r->user[0] == '\0')
				snprintf(r->user, sizeof(r->user), "%s", user);
			return BACKEND_OK;
		}
		if (res == BACKEND_TEMPFAIL)
			return BACKEND_TEMPFAIL;
		/* anything else: this backend does not know the user */
		memset(r, 0, sizeof(*r));
	}
	return BACKEND_UNKNOWN_USER;
}

/* chain_can_lookup - can every backend (at least one) answer
 * chain_lookup: hand out its plaintext, or with scram a stored secret? */
static bool
chain_can_lookup(const struct backend_chain *c, bool scram)
{
	size_t i;

	if (c->n == 0)
		return false;
	for (i = 0; i < c->n; i++)
		if ((!scram || c->b[i].ops->lookup_scram_req == NULL) &&
		    c->b[i].ops->lookup_plain == NULL &&
		    c->b[i].ops->lookup_plain_req == NULL)
			return false;
	return true;
}

bool
backend_chain_can_lookup_plain(const struct backend_chain *c)
{
	return chain_can_lookup(c, false);
}

bool
backend_chain_can_lookup_scram(const struct backend_chain *c)
{
	return chain_can_lookup(c, true);
}

size_t
backend_chain_max_blocked_threads(const struct backend_chain *c)
{
	size_t i, sum = 0;

	for (i = 0; i < c->n; i++)
		if (c->b[i].ops->max_blocked_threads != NULL)
			sum += c->b[i].ops->max_blocked_threads(c->b[i].state);
	return sum;
}

int
backend_chain_reload(struct backend_chain *c)
{
	size_t i;
	int failed = 0;

	for (i = 0; i < c->n; i++)
		if (c->b[i].ops->reload && c->b[i].ops->reload(c->b[i].state) != 0)
			failed++;
	return failed;
}
