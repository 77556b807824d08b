/*
 * auth-sasl.c - the Cyrus SASL glue of the auth role (see auth-sasl.h).
 *
 * Cyrus runs the mechanisms; it never sees our password files directly.
 * PLAIN and LOGIN reach the backends through the
 * SASL_CB_SERVER_USERDB_CHECKPASS callback.  Mechanisms that need the
 * plaintext credential (CRAM-MD5, DIGEST-MD5, SCRAM-*) get it from our own
 * auxprop plugin "msagate", which answers userPassword from {PLAIN}
 * entries, and for SCRAM-* authPassword from {SCRAM-SHA-*} stored secrets
 * (the form Cyrus' SCRAM plugin reads: "MECH$iter:salt$StoredKey:ServerKey").  Options are forced through SASL_CB_GETOPT: auxprop_plugin is
 * ours (sasldb is never consulted), pwcheck_method names no real checker
 * (so when our checkpass says no, Cyrus has nothing to fall back to), and
 * mech_list is the configured list.
 *
 * Cyrus may turn our "no" into various codes (SASL_NOMECH, SASL_BADAUTH,
 * ...), so every callback writes its verdict into the request and
 * auth_sasl_step() decides from that: success needs both Cyrus' SASL_OK
 * and our positive verdict; a backend error is always a temporary failure.
 *
 * Steps run in worker threads.  The callbacks learn their request from
 * the callback context, or (auxprop plugin) from a thread-local pointer
 * set around each Cyrus call.  The first step of PLAIN/LOGIN may run on
 * the event loop instead (auth_sasl_step_fast): there cb_checkpass only
 * asks the backends what they can answer at once; if one cannot, the
 * request is marked deferred, Cyrus' answer is thrown away with its
 * connection, and the step runs again from scratch on a worker.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sasl/sasl.h>
#include <sasl/saslplug.h>

#include "auth-sasl.h"
#include "log.h"
#include "util.h"

#define AUTH_SASL_APPNAME	"msagate"
#define AUTH_SASL_MAX_MECHS	16
/* Cyrus stores every callback as int (*)(void); go through void (*)(void)
 * so the compiler accepts the (intended) function type change. */
#define SASL_FN(f)	((sasl_callback_ft)(void (*)(void))(f))

struct auth_sasl_req {
	sasl_conn_t *conn;
	const struct auth_mech *mech;
	char service[64];
	bool final_data_ok;
	bool started;
	sasl_callback_t cbs[5];
	enum auth_verdict verdict;
	char user[BACKEND_MAX_USER + 1];    /* the name being tried/authenticated */
	char canon[BACKEND_MAX_USER + 1];   /* backend's name for it, on success */
	char extra[512];
	bool pass_expired;                  /* with VERDICT_DISABLED */
	char rip[64];                       /* client address for the backends */
	char reason[32];                    /* backend's refusal reason, for the log */
	bool fast;                          /* in auth_sasl_step_fast */
	bool deferred;                      /* ... and a backend could not answer */
};

static struct {
	struct backend_chain *chain;
	char *hostname;
	char *mech_list;         /* space separated, for Cyrus */
	bool allow_authzid;
	bool debug;
	struct auth_mech mechs[AUTH_SASL_MAX_MECHS];
	size_t n_mechs;
	bool active;
} as;

static __thread struct auth_sasl_req *cur_req;

