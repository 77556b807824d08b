/*
 * config.c - loading msagate.conf (libconfig syntax) into struct
 * msagate_config: defaults, types, known keys and value checks.  Every
 * problem is recorded as "FILE:LINE: message" so that `msagated -n` can
 * print them all; the daemon refuses to start with any.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <sys/stat.h>
#include <libconfig.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/ssl.h>

#include "config.h"
#include "log.h"
#include "util.h"

/* What the loader is working on: the file name and the error list. */
struct loader {
	const char *file;
	struct config_errors *errs;
	struct msagate_config *cfg;  /* where get_str records lines */
};

void
config_errors_add(struct config_errors *errs, const char *file, int line,
    const char *fmt, ...)
{
	va_list ap;
	char *msg, *full;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		fatalx("out of memory");
	va_end(ap);
	if (line > 0)
		full = xasprintf("%s:%d: %s", file, line, msg);
	else
		full = xasprintf("%s: %s", file, msg);
	free(msg);
	errs->msg = xrealloc(errs->msg, (errs->n + 1) * sizeof(char *));
	errs->msg[errs->n++] = full;
}

void
config_errors_free(struct config_errors *errs)
{
	size_t i;

	for (i = 0; i < errs->n; i++)
		free(errs->msg[i]);
	free(errs->msg);
	errs->msg = NULL;
	errs->n = 0;
}

static int
line_of(const config_setting_t *s)
{
	return s ? (int)config_setting_source_line(s) : 0;
}

/* record_line - remember where setting s is ("relay.delivery.path"); not
 * for settings inside lists (backends and listeners keep their own). */
static void
record_line(struct loader *L, const config_setting_t *s)
{
	char path[256] = "";
	const config_setting_t *p;
	struct msagate_config *cfg = L->cfg;

	if (cfg == NULL || s == NULL)
		return;
	for (p = s; p != NULL && config_setting_parent(p) != NULL;
	    p = config_setting_parent(p)) {
		const char *name = config_setting_name(p);
		char tmp[256];

		if (name == NULL)
			return;
		snprintf(tmp, sizeof(tmp), "%s%s%s", name, path[0] ? "." : "", path);
		snprintf(path, sizeof(path), "%s", tmp);
	}
	cfg->key_lines = xrealloc(cfg->key_lines,
	    (cfg->n_key_lines + 1) * sizeof(*cfg->key_lines));
	cfg->key_lines[cfg->n_key_lines].path = xstrdup(path);
	cfg->key_lines[cfg->n_key_lines++].line = line_of(s);
}

int
config_line(const struct msagate_config *cfg, const char *path)
{
	for (size_t i = 0; i < cfg->n_key_lines; i++)
		if (strcmp(cfg->key_lines[i].path, path) == 0)
			return cfg->key_lines[i].line;
	return 0;
}

/* check_keys - report every member of group s whose name is not in known[]. */
static void
check_keys(struct loader *L, const config_setting_t *s, const char *where,
    const char *const known[])
{
	int i, n;

	if (s == NULL || !config_setting_is_group(s))
		return;
	n = config_setting_length(s);
	for (i = 0; i < n; i++) {
		config_setting_t *m = config_setting_get_elem(s, (unsigned)i);
		const char *name = config_setting_name(m);
		size_t k;
		bool ok = false;

		for (k = 0; known[k]; k++)
			if (name && strcmp(name, known[k]) == 0)
				ok = true;
		if (!ok)
			config_errors_add(L->errs, L->file, line_of(m),
			    "unknown key \"%s%s%s\"", where, *where ? "." : "",
			    name ? name : "?");
	}
}

/* get_str - optional string member; wrong type is an error. */
static char *
get_str(struct loader *L, const config_setting_t *g, const char *key,
    const char *def)
{
	config_setting_t *s = g ? config_setting_get_member(g, key) : NULL;

	if (s == NULL)
		return def ? xstrdup(def) : NULL;
	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		config_errors_add(L->errs, L->file, line_of(s),
		    "\"%s\" must be a string", key);
		return def ? xstrdup(def) : NULL;
	}
	record_line(L, s);
	return xstrdup(config_setting_get_string(s));
}

/* get_int - optional integer member within [min,max]. */
static long long
get_int(struct loader *L, const config_setting_t *g, const char *key,
    long long def, long long min, long long max)
{
	config_setting_t *s = g ? config_setting_get_member(g, key) : NULL;
	long long v;

	if (s == NULL)
		return def;
	if (config_setting_type(s) == CONFIG_TYPE_INT)
		v = config_setting_get_int(s);
	else if (config_setting_type(s) == CONFIG_TYPE_INT64)
		v = config_setting_get_int64(s);
	else {
		config_errors_add(L->errs, L->file, line_of(s),
		    "\"%s\" must be an integer", key);
		return def;
	}
	if (v < min || v > max) {
		config_errors_add(L->errs, L->file, line_of(s),
		    "\"%s\" = %lld is out of range (%lld..%lld)", key, v, min, max);
		return def;
	}
	return v;
}

/* get_ms - optional duration in seconds (integer or float) as milliseconds. */
static int
get_ms(struct loader *L, const config_setting_t *g, const char *key,
    int def_ms, int max_ms)
{
	config_setting_t *s = g ? config_setting_get_member(g, key) : NULL;
	double v;

	if (s == NULL)
		return def_ms;
	switch (config_setting_type(s)) {
	case CONFIG_TYPE_INT: v = config_setting_get_int(s); break;
	case CONFIG_TYPE_INT64: v = (double)config_setting_get_int64(s); break;
	case CONFIG_TYPE_FLOAT: v = config_setting_get_float(s); break;
	default:
		config_errors_add(L->errs, L->file, line_of(s),
		    "\"%s\" must be a number of seconds", key);
		return def_ms;
	}
	if (v < 0 || v * 1000 > max_ms) {
		config_errors_add(L->errs, L->file, line_of(s),
		    "\"%s\" = %g is out of range (0..%d seconds)", key, v, max_ms / 1000);
		return def_ms;
	}
	return (int)(v * 1000 + 0.5);
}

static bool
get_bool(struct loader *L, const config_setting_t *g, const char *key, bool def)
{
	config_setting_t *s = g ? config_setting_get_member(g, key) : NULL;

	if (s == NULL)
		return def;
	if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
		config_errors_add(L->errs, L->file, line_of(s),
		    "\"%s\" must be true or false", key);
		return def;
	}
	return config_setting_get_bool(s);
}

