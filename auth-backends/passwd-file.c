/*
 * passwd-file.c - the "passwd-file" backend: Dovecot's passwd-file format
 *
 *	user:{SCHEME}hash:uid:gid:gecos:home:shell:extra_fields
 *
 * trailing fields optional, '#' comments and blank lines ignored.  User
 * names may be local@domain; the local part matches exactly, the domain
 * case-insensitively.  The file is loaded into a hash table; lookups
 * notice a changed file (inode, size, mtime; checked at most once a
 * second) and load it again, as does reload() on SIGHUP.  A failed reload
 * keeps the previous table.
 *
 * Extra fields (the 8th field, space separated) that we act on:
 *   nologin         refuse every login (we are no proxy: Dovecot would
 *                   answer OK+nologin for a proxy to act on)
 *   allow_nets=N,.. refuse logins whose client address (rip) is in none of
 *                   the networks, or is unknown
 * A refusal looks exactly like a wrong password from outside (the hash is
 * still computed; BACKEND_MISMATCH) and names its reason for the log.
 * These internal fields are never handed out as reply extra fields.
 * uid, gid and home (fields 3, 4, 6) and userdb_* extra fields answer
 * userdb lookups (lookup_user).
 *
 * With the verified-credential cache (auth.cache_ttl, src/auth-cache.h)
 * a login whose (user, stored hash, password) was verified a short while
 * ago skips only the hash: the key also binds the backend and the table's
 * generation, so a changed hash, and any reload of the file (changed on
 * disk or SIGHUP), can never hit an older entry: that is this file's
 * flush.  Everything else (the user's entry, nologin, allow_nets) is
 * checked on every login, and a refused login (nologin, allow_nets) never
 * uses the cache: it keeps the timing of a wrong password.
 *
 * Lookups run in the auth role's worker threads: the current table is an
 * immutable, reference-counted snapshot swapped under a mutex.  Unknown
 * users cost the same time as a wrong password: a dummy verification runs
 * against a credential of the same file (the first hashed entry's, so the
 * same scheme and cost as most users; the first entry's when all are
 * {PLAIN}), or a fixed SHA512-CRYPT hash when the file is empty.
 * pf_verify_plain_fast answers on the event loop what needs no hash (a
 * {PLAIN} entry, a cache hit) and leaves everything else to a worker.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include "auth-cache.h"
#include "backend.h"
#include "log.h"
#include "pwhash.h"
#include "util.h"

#define PF_MAX_LINE	4096                 /* bytes per line, LF excluded */
#define PF_MAX_FILE	(64 * 1024 * 1024)   /* bytes per file */
#define PF_MAX_WARN	20                   /* bad-line warnings per load */
#define PF_CHECK_MS	1000                 /* stat() the file at most this often */

/* Used for unknown users when the file has no entry to borrow a hash from
 * ("{SHA512-CRYPT}" of a random string nobody knows). */
static const char pf_dummy_hash[] =
    "{SHA512-CRYPT}$6$Q1tvaZVwqoBh0g9t$o8PW6y6v7jB2eM7kBB0FgFeN5HPW3Qwf6EYo"
    "bapa9pktVVJXn2FC5lB2VE5byIVaViEK7poGgkaXV702j.ZOm/";

struct pf_entry {
	struct pf_entry *next;    /* hash chain */
	char *user;               /* normalised: domain lower-cased */
	char *pass;               /* "{SCHEME}..." or "" (no password) */
	char *extra;              /* extra fields, space separated, or NULL */
	char *uid, *gid, *home;   /* userdb fields, or NULL when empty */
};

struct pf_table {
	int refs;                 /* protected by pf_state.lock */
	struct pf_entry **bucket;
	size_t nbucket, n;
	const char *dummy;        /* stored hash used for unknown users */
	uint64_t generation;      /* which load of the file (cache keys) */
};

struct pf_state {
	char *path;
	char *default_domain;
	pthread_mutex_t lock;     /* table, refs, stamp, last_check */
	pthread_mutex_t reload_lock;   /* one loader at a time */
	struct pf_table *table;
	struct {
		dev_t dev;
		ino_t ino;
		off_t size;
		struct timespec mtime;
		bool valid;
	} stamp;
	uint64_t last_check;
	uint64_t loads;           /* successful loads so far (reload_lock) */
	struct auth_cache *cache; /* verified-credential cache, or NULL */
	uint32_t cache_id;        /* our place in the chain, for its keys */
};

/* ---- parsing --------------------------------------------------------- */

static uint64_t
pf_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;     /* FNV-1a */

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