/* copy_str - src into dst (size > 0), truncated, NUL-terminated. */
static void
copy_str(char *dst, size_t size, const char *src)
{
	size_t n = strnlen(src, size - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}
static char auxprop_name[] = "msagate";

/* ---- mechanism table ------------------------------------------------- */

static const struct {
	const char *name;
	const char *flags;
	bool plaintext;
	bool needs_plain_lookup;
} known_mechs[] = {
	{ "PLAIN", "plaintext", true, false },
	{ "LOGIN", "plaintext", true, false },
	{ "CRAM-MD5", "dictionary\tactive", false, true },
	/* DIGEST-MD5 (obsolete, RFC 6331): offered only when configured;
	 * the realm is ignored for the lookup (cb_canon), so user names
	 * are looked up as the client sent them (e.g. user@domain). */
	{ "DIGEST-MD5", "dictionary\tactive\tmutual-auth", false, true },
	{ "SCRAM-SHA-1", "mutual-auth", false, true },
	{ "SCRAM-SHA-224", "mutual-auth", false, true },
	{ "SCRAM-SHA-256", "mutual-auth", false, true },
	{ "SCRAM-SHA-384", "mutual-auth", false, true },
	{ "SCRAM-SHA-512", "mutual-auth", false, true },
};

size_t
auth_sasl_mech_count(void)
{
	return as.n_mechs;
}

const struct auth_mech *
auth_sasl_mech(size_t i)
{
	return i < as.n_mechs ? &as.mechs[i] : NULL;
}

const struct auth_mech *
auth_sasl_mech_find(const char *name)
{
	size_t i;

	for (i = 0; i < as.n_mechs; i++)
		if (strcasecmp(as.mechs[i].name, name) == 0)
			return &as.mechs[i];
	return NULL;
}

bool
auth_sasl_req_pass_expired(const struct auth_sasl_req *r)
{
	return r->verdict == VERDICT_DISABLED && r->pass_expired;
}

const char *
auth_verdict_str(enum auth_verdict v)
{
	switch (v) {
	case VERDICT_NONE: return "none";
	case VERDICT_OK: return "ok";
	case VERDICT_FOUND: return "found";
	case VERDICT_MISMATCH: return "mismatch";
	case VERDICT_UNKNOWN: return "unknown user";
	case VERDICT_DISABLED: return "disabled";
	case VERDICT_TEMPFAIL: return "backend error";
	case VERDICT_AUTHZ: return "authorization refused";
	}
	return "?";
}

/* ---- global callbacks ------------------------------------------------ */

/* cb_getopt - the options we force; everything else keeps its default. */
static int
cb_getopt(void *ctx, const char *plugin, const char *option,
    const char **result, unsigned *len)
{
	const char *v = NULL;

	(void)ctx;
	(void)plugin;
	if (option == NULL || result == NULL)
		return SASL_BADPARAM;
	if (strcmp(option, "mech_list") == 0)
		v = as.mech_list;
	else if (strcmp(option, "auxprop_plugin") == 0)
		v = auxprop_name;
	else if (strcmp(option, "pwcheck_method") == 0)
		v = "msagate-callback-only";   /* no real checker: no fallback */
	else if (strcmp(option, "auto_transition") == 0)
		v = "no";
	else if (strcmp(option, "canon_user_plugin") == 0)
		v = "INTERNAL";
	else if (strcmp(option, "sasldb_path") == 0)
		v = "/nonexistent/msagate-never-uses-sasldb";
	else if (strcmp(option, "log_level") == 0)
		v = as.debug ? "5" : "3";      /* never SASL_LOG_PASS */
	else if (strcmp(option, "reauth_timeout") == 0)
		v = "0";
	if (v == NULL)
		return SASL_FAIL;
	*result = v;
	if (len)
		*len = (unsigned)strlen(v);
	return SASL_OK;
}

/* cb_log - Cyrus' messages into our log; secrets never (SASL_LOG_PASS). */
static int
cb_log(void *ctx, int level, const char *message)
{
	char safe[512];

	(void)ctx;
	if (message == NULL || level >= SASL_LOG_PASS || level == SASL_LOG_NONE)
		return SASL_OK;
	/* a quick attempt given up: what Cyrus says about it is moot */
	if (cur_req != NULL && cur_req->deferred)
		return SASL_OK;
	/* Our deliberate pwcheck_method: expected after every wrong password. */
	if (strstr(message, "unknown password verifier") != NULL)
		return SASL_OK;
	log_safe(safe, sizeof(safe), message, 400);
	switch (level) {
	case SASL_LOG_ERR:
	case SASL_LOG_WARN:
		log_warnx("sasl: %s", safe);
		break;
	default:        /* FAIL (we log our own result line), NOTE, DEBUG, TRACE */
		log_debug("sasl: %s", safe);
		break;
	}
	return SASL_OK;
}

static void *
mutex_alloc(void)
{
	pthread_mutex_t *m = xmalloc(sizeof(*m));
	pthread_mutex_init(m, NULL);
	return m;
}

static int
mutex_lock(void *m)
{
	return pthread_mutex_lock(m) == 0 ? SASL_OK : SASL_FAIL;
}

static int
mutex_unlock(void *m)
{
	return pthread_mutex_unlock(m) == 0 ? SASL_OK : SASL_FAIL;
}

static void
mutex_free(void *m)
{
	pthread_mutex_destroy(m);
	free(m);
}

static sasl_callback_t global_cbs[] = {
	{ SASL_CB_GETOPT, SASL_FN(cb_getopt), NULL },
	{ SASL_CB_LOG, SASL_FN(cb_log), NULL },
	{ SASL_CB_LIST_END, NULL, NULL },
};

/* ---- per-request callbacks ------------------------------------------- */

static void
set_user(struct auth_sasl_req *r, const char *user, size_t len)
{
	if (len > BACKEND_MAX_USER)
		len = BACKEND_MAX_USER;
	memcpy(r->user, user, len);
	r->user[len] = '\0';
}

/* cb_checkpass - PLAIN/LOGIN: verify through the backend chain. */
static int
cb_checkpass(sasl_conn_t *conn, void *ctx, const char *user, const char *pass,
    unsigned passlen, struct propctx *propctx)
{
	struct auth_sasl_req *r = ctx;
	struct backend_reply reply;
	enum backend_result res;
	char *pw;

	(void)conn;
	(void)propctx;
	set_user(r, user, strlen(user));
	if (passlen > BACKEND_MAX_PASSWORD || memchr(pass, '\0', passlen) != NULL) {
		r->verdict = VERDICT_MISMATCH;
		return SASL_BADAUTH;
	}
	pw = xmalloc(passlen + 1);
	memcpy(pw, pass, passlen);
	pw[passlen] = '\0';
	{
		struct backend_request breq = { r->rip, r->service };

		if (!r->fast)
			res = backend_chain_verify_plain_req(as.chain, r->user, pw,
			    &breq, &reply);
		else if (!backend_chain_verify_plain_fast(as.chain, r->user, pw,
		    &breq, &reply, &res))
			r->deferred = true;    /* needs the real check: a worker */
	}
	secure_zero(pw, passlen);
	free(pw);
	if (r->deferred)
		return SASL_UNAVAIL;
	switch (res) {
	case BACKEND_OK:
		r->verdict = VERDICT_OK;
		copy_str(r->canon, sizeof(r->canon), reply.user);
		copy_str(r->extra, sizeof(r->extra), reply.extra);
		return SASL_OK;
	case BACKEND_DISABLED:
		r->verdict = VERDICT_DISABLED;
		r->pass_expired = reply.pass_expired;
		return SASL_DISABLED;
	case BACKEND_TEMPFAIL:
		r->verdict = VERDICT_TEMPFAIL;
		return SASL_UNAVAIL;
	case BACKEND_UNKNOWN_USER:
		r->verdict = VERDICT_UNKNOWN;
		return SASL_BADAUTH;
	case BACKEND_MISMATCH:
		break;
	}
	copy_str(r->reason, sizeof(r->reason), reply.reason);
	r->verdict = VERDICT_MISMATCH;
	return SASL_BADAUTH;
}

/* cb_canon - keep names as given; refuse empty, over-long, control bytes. */
static int
cb_canon(sasl_conn_t *conn, void *ctx, const char *in, unsigned inlen,
    unsigned flags, const char *user_realm, char *out, unsigned out_max,
    unsigned *out_len)
{
	struct auth_sasl_req *r = ctx;
	unsigned i;

	(void)conn;
	(void)user_realm;
	if (inlen == 0 || inlen > BACKEND_MAX_USER || inlen >= out_max)
		return SASL_BADPROT;
	for (i = 0; i < inlen; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c < 0x20 || c == 0x7f)
			return SASL_BADPROT;
	}
	memcpy(out, in, inlen);
	out[inlen] = '\0';
	*out_len = inlen;
	if ((flags & SASL_CU_AUTHID) && r->user[0] == '\0')
		set_user(r, in, inlen);
	return SASL_OK;
}