/* get_strlist - optional array/list of strings. */
static char **
get_strlist(struct loader *L, const config_setting_t *g, const char *key,
    size_t *n_out)
{
	config_setting_t *s = g ? config_setting_get_member(g, key) : NULL;
	char **v;
	int i, n;

	*n_out = 0;
	if (s == NULL)
		return NULL;
	if (!config_setting_is_aggregate(s) || config_setting_is_group(s)) {
		config_errors_add(L->errs, L->file, line_of(s),
		    "\"%s\" must be a list of strings, e.g. [ \"a\", \"b\" ]", key);
		return NULL;
	}
	n = config_setting_length(s);
	v = xcalloc((size_t)n + 1, sizeof(char *));
	for (i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		if (config_setting_type(e) != CONFIG_TYPE_STRING) {
			config_errors_add(L->errs, L->file, line_of(e) ? line_of(e) :
			    line_of(s), "\"%s\" must contain only strings", key);
			continue;
		}
		v[(*n_out)++] = xstrdup(config_setting_get_string(e));
	}
	return v;
}

static void
free_strlist(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/*
 * cidr_parse - "a.b.c.d[/n]" or "v6[/n]"; IPv4 is stored v4-mapped with the
 * prefix moved into the v6 space.  Host bits must be zero (exactness).
 */
int
cidr_parse(const char *s, struct cidr *out)
{
	char buf[INET6_ADDRSTRLEN + 8], *slash;
	unsigned long long plen;
	int maxp, base;
	struct in_addr a4;
	int i;

	if (strlen(s) >= sizeof(buf))
		return -1;
	strcpy(buf, s);
	slash = strchr(buf, '/');
	if (slash)
		*slash++ = '\0';
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, buf, &a4) == 1) {
		out->addr[10] = out->addr[11] = 0xff;
		memcpy(out->addr + 12, &a4, 4);
		maxp = 32;
		base = 96;
	} else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
		maxp = 128;
		base = 0;
	} else
		return -1;
	plen = (unsigned long long)maxp;
	if (slash && !parse_uint(slash, (unsigned long long)maxp, &plen))
		return -1;
	out->prefix = base + (int)plen;
	for (i = out->prefix; i < 128; i++)
		if (out->addr[i / 8] & (0x80 >> (i % 8)))
			return -1;   /* host bits set: not exact */
	return 0;
}