/*
 * pf_normalise - copy user into out (size BACKEND_MAX_USER+1), lower-case
 * the part after the last '@', append @default_domain to bare names.
 * false when the name is empty, too long or has control/space bytes.
 */
static bool
pf_normalise(const char *user, const char *default_domain, char *out)
{
	size_t len = strlen(user);
	char *at;

	if (!backend_name_ok(user, len, " :"))
		return false;
	memcpy(out, user, len + 1);
	if (strchr(out, '@') == NULL && default_domain != NULL &&
	    default_domain[0] != '\0') {
		if (len + 1 + strlen(default_domain) > BACKEND_MAX_USER)
			return false;
		out[len] = '@';
		memcpy(out + len + 1, default_domain, strlen(default_domain) + 1);
	}
	if ((at = strrchr(out, '@')) != NULL)
		for (at++; *at; at++)
			*at = (char)tolower((unsigned char)*at);
	return true;
}

static void
pf_entry_free(struct pf_entry *e)
{
	secure_zero(e->pass, strlen(e->pass));
	free(e->user);
	free(e->pass);
	free(e->extra);
	free(e->uid);
	free(e->gid);
	free(e->home);
	free(e);
}

static void
pf_table_free(struct pf_table *t)
{
	size_t i;

	if (t == NULL)
		return;
	for (i = 0; i < t->nbucket; i++) {
		struct pf_entry *e, *next;
		for (e = t->bucket[i]; e != NULL; e = next) {
			next = e->next;
			pf_entry_free(e);
		}
	}
	free(t->bucket);
	free(t);
}

static struct pf_entry *
pf_table_find(const struct pf_table *t, const char *user)
{
	struct pf_entry *e;

	for (e = t->bucket[pf_hash(user) % t->nbucket]; e != NULL; e = e->next)
		if (strcmp(e->user, user) == 0)
			return e;
	return NULL;
}

/*
 * pf_crypt_plausible - cheap shape check of a crypt(3) string, so that a
 * truncated or mangled hash is reported by `msagated -n` instead of
 * failing at login time.  Unknown prefixes are left to crypt(3).
 */
static bool
pf_crypt_plausible(const char *h)
{
	const char *last = strrchr(h, '$');
	size_t tail = last ? strlen(last + 1) : 0;

	if (strncmp(h, "$6$", 3) == 0)
		return tail == 86 && last > h + 3;
	if (strncmp(h, "$5$", 3) == 0)
		return tail == 43 && last > h + 3;
	if (strncmp(h, "$1$", 3) == 0)
		return tail == 22 && last > h + 3;
	if (h[0] == '$' && h[1] == '2' && h[2] != '\0' && h[3] == '$')
		return strlen(h) == 60;
	if (strncmp(h, "$argon2", 7) == 0)
		return tail >= 16;
	return true;
}

/*
 * pf_parse_line - one non-comment line (no LF) into an entry.  Returns
 * NULL and sets *msg (static text) for a bad line.
 */
static struct pf_entry *
pf_parse_line(char *line, const char *default_domain, const char **msg)
{
	char *f[8], *p = line, user[BACKEND_MAX_USER + 1];
	size_t n = 0;
	struct pf_entry *e;

	/* user, password, uid, gid, gecos, home, shell, then the rest */
	while (n < 7) {
		char *colon = strchr(p, ':');
		f[n++] = p;
		if (colon == NULL) {
			p = NULL;
			break;
		}
		*colon = '\0';
		p = colon + 1;
	}
	if (p != NULL && n == 7)
		f[n++] = p;        /* extra fields may contain ':' */
	if (n < 2) {
		*msg = "missing ':' after the user name";
		return NULL;
	}
	if (f[0][0] == '\0') {
		*msg = "empty user name";
		return NULL;
	}
	if (!pf_normalise(f[0], default_domain, user)) {
		*msg = "invalid user name (too long, or contains spaces or control characters)";
		return NULL;
	}
	if (f[1][0] == '{') {
		const char *end = strchr(f[1], '}');
		char scheme[32];
		size_t sl;

		if (end == NULL) {
			*msg = "password has '{' but no '}'";
			return NULL;
		}
		sl = (size_t)(end - f[1] - 1);
		if (sl == 0 || sl >= sizeof(scheme)) {
			*msg = "unknown password scheme";
			return NULL;
		}
		memcpy(scheme, f[1] + 1, sl);
		scheme[sl] = '\0';
		if (!pwhash_scheme_known(scheme)) {
			*msg = "unknown password scheme (or not compiled in)";
			return NULL;
		}
	} else if (f[1][0] != '\0' && f[1][0] != '$') {
		*msg = "password without a {SCHEME} prefix";
		return NULL;
	}
	{
		const char *data = f[1][0] == '{' ? strchr(f[1], '}') + 1 : f[1];
		if (data[0] == '$' && !pf_crypt_plausible(data)) {
			*msg = "malformed or truncated password hash";
			return NULL;
		}
	}
	e = xcalloc(1, sizeof(*e));
	e->user = xstrdup(user);
	e->pass = xstrdup(f[1]);
	if (n == 8 && f[7][0] != '\0')
		e->extra = xstrdup(f[7]);
	if (n > 2 && f[2][0] != '\0')
		e->uid = xstrdup(f[2]);
	if (n > 3 && f[3][0] != '\0')
		e->gid = xstrdup(f[3]);
	if (n > 5 && f[5][0] != '\0')
		e->home = xstrdup(f[5]);
	return e;
}