/* cb_authorize - authzid must equal authcid unless allow_authzid. */
static int
cb_authorize(sasl_conn_t *conn, void *ctx, const char *requested_user,
    unsigned rlen, const char *auth_identity, unsigned alen,
    const char *def_realm, unsigned urlen, struct propctx *propctx)
{
	struct auth_sasl_req *r = ctx;

	(void)def_realm;
	(void)urlen;
	(void)propctx;
	if (rlen == alen && memcmp(requested_user, auth_identity, rlen) == 0)
		return SASL_OK;
	if (as.allow_authzid)
		return SASL_OK;
	r->verdict = VERDICT_AUTHZ;
	sasl_seterror(conn, SASL_NOLOG, "authorization identity refused");
	return SASL_NOAUTHZ;
}

/* ---- our auxprop plugin: userPassword / authPassword ------------------ */

/* Cyrus' SCRAM plugin asks for this besides userPassword and takes a
 * stored secret "MECH$iter:salt$StoredKey:ServerKey" from it. */
#define AUX_AUTHPASSWORD	"*authPassword"

/* ap_find - the requested property called name, or NULL. */
static const struct propval *
ap_find(const struct propval *pv, const char *name)
{
	for (; pv != NULL && pv->name != NULL; pv++)
		if (strcmp(pv->name, name) == 0)
			return pv;
	return NULL;
}