bool
cidr_match(const struct cidr *c, const struct sockaddr *sa)
{
	uint8_t a[16];
	int i;

	memset(a, 0, sizeof(a));
	if (sa->sa_family == AF_INET) {
		a[10] = a[11] = 0xff;
		memcpy(a + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6)
		memcpy(a, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
	else
		return false;
	for (i = 0; i < c->prefix; i++) {
		uint8_t m = (uint8_t)(0x80 >> (i % 8));
		if ((a[i / 8] & m) != (c->addr[i / 8] & m))
			return false;
	}
	return true;
}

/* valid_hostname - letters, digits, '-', '.', no empty labels. */
static bool
valid_hostname(const char *h)
{
	size_t len = strlen(h), lab = 0;
	const char *p;

	if (len == 0 || len > 253)
		return false;
	for (p = h; *p; p++) {
		if (*p == '.') {
			if (lab == 0)
				return false;
			lab = 0;
		} else if (isalnum((unsigned char)*p) || *p == '-') {
			if (++lab > 63)
				return false;
		} else
			return false;
	}
	return lab > 0;
}

static void
load_listen(struct loader *L, struct msagate_config *cfg, const config_setting_t *root)
{
	static const char *const keys[] = { "address", "port", "role", "tls", NULL };
	config_setting_t *ls = config_setting_get_member(root, "listen");
	int i, n;

	if (ls == NULL) {
		config_errors_add(L->errs, L->file, 1, "no \"listen\" list: nothing to serve");
		return;
	}
	if (!config_setting_is_list(ls) && !config_setting_is_array(ls)) {
		config_errors_add(L->errs, L->file, line_of(ls),
		    "\"listen\" must be a list of groups: ( { ... }, { ... } )");
		return;
	}
	n = config_setting_length(ls);
	if (n == 0)
		config_errors_add(L->errs, L->file, line_of(ls),
		    "\"listen\" is empty: nothing to serve");
	cfg->listen = xcalloc((size_t)n + 1, sizeof(*cfg->listen));
	for (i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(ls, (unsigned)i);
		struct listen_cfg *l = &cfg->listen[cfg->n_listen];
		char *role, *tls;
		struct in6_addr tmp;

		if (!config_setting_is_group(e)) {
			config_errors_add(L->errs, L->file, line_of(ls),
			    "listen entry %d must be a group { address = ...; port = ...; }", i + 1);
			continue;
		}
		check_keys(L, e, "listen", keys);
		l->line = line_of(e);
		l->address = get_str(L, e, "address", "127.0.0.1");
		l->port = (int)get_int(L, e, "port", 0, 1, 65535);
		role = get_str(L, e, "role", "submission");
		tls = get_str(L, e, "tls", NULL);
		if (l->port == 0 && config_setting_get_member(e, "port") == NULL)
			config_errors_add(L->errs, L->file, l->line, "listen entry needs a \"port\"");
		if (inet_pton(AF_INET, l->address, &tmp) != 1 &&
		    inet_pton(AF_INET6, l->address, &tmp) != 1)
			config_errors_add(L->errs, L->file, l->line,
			    "listen address \"%s\" is not an IPv4 or IPv6 address", l->address);
		if (strcmp(role, "submission") == 0)
			l->role = LISTEN_SUBMISSION;
		else if (strcmp(role, "relay") == 0)
			l->role = LISTEN_RELAY;
		else
			config_errors_add(L->errs, L->file, l->line,
			    "listen role \"%s\" unknown (submission or relay)", role);
		if (tls == NULL)
			l->tls = l->role == LISTEN_RELAY ? LISTEN_TLS_STARTTLS : LISTEN_TLS_NONE;
		else if (strcmp(tls, "starttls") == 0)
			l->tls = LISTEN_TLS_STARTTLS;
		else if (strcmp(tls, "implicit") == 0)
			l->tls = LISTEN_TLS_IMPLICIT;
		else if (strcmp(tls, "none") == 0)
			l->tls = LISTEN_TLS_NONE;
		else
			config_errors_add(L->errs, L->file, l->line,
			    "listen tls \"%s\" unknown (starttls, implicit or none)", tls);
		if (l->role == LISTEN_SUBMISSION && l->tls == LISTEN_TLS_NONE)
			config_errors_add(L->errs, L->file, l->line,
			    "a submission listener needs tls = \"starttls\" or \"implicit\" (RFC 8314)");
		if (l->role == LISTEN_RELAY && l->tls == LISTEN_TLS_IMPLICIT)
			config_errors_add(L->errs, L->file, l->line,
			    "a relay listener takes tls = \"starttls\" or \"none\" (MTAs do not "
			    "speak implicit TLS on port 25)");
		free(role);
		free(tls);
		cfg->n_listen++;
	}
	for (i = 0; i < (int)cfg->n_listen; i++) {
		int j;
		for (j = 0; j < i; j++)
			if (cfg->listen[i].port == cfg->listen[j].port &&
			    strcmp(cfg->listen[i].address, cfg->listen[j].address) == 0)
				config_errors_add(L->errs, L->file, cfg->listen[i].line,
				    "%s port %d is listed twice", cfg->listen[i].address,
				    cfg->listen[i].port);
	}
}

static void
load_backends(struct loader *L, struct msagate_config *cfg, const config_setting_t *auth)
{
	static const char *const keys[] = { "driver", "path", "service", "socket",
		"default_domain", "workers", "timeout", NULL };
	config_setting_t *bs = auth ? config_setting_get_member(auth, "backends") : NULL;
	int i, n;

	if (bs == NULL) {
		config_errors_add(L->errs, L->file, line_of(auth),
		    "auth.backends is missing: no way to check passwords");
		return;
	}
	if (!config_setting_is_list(bs)) {
		config_errors_add(L->errs, L->file, line_of(bs),
		    "auth.backends must be a list of groups: ( { driver = ...; }, ... )");
		return;
	}
	n = config_setting_length(bs);
	if (n == 0)
		config_errors_add(L->errs, L->file, line_of(bs),
		    "auth.backends is empty: no way to check passwords");
	cfg->auth.backends = xcalloc((size_t)n + 1, sizeof(*cfg->auth.backends));
	for (i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(bs, (unsigned)i);
		struct backend_cfg *b = &cfg->auth.backends[cfg->auth.n_backends];

		if (!config_setting_is_group(e)) {
			config_errors_add(L->errs, L->file, line_of(bs),
			    "auth.backends entry %d must be a group", i + 1);
			continue;
		}
		check_keys(L, e, "auth.backends", keys);
		b->line = line_of(e);
		b->driver = get_str(L, e, "driver", NULL);
		b->path = get_str(L, e, "path", NULL);
		b->service = get_str(L, e, "service", NULL);
		b->socket = get_str(L, e, "socket", NULL);
		b->default_domain = get_str(L, e, "default_domain", NULL);
		b->workers = (int)get_int(L, e, "workers", 4, 1, 64);
		b->timeout_ms = get_ms(L, e, "timeout", 10000, 120000);
		if (b->driver == NULL) {
			config_errors_add(L->errs, L->file, b->line, "backend without \"driver\"");
			b->driver = xstrdup("");
		} else if (strcmp(b->driver, "passwd-file") == 0) {
			if (b->path == NULL)
				config_errors_add(L->errs, L->file, b->line,
				    "passwd-file backend needs \"path\"");
		} else if (strcmp(b->driver, "pam") == 0) {
			if (b->service == NULL)
				b->service = xstrdup("msagate");
		} else if (strcmp(b->driver, "dovecot") == 0) {
			if (b->socket == NULL)
				config_errors_add(L->errs, L->file, b->line,
				    "dovecot backend needs \"socket\"");
		} else
			config_errors_add(L->errs, L->file, b->line,
			    "unknown backend driver \"%s\" (passwd-file, pam or dovecot)", b->driver);
		cfg->auth.n_backends++;
	}
}

/* octal_mode - libconfig reads 0660 as decimal 660; take its digits as octal. */
static int
octal_mode(struct loader *L, const config_setting_t *g, const char *key, int def)
{
	config_setting_t *s = g ? config_setting_get_member(g, key) : NULL;
	long long v;
	int mode = 0, mul = 1;

	if (s == NULL)
		return def;
	if (config_setting_type(s) == CONFIG_TYPE_STRING) {
		const char *str = config_setting_get_string(s);
		unsigned long long m;
		char *end;
		errno = 0;
		m = strtoull(str, &end, 8);
		if (*str == '\0' || *end || errno || m > 0777)
			goto bad;
		return (int)m;
	}
	v = get_int(L, g, key, -1, 0, 777);
	if (v < 0)
		return def;
	if (config_setting_get_format(s) == CONFIG_FORMAT_HEX)
		return (int)v & 0777;
	while (v > 0) {
		int d = (int)(v % 10);
		if (d > 7)
			goto bad;
		mode += d * mul;
		mul *= 8;
		v /= 10;
	}
	return mode;
bad:
	config_errors_add(L->errs, L->file, line_of(s),
	    "\"%s\" must be an octal file mode such as 0660", key);
	return def;
}

static void
load_auth(struct loader *L, struct msagate_config *cfg, const config_setting_t *root)
{
	static const char *const keys[] = { "socket", "socket_mode", "socket_user",
		"socket_group", "mechanisms", "backends", "failure_delay", "min_time",
		"workers", "allow_authzid", "penalty", "listeners", "cache_ttl",
		"cache_size", "cache_verdicts", NULL };
	static const char *const lkeys[] = { "path", "mode", "user", "group", NULL };
	config_setting_t *ls;
	static const char *const pkeys[] = { "enabled", "max_delay", "block_after",
		"window", "block_time", "exempt", NULL };
	config_setting_t *p;
	char **nets;
	size_t n;
	config_setting_t *a = config_setting_get_member(root, "auth");
	size_t i;
	long nproc = sysconf(_SC_NPROCESSORS_ONLN);

	if (a == NULL)
		config_errors_add(L->errs, L->file, 1, "no \"auth\" section");
	check_keys(L, a, "auth", keys);
	cfg->auth.socket = get_str(L, a, "socket", NULL);
	if (cfg->auth.socket == NULL)
		cfg->auth.socket = xasprintf("%s/auth", cfg->run_dir);
	cfg->auth.socket_mode = octal_mode(L, a, "socket_mode", 0660);
	cfg->auth.socket_user = get_str(L, a, "socket_user", NULL);
	cfg->auth.socket_group = get_str(L, a, "socket_group", NULL);
	cfg->auth.userdb_socket = xasprintf("%s/auth-userdb", cfg->run_dir);
	ls = a ? config_setting_get_member(a, "listeners") : NULL;
	if (ls != NULL && !config_setting_is_list(ls))
		config_errors_add(L->errs, L->file, line_of(ls),
		    "auth.listeners must be a list of groups: ( { path = ...; }, ... )");
	else if (ls != NULL) {
		int k, nl = config_setting_length(ls);
		cfg->auth.listeners = xcalloc((size_t)nl + 1, sizeof(*cfg->auth.listeners));
		for (k = 0; k < nl; k++) {
			config_setting_t *e = config_setting_get_elem(ls, (unsigned)k);
			struct auth_listener_cfg *al = &cfg->auth.listeners[cfg->auth.n_listeners];
			if (!config_setting_is_group(e)) {
				config_errors_add(L->errs, L->file, line_of(ls),
				    "auth.listeners entry %d must be a group", k + 1);
				continue;
			}
			check_keys(L, e, "auth.listeners", lkeys);
			al->line = line_of(e);
			al->path = get_str(L, e, "path", NULL);
			al->mode = octal_mode(L, e, "mode", 0660);
			al->user = get_str(L, e, "user", NULL);
			al->group = get_str(L, e, "group", NULL);
			if (al->path == NULL || al->path[0] != '/') {
				config_errors_add(L->errs, L->file, al->line,
				    "auth.listeners entry needs an absolute \"path\"");
				free(al->path);
				free(al->user);
				free(al->group);
				continue;
			}
			cfg->auth.n_listeners++;
		}
	}
	cfg->auth.mechanisms = get_strlist(L, a, "mechanisms", &cfg->auth.n_mechanisms);
	if (cfg->auth.mechanisms == NULL || cfg->auth.n_mechanisms == 0) {
		free_strlist(cfg->auth.mechanisms, cfg->auth.n_mechanisms);
		cfg->auth.mechanisms = xcalloc(3, sizeof(char *));
		cfg->auth.mechanisms[0] = xstrdup("PLAIN");
		cfg->auth.mechanisms[1] = xstrdup("LOGIN");
		cfg->auth.n_mechanisms = 2;
	}
	for (i = 0; i < cfg->auth.n_mechanisms; i++) {
		static const char *const known[] = { "PLAIN", "LOGIN", "CRAM-MD5",
			"DIGEST-MD5", "SCRAM-SHA-1", "SCRAM-SHA-224", "SCRAM-SHA-256", "SCRAM-SHA-384",
			"SCRAM-SHA-512", NULL };
		size_t k;
		bool found = false;
		char *m;

		for (m = cfg->auth.mechanisms[i]; *m; m++)
			*m = (char)toupper((unsigned char)*m);
		for (k = 0; known[k]; k++)
			if (strcmp(known[k], cfg->auth.mechanisms[i]) == 0)
				found = true;
		if (!found) {
			const char *mech = cfg->auth.mechanisms[i], *why;
			size_t ml = strlen(mech);

			/* Cyrus has more plugins; say why these are not offered */
			if (strcmp(mech, "ANONYMOUS") == 0)
				why = "it would let anyone submit mail without a password";
			else if (strcmp(mech, "EXTERNAL") == 0)
				why = "the Dovecot auth protocol carries no client "
				    "certificate identity for it";
			else if (ml > 5 && strcmp(mech + ml - 5, "-PLUS") == 0)
				why = "the Dovecot auth protocol carries no TLS channel "
				    "binding; use the mechanism without -PLUS";
			else
				why = "msagate's backends cannot serve it";
			config_errors_add(L->errs, L->file,
			    line_of(config_setting_get_member(a, "mechanisms")),
			    "auth.mechanisms: \"%s\" is not supported: %s (supported: "
			    "PLAIN, LOGIN, CRAM-MD5, DIGEST-MD5, SCRAM-SHA-1, "
			    "SCRAM-SHA-224/256/384/512)", mech, why);
		}
	}
	load_backends(L, cfg, a);
	cfg->auth.failure_delay_ms = get_ms(L, a, "failure_delay", 2000, 10000);
	cfg->auth.min_time_ms = get_ms(L, a, "min_time", 0, 5000);
	cfg->auth.workers = (int)get_int(L, a, "workers", nproc > 0 ? nproc : 2, 1, 64);
	cfg->auth.allow_authzid = get_bool(L, a, "allow_authzid", false);
	/* verified-credential cache (src/auth-cache.h): on for passwd-file
	 * (never stale); verdicts of PAM / an upstream Dovecot only if asked */
	cfg->auth.cache_ttl_ms = get_ms(L, a, "cache_ttl", 60 * 1000, 3600 * 1000);
	cfg->auth.cache_size = (int)get_int(L, a, "cache_size", 10000, 1, 1000000);
	cfg->auth.cache_verdicts = get_bool(L, a, "cache_verdicts", false);
	if (cfg->auth.cache_verdicts && cfg->auth.cache_ttl_ms == 0)
		config_errors_add(L->errs, L->file,
		    line_of(config_setting_get_member(a, "cache_verdicts")),
		    "auth.cache_verdicts = true needs the cache: auth.cache_ttl is 0 (off)");

	p = a ? config_setting_get_member(a, "penalty") : NULL;
	check_keys(L, p, "auth.penalty", pkeys);
	cfg->auth.penalty.enabled = get_bool(L, p, "enabled", true);
	cfg->auth.penalty.max_delay_ms = get_ms(L, p, "max_delay", 6000, 60000);
	cfg->auth.penalty.block_after = (int)get_int(L, p, "block_after", 10, 1, 100000);
	cfg->auth.penalty.window = (int)get_int(L, p, "window", 600, 1, 86400 * 7);
	cfg->auth.penalty.block_time = (int)get_int(L, p, "block_time", 900, 1, 86400 * 7);
	nets = get_strlist(L, p, "exempt", &n);
	cfg->auth.penalty.exempt = xcalloc(n + 1, sizeof(struct cidr));
	for (i = 0; i < n; i++) {
		if (cidr_parse(nets[i], &cfg->auth.penalty.exempt[cfg->auth.penalty.n_exempt]) == 0)
			cfg->auth.penalty.n_exempt++;
		else
			config_errors_add(L->errs, L->file,
			    line_of(config_setting_get_member(p, "exempt")),
			    "auth.penalty.exempt: \"%s\" is not a network in CIDR form", nets[i]);
	}
	free_strlist(nets, n);
	if (cfg->auth.penalty.max_delay_ms + cfg->auth.failure_delay_ms >= 10000)
		config_errors_add(L->errs, L->file, line_of(p ? p : a),
		    "auth.penalty.max_delay + auth.failure_delay must stay under 10 seconds "
		    "(Postfix gives up on the auth socket after 10 s)");
}

/* The queue manager's timing keys of the relay group (durations in seconds). */
static void
load_relay_queue(struct loader *L, struct msagate_config *cfg,
    const config_setting_t *r)
{
	config_setting_t *s;

	cfg->relay.retry_min_ms = get_ms(L, r, "retry_min", 60 * 1000, 86400 * 1000);
	cfg->relay.retry_max_ms = get_ms(L, r, "retry_max", 3600 * 1000, 86400 * 1000);
	/* at most 20 days: milliseconds in an int */
	cfg->relay.queue_lifetime_ms = get_ms(L, r, "queue_lifetime", 432000 * 1000,
	    20 * 86400 * 1000);
	cfg->relay.delay_warning_ms = get_ms(L, r, "delay_warning", 14400 * 1000,
	    20 * 86400 * 1000);
	cfg->relay.delivery_workers = (int)get_int(L, r, "delivery_workers", 4, 1, 64);
	if (r == NULL)
		return;
	if (cfg->relay.retry_min_ms < 1000 &&
	    (s = config_setting_get_member(r, "retry_min")) != NULL) {
		config_errors_add(L->errs, L->file, line_of(s),
		    "relay.retry_min must be at least 1 second");
		cfg->relay.retry_min_ms = 1000;
	}
	if (cfg->relay.queue_lifetime_ms < 1000 &&
	    (s = config_setting_get_member(r, "queue_lifetime")) != NULL) {
		config_errors_add(L->errs, L->file, line_of(s),
		    "relay.queue_lifetime must be at least 1 second");
		cfg->relay.queue_lifetime_ms = 432000 * 1000;
	}
	if (cfg->relay.retry_min_ms > cfg->relay.retry_max_ms) {
		s = config_setting_get_member(r, "retry_max");
		if (s == NULL)
			s = config_setting_get_member(r, "retry_min");
		config_errors_add(L->errs, L->file, line_of(s),
		    "relay.retry_min (%g s) must not be greater than relay.retry_max (%g s)",
		    cfg->relay.retry_min_ms / 1000.0, cfg->relay.retry_max_ms / 1000.0);
	}
}

/* What alias expansion may deliver to besides mailboxes (relay group). */
static void
load_relay_alias_targets(struct loader *L, struct msagate_config *cfg,
    const config_setting_t *r)
{
	config_setting_t *s = r ? config_setting_get_member(r, "alias_user") : NULL;

	cfg->relay.allow_alias_include = get_bool(L, r, "allow_alias_include", false);
	cfg->relay.allow_alias_commands = get_bool(L, r, "allow_alias_commands", false);
	cfg->relay.allow_alias_files = get_bool(L, r, "allow_alias_files", false);
	cfg->relay.alias_user = get_str(L, r, "alias_user", "nobody");
	cfg->relay.alias_user_line = line_of(s ? s : r);
	if (cfg->relay.alias_user[0] == '\0' ||
	    strcmp(cfg->relay.alias_user, "root") == 0)
		config_errors_add(L->errs, L->file, line_of(s),
		    "relay.alias_user must name an unprivileged account, not \"%s\"",
		    cfg->relay.alias_user);
	cfg->relay.alias_command_timeout_ms = get_ms(L, r, "alias_command_timeout",
	    300 * 1000, 3600 * 1000);
	if (cfg->relay.alias_command_timeout_ms < 1000 &&
	    (s = r ? config_setting_get_member(r, "alias_command_timeout") : NULL) != NULL) {
		config_errors_add(L->errs, L->file, line_of(s),
		    "relay.alias_command_timeout must be at least 1 second");
		cfg->relay.alias_command_timeout_ms = 300 * 1000;
	}
}

static void check_maildir_path(struct loader *L, const config_setting_t *d,
    const char *path);

static void
load_relay(struct loader *L, struct msagate_config *cfg, const config_setting_t *root)
{
	static const char *const keys[] = { "mynetworks", "local_domains",
		"relay_domains", "relayhost", "message_size_limit", "aliases",
		"delivery", "recipient_delimiter", "sender_logins", "check_from_header",
		"relayhost_tls", "tls_verify", "tls_ca_file", "relayhost_credentials",
		"relayhost_max_connections", "mx_lookup", "dns_servers", "retry_min",
		"retry_max", "queue_lifetime", "delay_warning", "delivery_workers",
		"allow_alias_include", "allow_alias_commands", "allow_alias_files",
		"alias_user", "alias_command_timeout", NULL };
	static const char *const dkeys[] = { "method", "path", "socket", "min_uid",
		NULL };
	config_setting_t *r = config_setting_get_member(root, "relay");
	config_setting_t *d = r ? config_setting_get_member(r, "delivery") : NULL;
	char **nets;
	size_t n, i;

	check_keys(L, r, "relay", keys);
	nets = get_strlist(L, r, "mynetworks", &n);
	if (nets == NULL && (r == NULL || config_setting_get_member(r, "mynetworks") == NULL)) {
		nets = xcalloc(3, sizeof(char *));
		/* this host's loopback address only, not all of 127/8 */
		nets[0] = xstrdup("127.0.0.1/32");
		nets[1] = xstrdup("::1/128");
		n = 2;
	}
	cfg->relay.mynetworks = xcalloc(n + 1, sizeof(struct cidr));
	for (i = 0; i < n; i++) {
		if (cidr_parse(nets[i], &cfg->relay.mynetworks[cfg->relay.n_mynetworks]) == 0)
			cfg->relay.n_mynetworks++;
		else
			config_errors_add(L->errs, L->file,
			    line_of(config_setting_get_member(r, "mynetworks")),
			    "relay.mynetworks: \"%s\" is not a network in CIDR form "
			    "(e.g. 192.0.2.0/24, 2001:db8::/32; host bits must be zero)", nets[i]);
	}
	free_strlist(nets, n);
	cfg->relay.local_domains = get_strlist(L, r, "local_domains", &cfg->relay.n_local_domains);
	cfg->relay.relay_domains = get_strlist(L, r, "relay_domains", &cfg->relay.n_relay_domains);
	for (i = 0; i < cfg->relay.n_local_domains; i++)
		if (!valid_hostname(cfg->relay.local_domains[i]))
			config_errors_add(L->errs, L->file,
			    line_of(config_setting_get_member(r, "local_domains")),
			    "relay.local_domains: \"%s\" is not a domain name",
			    cfg->relay.local_domains[i]);
	cfg->relay.relayhost = get_str(L, r, "relayhost", "");
	if (cfg->relay.relayhost[0] != '\0') {
		/* [host], [host]:port, host or host:port (deliver-smtp.c parses it) */
		const char *rh = cfg->relay.relayhost;
		const char *close = rh[0] == '[' ? strchr(rh, ']') : NULL;
		const char *port = rh[0] == '[' ? (close && close[1] == ':' ? close + 2 :
		    NULL) : strchr(rh, ':');
		bool good = rh[0] == '[' ? close != NULL && close > rh + 1 &&
		    (close[1] == '\0' || close[1] == ':') :
		    rh[0] != ':' && (port == NULL || strchr(port + 1, ':') == NULL);

		/* no white space or control characters anywhere */
		for (const char *c = rh; good && *c; c++)
			if ((unsigned char)*c <= ' ' || *c == 0x7f)
				good = false;
		if (good && port != NULL) {
			const char *p = rh[0] == '[' ? port : port + 1;

			good = p[0] != '\0' && strlen(p) <= 5 &&
			    strspn(p, "0123456789") == strlen(p) &&
			    atoi(p) >= 1 && atoi(p) <= 65535;
		}
		if (!good)
			config_errors_add(L->errs, L->file,
			    line_of(config_setting_get_member(r, "relayhost")),
			    "relay.relayhost \"%s\": expected [host]:port, [host], "
			    "host:port or host", rh);
	}
	cfg->relay.relayhost_tls = get_str(L, r, "relayhost_tls", "opportunistic");
	if (strcmp(cfg->relay.relayhost_tls, "required") != 0 &&
	    strcmp(cfg->relay.relayhost_tls, "opportunistic") != 0 &&
	    strcmp(cfg->relay.relayhost_tls, "none") != 0)
		config_errors_add(L->errs, L->file,
		    line_of(config_setting_get_member(r, "relayhost_tls")),
		    "relay.relayhost_tls \"%s\" unknown (required, opportunistic or none)",
		    cfg->relay.relayhost_tls);
	cfg->relay.tls_verify = get_bool(L, r, "tls_verify", false);
	cfg->relay.tls_ca_file = get_str(L, r, "tls_ca_file", NULL);
	cfg->relay.relayhost_credentials = get_str(L, r, "relayhost_credentials", NULL);
	cfg->relay.relayhost_max_conns = (int)get_int(L, r, "relayhost_max_connections",
	    4, 1, 100);
	cfg->relay.mx_lookup = get_bool(L, r, "mx_lookup", true);
	cfg->relay.dns_servers = get_strlist(L, r, "dns_servers", &cfg->relay.n_dns_servers);
	for (i = 0; i < cfg->relay.n_dns_servers; i++) {
		const char *ds = cfg->relay.dns_servers[i], *colon = strchr(ds, ':');
		char ip[INET_ADDRSTRLEN + 1];
		struct in_addr a4;
		size_t len = colon ? (size_t)(colon - ds) : strlen(ds);
		bool good = len > 0 && len < sizeof(ip);

		if (good) {
			memcpy(ip, ds, len);
			ip[len] = '\0';
			good = inet_pton(AF_INET, ip, &a4) == 1;
		}
		if (good && colon != NULL)
			good = colon[1] != '\0' && strlen(colon + 1) <= 5 &&
			    strspn(colon + 1, "0123456789") == strlen(colon + 1) &&
			    atoi(colon + 1) >= 1 && atoi(colon + 1) <= 65535;
		if (!good)
			config_errors_add(L->errs, L->file,
			    line_of(config_setting_get_member(r, "dns_servers")),
			    "relay.dns_servers: \"%s\" is not an IPv4 address "
			    "(optionally with :port)", ds);
	}
	cfg->relay.message_size_limit = get_int(L, r, "message_size_limit",
	    26214400, 1024, 2147483647LL);
	cfg->relay.aliases = get_str(L, r, "aliases", NULL);
	cfg->relay.recipient_delimiter = get_str(L, r, "recipient_delimiter", "+");
	if (strlen(cfg->relay.recipient_delimiter) > 1)
		config_errors_add(L->errs, L->file,
		    line_of(config_setting_get_member(r, "recipient_delimiter")),
		    "relay.recipient_delimiter must be one character or empty");
	cfg->relay.sender_logins = get_str(L, r, "sender_logins", NULL);
	cfg->relay.check_from_header = get_bool(L, r, "check_from_header", false);
	load_relay_queue(L, cfg, r);
	check_keys(L, d, "relay.delivery", dkeys);
	cfg->relay.delivery_method = get_str(L, d, "method", "maildir");
	cfg->relay.delivery_path = get_str(L, d, "path", "/var/mail/%d/%n/Maildir");
	cfg->relay.delivery_socket = get_str(L, d, "socket", NULL);
	cfg->relay.delivery_min_uid = get_int(L, d, "min_uid", 1000, 1, 2147483647LL);
	load_relay_alias_targets(L, cfg, r);
	if (strcmp(cfg->relay.delivery_method, "maildir") != 0 &&
	    strcmp(cfg->relay.delivery_method, "lmtp") != 0 &&
	    strcmp(cfg->relay.delivery_method, "discard") != 0)
		config_errors_add(L->errs, L->file, line_of(d),
		    "relay.delivery.method \"%s\" unknown (maildir, lmtp or discard)",
		    cfg->relay.delivery_method);
	if (strcmp(cfg->relay.delivery_method, "maildir") == 0)
		check_maildir_path(L, d, cfg->relay.delivery_path);
	else if (strcmp(cfg->relay.delivery_method, "lmtp") == 0 &&
	    (cfg->relay.delivery_socket == NULL || cfg->relay.delivery_socket[0] == '\0'))
		config_errors_add(L->errs, L->file, line_of(d),
		    "relay.delivery.socket is required for lmtp (unix:/path or inet:host:port)");
}

/*
 * check_maildir_path - relay.delivery.path for Maildir delivery: absolute
 * (or under %h), only the escapes the delivery knows (%d %n %u %h %%),
 * and one that tells users apart: a typo such as %x or %Ln would put
 * every recipient's mail into one shared mailbox.
 */
static void
check_maildir_path(struct loader *L, const config_setting_t *d, const char *path)
{
	int line = d ? line_of(config_setting_get_member(d, "path")) : 0;
	bool per_user = false;

	if (line == 0)
		line = d ? line_of(d) : 1;
	if (path[0] != '/' && strncmp(path, "%h", 2) != 0)
		config_errors_add(L->errs, L->file, line, "relay.delivery.path \"%s\" "
		    "must be an absolute path (or start with %%h)", path);
	for (const char *p = path; *p != '\0'; p++) {
		if (*p != '%')
			continue;
		switch (p[1]) {
		case 'd':
		case '%':
			p++;
			break;
		case 'n':
		case 'u':
		case 'h':
			per_user = true;
			p++;
			break;
		default:
			config_errors_add(L->errs, L->file, line, "relay.delivery.path "
			    "\"%s\": unknown escape %%%.1s (known: %%d domain, %%n local "
			    "part, %%u user@domain, %%h home, %%%% a percent sign)", path,
			    p[1] ? p + 1 : "");
			return;
		}
	}
	if (!per_user)
		config_errors_add(L->errs, L->file, line, "relay.delivery.path \"%s\" "
		    "names no user (%%n, %%u or %%h): every recipient would share one "
		    "mailbox", path);
}

static void
load_smtp(struct loader *L, struct msagate_config *cfg, const config_setting_t *root)
{
	static const char *const keys[] = { "max_recipients", "max_errors",
		"idle_timeout", "data_timeout", "max_connections",
		"max_connections_per_client", "max_line", "max_auth_line",
		"received_show_user", "processes", "max_auth_failures", NULL };
	config_setting_t *s = config_setting_get_member(root, "smtp");

	check_keys(L, s, "smtp", keys);
	cfg->smtp.max_recipients = (int)get_int(L, s, "max_recipients", 100, 1, 100000);
	cfg->smtp.max_errors = (int)get_int(L, s, "max_errors", 10, 1, 1000);
	cfg->smtp.idle_timeout = (int)get_int(L, s, "idle_timeout", 300, 1, 86400);
	cfg->smtp.data_timeout = (int)get_int(L, s, "data_timeout", 600, 1, 86400);
	cfg->smtp.max_connections = (int)get_int(L, s, "max_connections", 20000, 1, 1000000);
	cfg->smtp.max_connections_per_client = (int)get_int(L, s,
	    "max_connections_per_client", 50, 1, 1000000);
	cfg->smtp.max_line = (int)get_int(L, s, "max_line", 512, 512, 65536);
	cfg->smtp.max_auth_line = (int)get_int(L, s, "max_auth_line", 12288, 512, 65536);
	cfg->smtp.received_show_user = get_bool(L, s, "received_show_user", false);
	cfg->smtp.processes = (int)get_int(L, s, "processes", 1, 1, 64);
	cfg->smtp.max_auth_failures = (int)get_int(L, s, "max_auth_failures", 3, 1, 1000);
}

static int
tls_version(struct loader *L, const config_setting_t *t, const char *key)
{
	config_setting_t *s = t ? config_setting_get_member(t, key) : NULL;
	char *v = get_str(L, t, key, "TLSv1.2");
	int r = TLS1_2_VERSION;

	if (strcmp(v, "TLSv1.2") == 0)
		r = TLS1_2_VERSION;
	else if (strcmp(v, "TLSv1.3") == 0)
		r = TLS1_3_VERSION;
	else
		config_errors_add(L->errs, L->file, line_of(s),
		    "tls.%s \"%s\" unknown (TLSv1.2 or TLSv1.3)", key, v);
	free(v);
	return r;
}

/*
 * setting_text - a setting and everything under it as canonical text (names,
 * values, nesting; comments and layout gone), so that a reload can tell
 * whether a section changed.  Nothing for NULL.
 */
static void
setting_text(struct sbuf *b, const config_setting_t *s)
{
	const char *name;

	if (s == NULL)
		return;
	if ((name = config_setting_name(s)) != NULL)
		sbuf_printf(b, "%s=", name);
	switch (config_setting_type(s)) {
	case CONFIG_TYPE_GROUP:
	case CONFIG_TYPE_LIST:
	case CONFIG_TYPE_ARRAY:
		sbuf_addstr(b, "{");
		for (int i = 0; i < config_setting_length(s); i++) {
			setting_text(b, config_setting_get_elem(s, (unsigned)i));
			sbuf_addstr(b, ";");
		}
		sbuf_addstr(b, "}");
		break;
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		sbuf_printf(b, "%lld", config_setting_get_int64(s));
		break;
	case CONFIG_TYPE_FLOAT:
		sbuf_printf(b, "%.17g", config_setting_get_float(s));
		break;
	case CONFIG_TYPE_BOOL:
		sbuf_printf(b, "%d", config_setting_get_bool(s));
		break;
	case CONFIG_TYPE_STRING:
		sbuf_printf(b, "\"%s\"", config_setting_get_string(s));
		break;
	default:
		break;
	}
}

struct msagate_config *
config_load(const char *file, struct config_errors *errs)
{
	FILE *fp = fopen(file, "r");

	if (fp == NULL) {
		config_errors_add(errs, file, 0, "cannot open: %s", strerror(errno));
		return NULL;
	}
	return config_load_fp(fp, file, errs);
}

struct msagate_config *
config_load_fp(FILE *fp, const char *file, struct config_errors *errs)
{
	static const char *const root_keys[] = { "hostname", "user", "state_dir",
		"queue_sync", "run_dir", "tls", "listen", "auth", "relay", "smtp", "log", NULL };
	static const char *const tls_keys[] = { "cert", "key", "min_protocol",
		"ciphers", NULL };
	static const char *const log_keys[] = { "facility", "debug", NULL };
	struct loader L = { file, errs, NULL };
	struct msagate_config *cfg;
	config_t lc;
	config_setting_t *root, *t, *lg;
	char host[256];

	{
		struct stat st;

		/* libconfig's scanner exits the program on a directory */
		if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
			config_errors_add(errs, file, 0, "not a regular file");
			fclose(fp);
			return NULL;
		}
	}
	config_init(&lc);
	if (!config_read(&lc, fp)) {
		config_errors_add(errs, file, config_error_line(&lc), "%s",
		    config_error_text(&lc));
		config_destroy(&lc);
		fclose(fp);
		return NULL;
	}
	fclose(fp);
	root = config_root_setting(&lc);
	cfg = xcalloc(1, sizeof(*cfg));
	L.cfg = cfg;
	cfg->file = xstrdup(file);
	{
		struct sbuf b;

		sbuf_init(&b, 0);
		setting_text(&b, config_setting_get_member(root, "auth"));
		cfg->auth_text = xstrdup(b.s ? b.s : "");
		sbuf_free(&b);
	}
	check_keys(&L, root, "", root_keys);

	if (gethostname(host, sizeof(host)) != 0)
		strcpy(host, "localhost");
	host[sizeof(host) - 1] = '\0';
	cfg->hostname = get_str(&L, root, "hostname", host);
	if (!valid_hostname(cfg->hostname))
		config_errors_add(errs, file, line_of(config_setting_get_member(root, "hostname")),
		    "hostname \"%s\" is not a valid domain name", cfg->hostname);
	cfg->user = get_str(&L, root, "user", "msagate");
	cfg->user_line = line_of(config_setting_get_member(root, "user"));
	cfg->state_dir = get_str(&L, root, "state_dir", LOCALSTATEDIR "/lib/msagate");
	cfg->run_dir = get_str(&L, root, "run_dir", RUNSTATEDIR "/msagate");
	{
		char *qs = get_str(&L, root, "queue_sync", "filesystem");

		if (strcmp(qs, "file") == 0)
			cfg->queue_sync_fs = false;
		else if (strcmp(qs, "filesystem") == 0)
			cfg->queue_sync_fs = true;
		else
			config_errors_add(errs, file,
			    line_of(config_setting_get_member(root, "queue_sync")),
			    "queue_sync \"%s\" unknown (\"filesystem\" or \"file\")", qs);
		free(qs);
	}
	if (cfg->state_dir[0] != '/')
		config_errors_add(errs, file, line_of(config_setting_get_member(root, "state_dir")),
		    "state_dir must be an absolute path");
	if (cfg->run_dir[0] != '/')
		config_errors_add(errs, file, line_of(config_setting_get_member(root, "run_dir")),
		    "run_dir must be an absolute path");

	t = config_setting_get_member(root, "tls");
	check_keys(&L, t, "tls", tls_keys);
	cfg->tls.cert = get_str(&L, t, "cert", NULL);
	cfg->tls.key = get_str(&L, t, "key", NULL);
	cfg->tls.cert_line = line_of(t ? config_setting_get_member(t, "cert") : NULL);
	cfg->tls.key_line = line_of(t ? config_setting_get_member(t, "key") : NULL);
	cfg->tls.min_protocol = tls_version(&L, t, "min_protocol");
	cfg->tls.ciphers = get_str(&L, t, "ciphers", NULL);
	if (cfg->tls.cert == NULL || cfg->tls.key == NULL)
		config_errors_add(errs, file, line_of(t),
		    "tls.cert and tls.key are required (submission needs TLS)");

	load_listen(&L, cfg, root);
	load_auth(&L, cfg, root);
	load_relay(&L, cfg, root);
	load_smtp(&L, cfg, root);

	lg = config_setting_get_member(root, "log");
	check_keys(&L, lg, "log", log_keys);
	cfg->log.facility = get_str(&L, lg, "facility", "mail");
	{
		static const char *const fac[] = { "mail", "daemon", "auth", "authpriv",
			"user", "local0", "local1", "local2", "local3", "local4", "local5",
			"local6", "local7", NULL };
		size_t k;

		for (k = 0; fac[k] && strcmp(fac[k], cfg->log.facility) != 0; k++)
			;
		if (fac[k] == NULL)
			config_errors_add(errs, file, lg ? line_of(config_setting_get_member(lg, "facility")) : 0,
			    "log.facility \"%s\" unknown (mail, daemon, auth, authpriv, user, "
			    "local0..local7)", cfg->log.facility);
	}
	cfg->log.debug = get_bool(&L, lg, "debug", false);

	cfg->pid_file = xasprintf("%s/msagated.pid", cfg->run_dir);
	cfg->queue_socket = xasprintf("%s/queue", cfg->run_dir);
	config_destroy(&lc);
	return cfg;
}

void
config_free(struct msagate_config *cfg)
{
	size_t i;

	if (cfg == NULL)
		return;
	for (i = 0; i < cfg->n_key_lines; i++)
		free(cfg->key_lines[i].path);
	free(cfg->key_lines);
	free(cfg->file);
	free(cfg->auth_text);
	free(cfg->hostname);
	free(cfg->user);
	free(cfg->state_dir);
	free(cfg->run_dir);
	free(cfg->tls.cert);
	free(cfg->tls.key);
	free(cfg->tls.ciphers);
	for (i = 0; i < cfg->n_listen; i++)
		free(cfg->listen[i].address);
	free(cfg->listen);
	free(cfg->auth.socket);
	free(cfg->auth.socket_user);
	free(cfg->auth.socket_group);
	free_strlist(cfg->auth.mechanisms, cfg->auth.n_mechanisms);
	for (i = 0; i < cfg->auth.n_backends; i++) {
		struct backend_cfg *b = &cfg->auth.backends[i];
		free(b->driver);
		free(b->path);
		free(b->service);
		free(b->socket);
		free(b->default_domain);
	}
	free(cfg->auth.backends);
	free(cfg->auth.penalty.exempt);
	for (i = 0; i < cfg->auth.n_listeners; i++) {
		free(cfg->auth.listeners[i].path);
		free(cfg->auth.listeners[i].user);
		free(cfg->auth.listeners[i].group);
	}
	free(cfg->auth.listeners);
	free(cfg->auth.userdb_socket);
	free(cfg->relay.recipient_delimiter);
	free(cfg->relay.sender_logins);
	free(cfg->relay.mynetworks);
	free_strlist(cfg->relay.local_domains, cfg->relay.n_local_domains);
	free_strlist(cfg->relay.relay_domains, cfg->relay.n_relay_domains);
	free(cfg->relay.relayhost);
	free(cfg->relay.relayhost_tls);
	free(cfg->relay.tls_ca_file);
	free(cfg->relay.relayhost_credentials);
	free_strlist(cfg->relay.dns_servers, cfg->relay.n_dns_servers);
	free(cfg->relay.aliases);
	free(cfg->relay.delivery_method);
	free(cfg->relay.delivery_path);
	free(cfg->relay.delivery_socket);
	free(cfg->relay.alias_user);
	free(cfg->log.facility);
	free(cfg->pid_file);
	free(cfg->queue_socket);
	free(cfg);
}