/*
 * pf_load - read the whole file.  strict (config check): bad lines are
 * an error, one "PATH:LINE: message" line each (the first PF_MAX_WARN).
 * Otherwise bad lines are logged and skipped.  st receives the file's stat.  NULL + *error on failure.
 */
static struct pf_table *
pf_load(const char *path, const char *default_domain, bool strict,
    struct stat *st, char **error)
{
	FILE *fp;
	int fd, lineno = 0, warned = 0, nbad = 0;
	char *buf;
	struct pf_table *t;
	bool skipping = false;
	struct sbuf bad;

	*error = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd == -1) {
		*error = xasprintf("%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, st) == -1 || !S_ISREG(st->st_mode)) {
		*error = xasprintf("%s: not a regular file", path);
		close(fd);
		return NULL;
	}
	if (st->st_size > PF_MAX_FILE) {
		*error = xasprintf("%s: file larger than %d bytes", path, PF_MAX_FILE);
		close(fd);
		return NULL;
	}
	if ((fp = fdopen(fd, "r")) == NULL) {
		*error = xasprintf("%s: %s", path, strerror(errno));
		close(fd);
		return NULL;
	}
	t = xcalloc(1, sizeof(*t));
	t->nbucket = 64;
	while (t->nbucket < (size_t)st->st_size / 32 && t->nbucket < (1u << 20))
		t->nbucket *= 2;
	t->bucket = xcalloc(t->nbucket, sizeof(*t->bucket));
	buf = xmalloc(PF_MAX_LINE + 2);

	sbuf_init(&bad, 0);
	while (fgets(buf, PF_MAX_LINE + 2, fp) != NULL) {
		size_t len = strlen(buf);
		const char *msg = NULL;
		struct pf_entry *e;
		char *p;

		if (skipping) {            /* rest of an over-long line */
			if (len > 0 && buf[len - 1] == '\n')
				skipping = false;
			continue;
		}
		lineno++;
		if (len > 0 && buf[len - 1] == '\n')
			buf[--len] = '\0';
		else if (len > PF_MAX_LINE) {
			msg = "line too long";
			skipping = true;
		}
		if (msg == NULL) {
			if (len > 0 && buf[len - 1] == '\r')
				buf[--len] = '\0';
			for (p = buf; *p == ' ' || *p == '\t'; p++)
				;
			if (*p == '\0' || *p == '#')
				continue;
			if (memchr(buf, '\0', len) != NULL || strlen(buf) != len)
				msg = "NUL byte in line";
		}
		e = NULL;
		if (msg == NULL)
			e = pf_parse_line(p, default_domain, &msg);
		if (e != NULL && pf_table_find(t, e->user) != NULL) {
			msg = "user listed more than once (the first entry is used)";
			pf_entry_free(e);
			e = NULL;
		}
		if (e == NULL) {
			if (strict) {
				/* every bad line, one "PATH:LINE: message" each */
				if (nbad++ < PF_MAX_WARN)
					sbuf_printf(&bad, "%s%s:%d: %s", nbad > 1 ? "\n" : "",
					    path, lineno, msg);
				continue;
			}
			if (warned++ < PF_MAX_WARN)
				log_warnx("passwd-file %s:%d: %s (line ignored)",
				    path, lineno, msg);
			continue;
		}
		{
			size_t h = pf_hash(e->user) % t->nbucket;
			e->next = t->bucket[h];
			t->bucket[h] = e;
			t->n++;
			/* dummy for unknown users: the first real hash, so that
			 * they cost what a known user costs */
			if (e->pass[0] != '\0' && (t->dummy == NULL ||
			    (pwhash_plaintext(t->dummy) != NULL &&
			    pwhash_plaintext(e->pass) == NULL)))
				t->dummy = e->pass;
		}
	}
	if (ferror(fp))
		*error = xasprintf("%s: read error: %s", path, strerror(errno));
	else if (nbad > 0)
		*error = nbad > PF_MAX_WARN ? xasprintf("%s\n%s: %d more bad lines",
		    bad.s, path, nbad - PF_MAX_WARN) : xstrdup(bad.s);
	else if (t->dummy == NULL)
		t->dummy = pf_dummy_hash;
	sbuf_free(&bad);
	secure_zero(buf, PF_MAX_LINE + 2);
	free(buf);
	fclose(fp);
	if (*error != NULL) {
		pf_table_free(t);
		return NULL;
	}
	return t;
}