/* ap_set - (re)set one property to value. */
static void
ap_set(sasl_server_params_t *sp, const struct propval *pv, const char *value)
{
	if (pv->values != NULL)
		sp->utils->prop_erase(sp->propctx, pv->name);
	sp->utils->prop_set(sp->propctx, pv->name, value, (int)strlen(value));
}

/* ap_free - wipe and free a credential. */
static void
ap_free(char *cred)
{
	if (cred != NULL) {
		secure_zero(cred, strlen(cred));
		free(cred);
	}
}

/*
 * ap_lookup - userPassword from {PLAIN} entries (CRAM-MD5, DIGEST-MD5,
 * SCRAM-*), and for SCRAM-* also authPassword from stored SCRAM secrets
 * whose hash is the mechanism's.
 */
static int
ap_lookup(void *glob, sasl_server_params_t *sp, unsigned flags,
    const char *user, unsigned ulen)
{
	struct auth_sasl_req *r = cur_req;
	const struct propval *all, *pv, *apv = NULL;
	struct backend_reply reply;
	struct backend_request breq;
	enum backend_result res;
	char name[BACKEND_MAX_USER + 1], *plain = NULL, *secret = NULL;
	bool scram;

	(void)glob;
	/* Only non-plaintext mechanisms may see a credential. */
	if (r == NULL || r->mech->plaintext || (flags & SASL_AUXPROP_AUTHZID))
		return SASL_OK;
	all = sp->utils->prop_get(sp->propctx);
	pv = ap_find(all, SASL_AUX_PASSWORD);
	scram = strncasecmp(r->mech->name, "SCRAM-", 6) == 0;
	if (scram)
		apv = ap_find(all, AUX_AUTHPASSWORD);
	if (pv == NULL)
		return SASL_OK;            /* nobody asked for the password */
	if ((pv->values != NULL || (apv != NULL && apv->values != NULL)) &&
	    !(flags & SASL_AUXPROP_OVERRIDE))
		return SASL_OK;
	if (ulen == 0 || ulen > BACKEND_MAX_USER) {
		r->verdict = VERDICT_UNKNOWN;
		return SASL_OK;
	}
	memcpy(name, user, ulen);
	name[ulen] = '\0';
	set_user(r, name, ulen);
	breq = (struct backend_request){ r->rip, r->service };
	if (apv != NULL)
		res = backend_chain_lookup_scram_req(as.chain, name, r->mech->name,
		    &plain, &secret, &breq, &reply);
	else
		res = backend_chain_lookup_plain_req(as.chain, name, &plain, &breq,
		    &reply);
	if (res == BACKEND_OK && plain == NULL && secret == NULL)
		res = BACKEND_MISMATCH;     /* a backend broke its contract */
	switch (res) {
	case BACKEND_OK:
		if (plain != NULL)
			ap_set(sp, pv, plain);
		else
			ap_set(sp, apv, secret);
		r->verdict = VERDICT_FOUND;
		copy_str(r->canon, sizeof(r->canon), reply.user);
		copy_str(r->extra, sizeof(r->extra), reply.extra);
		break;
	case BACKEND_UNKNOWN_USER:
		r->verdict = VERDICT_UNKNOWN;
		break;
	case BACKEND_DISABLED:
		r->verdict = VERDICT_DISABLED;
		break;
	case BACKEND_TEMPFAIL:
		r->verdict = VERDICT_TEMPFAIL;
		ap_free(plain);
		ap_free(secret);
		return SASL_UNAVAIL;
	case BACKEND_MISMATCH:
		r->verdict = VERDICT_MISMATCH;
		copy_str(r->reason, sizeof(r->reason), reply.reason);
		break;
	}
	ap_free(plain);
	ap_free(secret);
	return SASL_OK;
}

