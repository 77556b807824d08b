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
		const struct auth_backend_ops *ops = c->b[i].ops;
		enum backend_result res = ops->verify_plain_req != NULL ?
		    ops->verify_plain_req(c->b[i].state, user, password, req, r) :
		    ops->verify_plain(c->b[i].state, user, password, r);
		if (res != BACKEND_UNKNOWN_USER)
			return res;
	}
	return BACKEND_UNKNOWN_USER;
}

enum backend_result
backend_chain_verify_plain(struct backend_chain *c, const char *user,
    const char *password, struct backend_reply *r)
{
	return backend_chain_verify_plain_req(c, user, password, NULL, r);
}

enum backend_result
backend_chain_lookup_plain_req(struct backend_chain *c, const char *user,
    char **plain, const struct backend_request *req, struct backend_reply *r)
{
	size_t i;

	*plain = NULL;
	reply_init(r, user);
	for (i = 0; i < c->n; i++) {
		const struct auth_backend_ops *ops = c->b[i].ops;
		enum backend_result res;

		if (ops->lookup_plain_req != NULL)
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
	size_t i;

	*plain = *secret = NULL;
	reply_init(r, user);
	for (i = 0; i < c->n; i++) {
		const struct auth_backend_ops *ops = c->b[i].ops;
		enum backend_result res;

		if (ops->lookup_scram_req != NULL)
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

bool
backend_chain_can_lookup_plain(const struct backend_chain *c)
{
	size_t i;

	if (c->n == 0)
		return false;
	for (i = 0; i < c->n; i++)
		if (c->b[i].ops->lookup_plain == NULL &&
		    c->b[i].ops->lookup_plain_req == NULL)
			return false;
	return true;
}

bool
backend_chain_can_lookup_scram(const struct backend_chain *c)
{
	size_t i;

	if (c->n == 0)
		return false;
	for (i = 0; i < c->n; i++)
		if (c->b[i].ops->lookup_scram_req == NULL &&
		    c->b[i].ops->lookup_plain == NULL &&
		    c->b[i].ops->lookup_plain_req == NULL)
			return false;
	return true;
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