/* ---- state, snapshots and reloading ------------------------------------ */

static bool
pf_stamp_same(const struct pf_state *s, const struct stat *st)
{
	return s->stamp.valid && s->stamp.dev == st->st_dev &&
	    s->stamp.ino == st->st_ino && s->stamp.size == st->st_size &&
	    s->stamp.mtime.tv_sec == st->st_mtim.tv_sec &&
	    s->stamp.mtime.tv_nsec == st->st_mtim.tv_nsec;
}

static void
pf_stamp_set(struct pf_state *s, const struct stat *st)
{
	s->stamp.dev = st->st_dev;
	s->stamp.ino = st->st_ino;
	s->stamp.size = st->st_size;
	s->stamp.mtime = st->st_mtim;
	s->stamp.valid = true;
}

static void
pf_release(struct pf_state *s, struct pf_table *t)
{
	bool dead;

	pthread_mutex_lock(&s->lock);
	dead = --t->refs == 0;
	pthread_mutex_unlock(&s->lock);
	if (dead)
		pf_table_free(t);
}

/*
 * pf_do_reload - load the file and swap it in.  Failures keep the old
 * table; the stamp is still recorded so that a broken file is reported
 * once per change, not on every lookup.
 */
static int
pf_do_reload(struct pf_state *s, const char *why)
{
	struct pf_table *t, *old = NULL;
	struct stat st;
	char *err = NULL;
	int rc = 0;

	pthread_mutex_lock(&s->reload_lock);
	t = pf_load(s->path, s->default_domain, false, &st, &err);
	if (t != NULL)
		t->generation = ++s->loads;
	pthread_mutex_lock(&s->lock);
	if (t != NULL) {
		t->refs = 1;
		old = s->table;
		s->table = t;
		pf_stamp_set(s, &st);
	} else {
		struct stat st2;
		if (stat(s->path, &st2) == 0)
			pf_stamp_set(s, &st2);
		rc = -1;
	}
	pthread_mutex_unlock(&s->lock);
	if (t != NULL)
		log_info("passwd-file %s: %zu users loaded (%s)", s->path, t->n, why);
	else
		log_warnx("passwd-file %s: not reloaded, keeping the previous users: %s",
		    s->path, err);
	free(err);
	if (old != NULL)
		pf_release(s, old);
	pthread_mutex_unlock(&s->reload_lock);
	return rc;
}

/* pf_acquire - the current table (a reference), reloading it first when
 * the file changed; at most one stat() per PF_CHECK_MS. */
static struct pf_table *
pf_acquire(struct pf_state *s)
{
	struct pf_table *t;
	bool check = false;
	uint64_t now = now_ms();
	struct stat st;

	pthread_mutex_lock(&s->lock);
	if (now - s->last_check >= PF_CHECK_MS) {
		s->last_check = now;
		check = true;
	}
	pthread_mutex_unlock(&s->lock);
	if (check && stat(s->path, &st) == 0) {
		bool same;
		pthread_mutex_lock(&s->lock);
		same = pf_stamp_same(s, &st);
		pthread_mutex_unlock(&s->lock);
		if (!same)
			pf_do_reload(s, "file changed");
	}
	pthread_mutex_lock(&s->lock);
	t = s->table;
	if (t != NULL)
		t->refs++;
	pthread_mutex_unlock(&s->lock);
	return t;
}

/* pf_find - the entry of the login name user in t (normalised as the
 * file's names are), or NULL. */
static struct pf_entry *
pf_find(const struct pf_state *s, const struct pf_table *t, const char *user)
{
	char norm[BACKEND_MAX_USER + 1];

	if (!pf_normalise(user, s->default_domain, norm))
		return NULL;
	return pf_table_find(t, norm);
}