static sasl_auxprop_plug_t ap_plug = {
	0, 0, NULL, NULL, ap_lookup, auxprop_name, NULL
};

static int
ap_init(const sasl_utils_t *utils, int max_version, int *out_version,
    sasl_auxprop_plug_t **plug, const char *plugname)
{
	(void)utils;
	(void)plugname;
	if (max_version < SASL_AUXPROP_PLUG_VERSION)
		return SASL_BADVERS;
	*out_version = SASL_AUXPROP_PLUG_VERSION;
	*plug = &ap_plug;
	return SASL_OK;
}

/* ---- init ------------------------------------------------------------ */

static void
set_secprops(sasl_conn_t *c)
{
	sasl_security_properties_t sp;

	memset(&sp, 0, sizeof(sp));
	sp.min_ssf = 0;
	sp.max_ssf = 0;          /* authentication only, no security layer */
	sp.maxbufsize = 0;
	sp.security_flags = 0;   /* the SMTP side enforces TLS before AUTH */
	sasl_setprop(c, SASL_SEC_PROPS, &sp);
}

/* mech_in_list - is name a word of Cyrus' space separated list? */
static bool
mech_in_list(const char *list, const char *name)
{
	size_t n = strlen(name);
	const char *p = list;

	while (*p) {
		while (*p == ' ')
			p++;
		if (strncasecmp(p, name, n) == 0 && (p[n] == ' ' || p[n] == '\0'))
			return true;
		while (*p && *p != ' ')
			p++;
	}
	return false;
}

int
auth_sasl_init(const struct msagate_config *cfg, struct backend_chain *chain,
    char **error)
{
	struct sbuf sb;
	sasl_conn_t *probe = NULL;
	const char *avail = NULL;
	size_t i, k;
	int rc;

	*error = NULL;
	memset(&as, 0, sizeof(as));
	as.chain = chain;
	as.hostname = xstrdup(cfg->hostname ? cfg->hostname : "localhost");
	as.allow_authzid = cfg->auth.allow_authzid;
	as.debug = cfg->log.debug;

	sbuf_init(&sb, 0);
	for (i = 0; i < cfg->auth.n_mechanisms; i++) {
		if (i)
			sbuf_addstr(&sb, " ");
		sbuf_addstr(&sb, cfg->auth.mechanisms[i]);
	}
	as.mech_list = xstrdup(sb.s ? sb.s : "");
	sbuf_free(&sb);

	sasl_set_mutex(mutex_alloc, mutex_lock, mutex_unlock, mutex_free);
	rc = sasl_server_init(global_cbs, AUTH_SASL_APPNAME);
	if (rc != SASL_OK) {
		*error = xasprintf("Cyrus SASL initialisation failed: %s",
		    sasl_errstring(rc, NULL, NULL));
		return -1;
	}
	as.active = true;
	rc = sasl_auxprop_add_plugin(auxprop_name, ap_init);
	if (rc != SASL_OK) {
		*error = xasprintf("cannot register the auxprop plugin: %s",
		    sasl_errstring(rc, NULL, NULL));
		return -1;
	}

	/* Which of the configured mechanisms does Cyrus really offer? */
	rc = sasl_server_new("smtp", as.hostname, NULL, NULL, NULL, NULL, 0, &probe);
	if (rc == SASL_OK) {
		set_secprops(probe);
		rc = sasl_listmech(probe, NULL, "", " ", "", &avail, NULL, NULL);
	}
	if (rc != SASL_OK)
		avail = "";
	for (i = 0; i < cfg->auth.n_mechanisms; i++) {
		const char *name = cfg->auth.mechanisms[i];
		bool found = false;

		for (k = 0; k < sizeof(known_mechs) / sizeof(known_mechs[0]); k++) {
			if (strcasecmp(known_mechs[k].name, name) != 0)
				continue;
			found = true;
			if (!mech_in_list(avail, name)) {
				log_warnx("auth: mechanism %s is not provided by the "
				    "installed Cyrus SASL plugins (apt-get install "
				    "libsasl2-modules); not offered", name);
			} else if (known_mechs[k].needs_plain_lookup &&
			    !(strncasecmp(name, "SCRAM-", 6) == 0 ?
			    backend_chain_can_lookup_scram(chain) :
			    backend_chain_can_lookup_plain(chain))) {
				log_warnx("auth: mechanism %s needs plaintext (or stored "
				    "SCRAM) credentials, which the configured backends "
				    "cannot provide; "
				    "not offered", name);
			} else if (auth_sasl_mech_find(name) == NULL &&
			    as.n_mechs < AUTH_SASL_MAX_MECHS) {
				struct auth_mech *m = &as.mechs[as.n_mechs++];
				snprintf(m->name, sizeof(m->name), "%s", known_mechs[k].name);
				m->flags = known_mechs[k].flags;
				m->plaintext = known_mechs[k].plaintext;
			}
			break;
		}
		if (!found)
			log_warnx("auth: mechanism %s is not supported; not offered", name);
	}
	if (probe)
		sasl_dispose(&probe);
	if (as.n_mechs == 0) {
		*error = xstrdup("none of the configured auth mechanisms can be offered");
		return -1;
	}
	return 0;
}

int
auth_sasl_init_proxy(const struct msagate_config *cfg, char **error)
{
	size_t i, k;

	*error = NULL;
	memset(&as, 0, sizeof(as));
	for (i = 0; i < cfg->auth.n_mechanisms; i++) {
		const char *name = cfg->auth.mechanisms[i];

		for (k = 0; k < sizeof(known_mechs) / sizeof(known_mechs[0]); k++)
			if (strcasecmp(known_mechs[k].name, name) == 0)
				break;
		if (k == sizeof(known_mechs) / sizeof(known_mechs[0])) {
			log_warnx("auth: mechanism %s is not supported; not offered", name);
			continue;
		}
		if (auth_sasl_mech_find(name) == NULL && as.n_mechs < AUTH_SASL_MAX_MECHS) {
			struct auth_mech *m = &as.mechs[as.n_mechs++];
			snprintf(m->name, sizeof(m->name), "%s", known_mechs[k].name);
			m->flags = known_mechs[k].flags;
			m->plaintext = known_mechs[k].plaintext;
		}
	}
	if (as.n_mechs == 0) {
		*error = xstrdup("none of the configured auth mechanisms can be offered");
		return -1;
	}
	return 0;
}