/* ---- the backend interface --------------------------------------------- */

/* pf_load_cfg - pf_load of the configured file; NULL + *error without a
 * path too. */
static struct pf_table *
pf_load_cfg(const struct backend_cfg *cfg, bool strict, struct stat *st,
    char **error)
{
	if (cfg->path == NULL || cfg->path[0] == '\0') {
		*error = xstrdup("passwd-file backend needs a path");
		return NULL;
	}
	return pf_load(cfg->path, cfg->default_domain, strict, st, error);
}

static int
pf_check(const struct backend_cfg *cfg, char **error)
{
	struct pf_table *t;
	struct stat st;

	if ((t = pf_load_cfg(cfg, true, &st, error)) == NULL)
		return -1;
	pf_table_free(t);
	return 0;
}

static int
pf_init(const struct backend_cfg *cfg, void **state, char **error)
{
	struct pf_state *s;
	struct pf_table *t;
	struct stat st;

	if ((t = pf_load_cfg(cfg, false, &st, error)) == NULL)
		return -1;
	s = xcalloc(1, sizeof(*s));
	s->path = xstrdup(cfg->path);
	if (cfg->default_domain)
		s->default_domain = xstrdup(cfg->default_domain);
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->reload_lock, NULL);
	t->refs = 1;
	t->generation = ++s->loads;
	s->table = t;
	pf_stamp_set(s, &st);
	s->last_check = now_ms();
	log_info("passwd-file %s: %zu users loaded", s->path, t->n);
	*state = s;
	return 0;
}

static void
pf_deinit(void *state)
{
	struct pf_state *s = state;

	if (s == NULL)
		return;
	if (s->table)
		pf_release(s, s->table);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->reload_lock);
	free(s->path);
	free(s->default_domain);
	free(s);
}

static int
pf_reload(void *state)
{
	return pf_do_reload(state, "reload");
}

/* pf_set_cache - the chain's verified-credential cache (NULL: none). */
static void
pf_set_cache(void *state, struct auth_cache *cache, unsigned id)
{
	struct pf_state *s = state;

	s->cache = cache;
	s->cache_id = (uint32_t)id;
}

/*
 * pf_hash_key - the cache key of (this backend, the table's generation,
 * the user, the stored hash, the password); -1: do not use the cache.
 */
static int
pf_hash_key(struct pf_state *s, const struct pf_table *t,
    const struct pf_entry *e, const char *password, struct auth_cache_key *k)
{
	static const char tag[] = "msagate passwd-file v1";
	uint64_t gen = t->generation;
	struct auth_cache_field f[] = {
		{ tag, sizeof(tag) - 1 }, { &s->cache_id, sizeof(s->cache_id) },
		{ &gen, sizeof(gen) }, { e->user, strlen(e->user) },
		{ e->pass, strlen(e->pass) }, { password, strlen(password) },
	};

	return auth_cache_key(s->cache, f, sizeof(f) / sizeof(f[0]), k);
}

/*
 * pf_verify_hash - pwhash_verify(e->pass, password) through the cache:
 * the key binds this backend, the table's generation, the user, the
 * stored hash and the password; only a PWHASH_OK is remembered.  The
 * key is computed before the check, so a flush meanwhile (a new key)
 * keeps its result out of the cache.
 */
static enum pwhash_result
pf_verify_hash(struct pf_state *s, const struct pf_table *t,
    const struct pf_entry *e, const char *password)
{
	struct auth_cache_key k;
	enum pwhash_result pr;

	/* {PLAIN} costs less than the MAC: no entry for it */
	if (s->cache == NULL || pwhash_plaintext(e->pass) != NULL ||
	    pf_hash_key(s, t, e, password, &k) != 0)
		return pwhash_verify(e->pass, password);
	if (auth_cache_lookup(s->cache, &k, NULL, NULL)) {
		auth_cache_log_debug(s->cache, true, "passwd-file", e->user);
		return PWHASH_OK;
	}
	auth_cache_log_debug(s->cache, false, "passwd-file", e->user);
	pr = pwhash_verify(e->pass, password);
	if (pr == PWHASH_OK)
		auth_cache_insert(s->cache, &k, NULL, 0);
	return pr;
}

/* pf_internal_field - extra fields we act on ourselves, never handed out. */
static bool
pf_internal_field(const char *tok)
{
	static const char *const internal[] = { "nologin", "allow_nets", "nodelay" };
	size_t i, n;

	for (i = 0; i < sizeof(internal) / sizeof(internal[0]); i++) {
		n = strlen(internal[i]);
		if (strncmp(tok, internal[i], n) == 0 &&
		    (tok[n] == '\0' || tok[n] == '='))
			return true;
	}
	return false;
}