void
auth_sasl_done(void)
{
	if (as.active)
		sasl_server_done();
	as.active = false;
	free(as.hostname);
	free(as.mech_list);
	as.hostname = as.mech_list = NULL;
}

/* ---- requests -------------------------------------------------------- */

struct auth_sasl_req *
auth_sasl_req_new(const struct auth_mech *mech, const char *service,
    bool final_data_ok)
{
	struct auth_sasl_req *r = xcalloc(1, sizeof(*r));

	r->mech = mech;
	copy_str(r->service, sizeof(r->service),
	    service && *service ? service : "smtp");
	r->final_data_ok = final_data_ok;
	r->cbs[0] = (sasl_callback_t){ SASL_CB_SERVER_USERDB_CHECKPASS,
	    SASL_FN(cb_checkpass), r };
	r->cbs[1] = (sasl_callback_t){ SASL_CB_CANON_USER,
	    SASL_FN(cb_canon), r };
	r->cbs[2] = (sasl_callback_t){ SASL_CB_PROXY_POLICY,
	    SASL_FN(cb_authorize), r };
	r->cbs[3] = (sasl_callback_t){ SASL_CB_LIST_END, NULL, NULL };
	return r;
}

void
auth_sasl_req_set_rip(struct auth_sasl_req *r, const char *rip)
{
	copy_str(r->rip, sizeof(r->rip), rip ? rip : "");
}

void
auth_sasl_req_free(struct auth_sasl_req *r)
{
	if (r == NULL)
		return;
	if (r->conn)
		sasl_dispose(&r->conn);
	/* no password is ever kept here, only names; wiped all the same
	 * (explicit_bzero: a memset the compiler keeps, not byte by byte) */
	explicit_bzero(r, sizeof(*r));
	free(r);
}

const char *
auth_sasl_req_user(const struct auth_sasl_req *r)
{
	return r->canon[0] && r->verdict != VERDICT_AUTHZ ? r->canon : r->user;
}

enum auth_verdict
auth_sasl_req_verdict(const struct auth_sasl_req *r)
{
	return r->verdict;
}

const char *
auth_sasl_req_extra(const struct auth_sasl_req *r)
{
	return r->extra;
}

const char *
auth_sasl_req_reason(const struct auth_sasl_req *r)
{
	return r->reason;
}

static char *
encode(const char *out, unsigned outlen)
{
	char *b = xmalloc(b64_encoded_len(outlen) + 1);

	b64_encode((const unsigned char *)(out ? out : ""), outlen, b);
	return b;
}

/* verdict_allows_success - Cyrus said OK; do we agree? */
static bool
verdict_allows_success(const struct auth_sasl_req *r)
{
	if (r->mech->plaintext)
		return r->verdict == VERDICT_OK;
	return r->verdict == VERDICT_FOUND;
}