/* pf_fill_reply - canonical name and the non-internal extra fields. */
static void
pf_fill_reply(struct backend_reply *r, const struct pf_entry *e)
{
	snprintf(r->user, sizeof(r->user), "%s", e->user);
	r->extra[0] = '\0';
	if (e->extra != NULL) {
		char *copy = xstrdup(e->extra), *tok, *save = NULL;
		size_t len = 0;

		for (tok = strtok_r(copy, " ", &save); tok != NULL;
		    tok = strtok_r(NULL, " ", &save)) {
			size_t tl = strlen(tok);
			if (pf_internal_field(tok))
				continue;
			if (len + (len ? 1 : 0) + tl >= sizeof(r->extra))
				break;          /* bounded: drop what does not fit */
			if (len)
				r->extra[len++] = ' ';
			memcpy(r->extra + len, tok, tl + 1);
			len += tl;
		}
		free(copy);
	}
}

/*
 * pf_rip_in_nets - is the client address rip inside one of the
 * comma-separated networks?  false for an unknown/unparsable rip; an
 * unparsable network is logged and never matches (Dovecot fails too).
 */
static bool
pf_rip_in_nets(const struct pf_state *s, const struct pf_entry *e,
    const char *rip, const char *nets)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	char net[INET6_ADDRSTRLEN + 8];
	const char *p = nets;

	memset(&ss, 0, sizeof(ss));
	if (rip == NULL || *rip == '\0')
		return false;
	if (inet_pton(AF_INET, rip, &sin->sin_addr) == 1)
		ss.ss_family = AF_INET;
	else if (inet_pton(AF_INET6, rip, &sin6->sin6_addr) == 1)
		ss.ss_family = AF_INET6;
	else
		return false;
	while (*p != '\0') {
		size_t n = strcspn(p, ",");
		struct cidr c;

		if (n > 0 && n < sizeof(net)) {
			memcpy(net, p, n);
			net[n] = '\0';
			if (cidr_parse(net, &c) == 0) {
				if (cidr_match(&c, (struct sockaddr *)&ss))
					return true;
			} else {
				char safe[96];
				log_warnx("passwd-file %s: user %s: allow_nets: invalid network '%s'",
				    s->path, e->user, log_safe(safe, sizeof(safe), net, 60));
			}
		}
		p += n;
		if (*p == ',')
			p++;
	}
	return false;
}

/*
 * pf_refusal - the reason (static text) why e may not log in from this
 * request, or NULL: "nologin", "allow_nets".
 */
static const char *
pf_refusal(const struct pf_state *s, const struct pf_entry *e,
    const struct backend_request *req)
{
	char *copy, *tok, *save = NULL;
	const char *why = NULL;

	if (e->extra == NULL)
		return NULL;
	copy = xstrdup(e->extra);
	for (tok = strtok_r(copy, " ", &save); tok != NULL && why == NULL;
	    tok = strtok_r(NULL, " ", &save)) {
		if (strcmp(tok, "nologin") == 0 || strncmp(tok, "nologin=", 8) == 0)
			why = "nologin";
		else if (strncmp(tok, "allow_nets=", 11) == 0 &&
		    !pf_rip_in_nets(s, e, req ? req->rip : NULL, tok + 11))
			why = "allow_nets";
	}
	free(copy);
	return why;
}

/*
 * pf_verify_plain_req - check the password, then the entry's access
 * fields.  A refused login is a MISMATCH whatever the password was (the
 * hash always runs: same answer and timing as a wrong password).
 */
static enum backend_result
pf_verify_plain_req(void *state, const char *user, const char *password,
    const struct backend_request *req, struct backend_reply *r)
{
	const char *why;
	struct pf_state *s = state;
	struct pf_table *t;
	struct pf_entry *e;
	enum backend_result res;
	enum pwhash_result pr;

	t = pf_acquire(s);
	if (t == NULL)
		return BACKEND_TEMPFAIL;
	e = pf_find(s, t, user);
	if (e == NULL || e->pass[0] == '\0') {
		/* Same work as a real check, result thrown away. */
		(void)pwhash_verify(t->dummy, password);
		res = e == NULL ? BACKEND_UNKNOWN_USER : BACKEND_MISMATCH;
		goto out;
	}
	why = pf_refusal(s, e, req);
	/* a refusal always pays the full hash, as a wrong password does */
	pr = why == NULL ? pf_verify_hash(s, t, e, password) :
	    pwhash_verify(e->pass, password);
	if (why != NULL && pr != PWHASH_ERROR) {
		snprintf(r->reason, sizeof(r->reason), "%s", why);
		res = BACKEND_MISMATCH;
	} else if (pr == PWHASH_OK) {
		pf_fill_reply(r, e);
		res = BACKEND_OK;
	} else if (pr == PWHASH_MISMATCH) {
		res = BACKEND_MISMATCH;
	} else {
		char safe[128];
		log_warnx("passwd-file %s: user %s: malformed or unsupported password hash",
		    s->path, log_safe(safe, sizeof(safe), e->user, 64));
		res = BACKEND_TEMPFAIL;
	}
out:
	pf_release(s, t);
	return res;
}

static enum backend_result
pf_verify_plain(void *state, const char *user, const char *password,
    struct backend_reply *r)
{
	return pf_verify_plain_req(state, user, password, NULL, r);
}

/* pf_acquire_fast - the current table (a reference), or NULL when it is
 * time to look at the file again: that stat() (and a re-read) is left to
 * pf_acquire on a worker. */
static struct pf_table *
pf_acquire_fast(struct pf_state *s)
{
	struct pf_table *t = NULL;
	uint64_t now = now_ms();

	pthread_mutex_lock(&s->lock);
	if (now - s->last_check < PF_CHECK_MS && (t = s->table) != NULL)
		t->refs++;
	pthread_mutex_unlock(&s->lock);
	return t;
}

/* pf_has_access_fields - might e's extra fields refuse some logins
 * (nologin, allow_nets)?  Erring on the side of yes. */
static bool
pf_has_access_fields(const struct pf_entry *e)
{
	return e->extra != NULL && (strstr(e->extra, "nologin") != NULL ||
	    strstr(e->extra, "allow_nets") != NULL);
}

/*
 * pf_verify_plain_fast - pf_verify_plain_req for what costs no hash (the
 * event loop's quick answer): a known user without access fields whose
 * entry is {PLAIN} (a constant-time comparison; only a match is answered
 * here) or whose
 * (hash, password) is in the cache (a hit; a miss may be a wrong
 * password and needs the hash).  Unknown users (a dummy hash), users
 * with nologin/allow_nets (refusals pay the full hash), a file due for
 * its stat() and malformed entries are left to the real check.
 */
static bool
pf_verify_plain_fast(void *state, const char *user, const char *password,
    const struct backend_request *req, struct backend_reply *r,
    enum backend_result *res)
{
	struct pf_state *s = state;
	struct pf_table *t;
	struct pf_entry *e;
	struct auth_cache_key k;
	enum pwhash_result pr;
	bool answered = false;

	(void)req;
	if ((t = pf_acquire_fast(s)) == NULL)
		return false;
	e = pf_find(s, t, user);
	if (e == NULL || e->pass[0] == '\0' || pf_has_access_fields(e))
		goto out;
	if (pwhash_plaintext(e->pass) != NULL)
		pr = pwhash_verify(e->pass, password);
	else if (s->cache != NULL && pf_hash_key(s, t, e, password, &k) == 0 &&
	    auth_cache_peek(s->cache, &k, NULL, NULL)) {
		auth_cache_log_debug(s->cache, true, "passwd-file", e->user);
		pr = PWHASH_OK;
	} else
		goto out;
	if (pr == PWHASH_OK) {
		pf_fill_reply(r, e);
		*res = BACKEND_OK;
		answered = true;
	}
	/*
	 * A mismatch goes the same way as an unknown user (the worker), so
	 * the quick answer says nothing about which names exist; a
	 * PWHASH_ERROR too: the real check logs the broken entry.
	 */
out:
	pf_release(s, t);
	return answered;
}

/*
 * pf_lookup_cred - lookup_plain_req (secret NULL) and lookup_scram_req:
 * the {PLAIN} credential, or with secret the entry's {SCRAM-SHA-*} stored
 * secret when its hash is mech's (as Cyrus' authPassword); MISMATCH, with
 * the reason, when the entry's access fields refuse this request.
 */
static enum backend_result
pf_lookup_cred(struct pf_state *s, const char *user, const char *mech,
    char **plain, char **secret, const struct backend_request *req,
    struct backend_reply *r)
{
	const char *why, *p;
	struct pf_table *t;
	struct pf_entry *e;
	enum backend_result res;