enum auth_sasl_status
auth_sasl_step(struct auth_sasl_req *r, const unsigned char *in, size_t inlen,
    bool have_in, char **out_b64)
{
	const char *out = NULL, *sasl_user = NULL;
	unsigned outlen = 0;
	int rc;

	*out_b64 = NULL;
	if (inlen > 65535)
		return AUTH_SASL_FAIL;
	/* Only PLAIN carries NULs (Dovecot: auth_request_fail_on_nuls). */
	if (have_in && strcasecmp(r->mech->name, "PLAIN") != 0 &&
	    memchr(in, '\0', inlen) != NULL) {
		r->verdict = VERDICT_MISMATCH;
		return AUTH_SASL_FAIL;
	}
	cur_req = r;
	if (!r->started) {
		r->started = true;
		rc = sasl_server_new(r->service, as.hostname, NULL, NULL, NULL,
		    r->cbs, r->final_data_ok ? SASL_SUCCESS_DATA : 0, &r->conn);
		if (rc != SASL_OK) {
			cur_req = NULL;
			log_warnx("auth: sasl_server_new: %s",
			    sasl_errstring(rc, NULL, NULL));
			r->conn = NULL;
			return AUTH_SASL_TEMPFAIL;
		}
		set_secprops(r->conn);
		rc = sasl_server_start(r->conn, r->mech->name,
		    have_in ? (const char *)(in ? in : (const unsigned char *)"") : NULL,
		    (unsigned)inlen, &out, &outlen);
	} else {
		if (r->conn == NULL) {
			cur_req = NULL;
			return AUTH_SASL_TEMPFAIL;
		}
		rc = sasl_server_step(r->conn, in ? (const char *)in : "",
		    (unsigned)inlen, &out, &outlen);
	}
	cur_req = NULL;
	if (r->deferred)
		return AUTH_SASL_DEFERRED;     /* auth_sasl_step_fast starts over */

	if (rc == SASL_CONTINUE) {
		*out_b64 = encode(out, outlen);
		return AUTH_SASL_CONTINUE;
	}
	if (rc == SASL_OK) {
		if (!verdict_allows_success(r)) {
			log_warnx("auth: Cyrus SASL reported success for mechanism %s "
			    "without our verification (verdict %s); refused",
			    r->mech->name, auth_verdict_str(r->verdict));
			return AUTH_SASL_FAIL;
		}
		if (sasl_getprop(r->conn, SASL_USERNAME, (const void **)&sasl_user)
		    == SASL_OK && sasl_user != NULL && strcmp(sasl_user, r->user) != 0) {
			/* a permitted authzid: log in as that user */
			set_user(r, sasl_user, strlen(sasl_user));
			r->canon[0] = '\0';
		}
		if (outlen > 0 && r->final_data_ok)
			*out_b64 = encode(out, outlen);
		return AUTH_SASL_OK;
	}
	if (r->verdict == VERDICT_TEMPFAIL)
		return AUTH_SASL_TEMPFAIL;
	if (r->verdict == VERDICT_NONE &&
	    (rc == SASL_NOMEM || rc == SASL_UNAVAIL || rc == SASL_TRYAGAIN))
		return AUTH_SASL_TEMPFAIL;
	if (log_debug_enabled())
		log_debug("auth: mechanism %s failed: %s (verdict %s)", r->mech->name,
		    sasl_errstring(rc, NULL, NULL), auth_verdict_str(r->verdict));
	return AUTH_SASL_FAIL;
}

bool
auth_sasl_can_step_fast(const struct auth_sasl_req *r)
{
	return r->mech->plaintext && !r->started;
}

/* req_restart - back to a new request: Cyrus' connection and whatever the
 * callbacks noted are dropped. */
static void
req_restart(struct auth_sasl_req *r)
{
	if (r->conn)
		sasl_dispose(&r->conn);
	r->conn = NULL;
	r->started = false;
	r->verdict = VERDICT_NONE;
	r->user[0] = r->canon[0] = r->extra[0] = r->reason[0] = '\0';
	r->pass_expired = false;
	r->deferred = false;
}

enum auth_sasl_status
auth_sasl_step_fast(struct auth_sasl_req *r, const unsigned char *in,
    size_t inlen, bool have_in, char **out_b64)
{
	enum auth_sasl_status st;

	*out_b64 = NULL;
	if (!auth_sasl_can_step_fast(r))
		return AUTH_SASL_DEFERRED;
	r->fast = true;
	st = auth_sasl_step(r, in, inlen, have_in, out_b64);
	r->fast = false;
	if (st == AUTH_SASL_DEFERRED || r->deferred) {
		free(*out_b64);
		*out_b64 = NULL;
		req_restart(r);
		return AUTH_SASL_DEFERRED;
	}
	return st;
}