	*plain = NULL;
	if (secret != NULL)
		*secret = NULL;
	t = pf_acquire(s);
	if (t == NULL)
		return BACKEND_TEMPFAIL;
	e = pf_find(s, t, user);
	if (e == NULL) {
		res = BACKEND_UNKNOWN_USER;
	} else if ((why = pf_refusal(s, e, req)) != NULL) {
		snprintf(r->reason, sizeof(r->reason), "%s", why);
		res = BACKEND_MISMATCH;
	} else if ((p = pwhash_plaintext(e->pass)) != NULL) {
		*plain = xstrdup(p);
		pf_fill_reply(r, e);
		res = BACKEND_OK;
	} else if (secret != NULL &&
	    (*secret = pwhash_scram_secret(e->pass, mech)) != NULL) {
		pf_fill_reply(r, e);
		res = BACKEND_OK;
	} else {
		res = BACKEND_MISMATCH;    /* exists, but no usable credential */
	}
	pf_release(s, t);
	return res;
}

static enum backend_result
pf_lookup_plain_req(void *state, const char *user, char **plain,
    const struct backend_request *req, struct backend_reply *r)
{
	return pf_lookup_cred(state, user, NULL, plain, NULL, req, r);
}

static enum backend_result
pf_lookup_plain(void *state, const char *user, char **plain,
    struct backend_reply *r)
{
	return pf_lookup_cred(state, user, NULL, plain, NULL, NULL, r);
}

static enum backend_result
pf_lookup_scram_req(void *state, const char *user, const char *mech,
    char **plain, char **secret, const struct backend_request *req,
    struct backend_reply *r)
{
	return pf_lookup_cred(state, user, mech, plain, secret, req, r);
}

/* pf_add_field - append "k=v" (TAB-separated) to out if it fits. */
static void
pf_add_field(char *out, size_t size, const char *k, const char *v)
{
	size_t len = strlen(out), need = strlen(k) + 1 + strlen(v) + (len ? 1 : 0);

	if (len + need >= size || strchr(v, '\t') != NULL || strchr(v, '\n') != NULL)
		return;
	snprintf(out + len, size - len, "%s%s=%s", len ? "\t" : "", k, v);
}

/*
 * pf_lookup_user - userdb lookup: the entry exists (default_domain
 * applies as for logins).  Fields: uid, gid, home from the entry, and
 * the entry's userdb_* extra fields without their prefix.  Existence is
 * all that is told: nologin users still exist (they may receive mail).
 */
static enum backend_result
pf_lookup_user(void *state, const char *user, struct backend_reply *r)
{
	struct pf_state *s = state;
	struct pf_table *t;
	struct pf_entry *e;

	t = pf_acquire(s);
	if (t == NULL)
		return BACKEND_TEMPFAIL;
	e = pf_find(s, t, user);
	if (e == NULL) {
		pf_release(s, t);
		return BACKEND_UNKNOWN_USER;
	}
	snprintf(r->user, sizeof(r->user), "%s", e->user);
	r->extra[0] = '\0';
	if (e->uid)
		pf_add_field(r->extra, sizeof(r->extra), "uid", e->uid);
	if (e->gid)
		pf_add_field(r->extra, sizeof(r->extra), "gid", e->gid);
	if (e->home)
		pf_add_field(r->extra, sizeof(r->extra), "home", e->home);
	if (e->extra != NULL) {
		char *copy = xstrdup(e->extra), *tok, *save = NULL, *eq;

		for (tok = strtok_r(copy, " ", &save); tok != NULL;
		    tok = strtok_r(NULL, " ", &save)) {
			if (strncmp(tok, "userdb_", 7) != 0 || tok[7] == '\0')
				continue;
			if ((eq = strchr(tok, '=')) != NULL)
				*eq++ = '\0';
			/* never a credential, whatever the file says */
			if (strncmp(tok + 7, "pass", 4) == 0)
				continue;
			pf_add_field(r->extra, sizeof(r->extra), tok + 7, eq ? eq : "");
		}
		free(copy);
	}
	pf_release(s, t);
	return BACKEND_OK;
}

const struct auth_backend_ops backend_passwd_file = {
	.name = "passwd-file",
	.check = pf_check,
	.init = pf_init,
	.deinit = pf_deinit,
	.verify_plain = pf_verify_plain,
	.lookup_plain = pf_lookup_plain,
	.reload = pf_reload,
	.verify_plain_req = pf_verify_plain_req,
	.lookup_plain_req = pf_lookup_plain_req,
	.lookup_user = pf_lookup_user,
	.lookup_scram_req = pf_lookup_scram_req,
	.set_cache = pf_set_cache,
	.verify_plain_fast = pf_verify_plain_fast,
};
