/*
 * aliases.c - aliases(5) tables (see aliases.h): a bounded parser into a
 * sorted array (binary search, case-insensitive names), change detection
 * for reloads, and recursive expansion of local recipients.
 *
 * Format: "name: target, target, ..."; a line starting with white space
 * continues the previous entry; '#' at the start of a line (after
 * optional white space) is a comment; empty lines are ignored.  Names and
 * targets may be double-quoted ("|cmd, with comma").  A name defined
 * twice is an error (sendmail warns, we refuse: the table would be
 * ambiguous).
 *
 * Expansion rules (decided here, documented in msagate.conf(5)):
 *   - an address is local when it has no domain or its domain is one of
 *     pol->local_domains (case-insensitive, one trailing dot ignored);
 *   - the full local part is looked up first, then the part before the
 *     recipient delimiter ("user+tag" -> "user");
 *   - a bare target name is qualified with the domain of the address
 *     being expanded (so "bob" under "postmaster@example.test" becomes
 *     "bob@example.test"); under a bare address it stays bare;
 *   - a target naming the alias being expanded (bob: bob, bob@elsewhere)
 *     is final: it is delivered, not expanded again; a longer cycle
 *     (a -> b -> a) is an error, as is nesting deeper than
 *     ALIASES_MAX_DEPTH;
 *   - ":include:/path" (only when allowed) reads that file at expansion
 *     time: the same target syntax, one or more targets a line, '#'
 *     comment lines; bounded in size; it counts as one nesting level; a
 *     file that includes itself (directly or not) is an error, and so is
 *     one that group or others may write (see include_unsafe());
 *   - "|cmd" and "/file" (only when allowed) are returned unchanged,
 *     with their kind; with pol->keep_refused a kind that is not allowed
 *     is returned too (the caller refuses that target alone), otherwise
 *     it fails the expansion.
 */
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <strings.h>

#include "aliases.h"
#include "util.h"

#define AL_MAX_FILE     (16 * 1024 * 1024)  /* aliases file size */
#define AL_MAX_LINE     8192                /* one physical line */
#define AL_MAX_ENTRY    (64 * 1024)         /* one entry with continuations */
#define AL_MAX_ENTRIES  200000
#define AL_MAX_TARGETS  4096                /* per alias */
#define AL_MAX_NAME     255
#define AL_MAX_TARGET   1024
#define AL_MAX_INCLUDE  (1024 * 1024)       /* :include: file size */
#define AL_MAX_RESULT   10000               /* addresses one expansion yields */

struct alias {
	char *name;                  /* lower case */
	char **targets;
	size_t n_targets;
};

struct aliases {
	char *path;
	struct alias *v;
	size_t n;
	/* what was read, for aliases_refresh */
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
};

static void
alias_free_targets(char **t, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(t[i]);
	free(t);
}

void
aliases_free(struct aliases *a)
{
	if (a == NULL)
		return;
	for (size_t i = 0; i < a->n; i++) {
		free(a->v[i].name);
		alias_free_targets(a->v[i].targets, a->v[i].n_targets);
	}
	free(a->v);
	free(a->path);
	free(a);
}

void
aliases_free_list(char **list, size_t n)
{
	alias_free_targets(list, n);
}

static void
lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

/* Trim white space at both ends of s[0..*len) in place; returns start. */
static char *
trim(char *s, size_t *len)
{
	size_t n = *len;

	while (n > 0 && isspace((unsigned char)*s)) {
		s++;
		n--;
	}
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	*len = n;
	return s;
}

/*
 * Split a target list "a, b, \"c, d\"" into *out (appending; *n, bounded).
 * Returns NULL or a static error text.
 */
static const char *
split_targets(const char *s, char ***out, size_t *n)
{
	const char *p = s;

	while (*p) {
		char buf[AL_MAX_TARGET + 1];
		size_t len = 0;
		bool quoted = false, was_quoted = false;
		char *t;

		while (*p && (quoted || *p != ',')) {
			if (*p == '"') {
				quoted = !quoted;
				was_quoted = true;
				p++;
				continue;
			}
			if (*p == '\\' && quoted && p[1] != '\0')
				p++;
			if (len >= AL_MAX_TARGET)
				return "target too long";
			buf[len++] = *p++;
		}
		if (quoted)
			return "unterminated quote";
		if (*p == ',')
			p++;
		t = trim(buf, &len);
		if (len == 0) {
			if (was_quoted)
				return "empty target";
			continue;       /* "a,,b" or a trailing comma */
		}
		for (size_t i = 0; i < len; i++)
			if ((unsigned char)t[i] < 32 || t[i] == 127)
				return "control character in target";
		if (*n >= AL_MAX_TARGETS)
			return "too many targets";
		*out = xrealloc(*out, (*n + 1) * sizeof(char *));
		(*out)[(*n)++] = xstrndup(t, len);
	}
	return NULL;
}

static int
alias_cmp(const void *a, const void *b)
{
	return strcmp(((const struct alias *)a)->name,
	    ((const struct alias *)b)->name);
}

/* Parse one logical entry "name: targets"; NULL or an error text. */
static const char *
parse_entry(struct aliases *a, char *e, size_t *cap)
{
	char *colon, *name;
	size_t nlen;
	struct alias al = { 0 };
	const char *err;

	if (*e == '"') {
		char *q = strchr(e + 1, '"');

		if (q == NULL)
			return "unterminated quoted name";
		name = e + 1;
		nlen = (size_t)(q - name);
		colon = q + 1;
		while (*colon == ' ' || *colon == '\t')
			colon++;
		if (*colon != ':')
			return "missing ':' after the name";
	} else {
		if ((colon = strchr(e, ':')) == NULL)
			return "missing ':' after the name";
		nlen = (size_t)(colon - e);
		name = trim(e, &nlen);
	}
	if (nlen == 0)
		return "empty alias name";
	if (nlen > AL_MAX_NAME)
		return "alias name too long";
	for (size_t i = 0; i < nlen; i++)
		if ((unsigned char)name[i] < 32 || name[i] == 127 ||
		    (name[i] == ' ' && *e != '"'))
			return "white space or control character in the name";
	if (a->n >= AL_MAX_ENTRIES)
		return "too many aliases";
	al.name = xstrndup(name, nlen);
	lower(al.name);
	if ((err = split_targets(colon + 1, &al.targets, &al.n_targets)) != NULL ||
	    (al.n_targets == 0 && (err = "alias without targets"))) {
		free(al.name);
		alias_free_targets(al.targets, al.n_targets);
		return err;
	}
	if (a->n == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		a->v = xrealloc(a->v, *cap * sizeof(*a->v));
	}
	a->v[a->n++] = al;
	return NULL;
}

static char *
errorf(const char *path, int line, const char *msg)
{
	return line > 0 ? xasprintf("%s:%d: %s", path, line, msg) :
	    xasprintf("%s: %s", path, msg);
}

/* Parse text (NUL-terminated, length len) into a; *error on a problem. */
static int
parse_text(struct aliases *a, char *text, size_t len, char **error)
{
	struct sbuf ent;
	size_t cap = 0, i;
	int line = 0, ent_line = 0;
	char *p = text, *end = text + len;
	const char *err;

	sbuf_init(&ent, AL_MAX_ENTRY);
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t ll = nl ? (size_t)(nl - p) : (size_t)(end - p);
		char *l = p, *t;
		size_t tl;

		p = nl ? nl + 1 : end;
		line++;
		if (ll > 0 && l[ll - 1] == '\r')
			ll--;
		if (ll > AL_MAX_LINE) {
			*error = errorf(a->path, line, "line too long");
			goto fail;
		}
		if (memchr(l, '\0', ll) != NULL) {
			*error = errorf(a->path, line, "NUL byte");
			goto fail;
		}
		tl = ll;
		t = trim(l, &tl);
		if (tl == 0 || *t == '#')
			continue;       /* comments do not end an entry */
		if (l[0] == ' ' || l[0] == '\t') {
			if (ent.len == 0) {
				*error = errorf(a->path, line,
				    "continuation line without an entry");
				goto fail;
			}
			if (!sbuf_add(&ent, " ", 1) || !sbuf_add(&ent, t, tl)) {
				*error = errorf(a->path, ent_line, "entry too long");
				goto fail;
			}
			continue;
		}
		if (ent.len > 0) {
			sbuf_add(&ent, "", 1);
			if ((err = parse_entry(a, ent.s, &cap)) != NULL) {
				*error = errorf(a->path, ent_line, err);
				goto fail;
			}
			sbuf_reset(&ent);
		}
		ent_line = line;
		if (!sbuf_add(&ent, t, tl)) {
			*error = errorf(a->path, line, "entry too long");
			goto fail;
		}
	}
	if (ent.len > 0) {
		sbuf_add(&ent, "", 1);
		if ((err = parse_entry(a, ent.s, &cap)) != NULL) {
			*error = errorf(a->path, ent_line, err);
			goto fail;
		}
	}
	sbuf_free(&ent);
	if (a->n > 0)
		qsort(a->v, a->n, sizeof(*a->v), alias_cmp);
	for (i = 1; i < a->n; i++)
		if (strcmp(a->v[i - 1].name, a->v[i].name) == 0) {
			char *m = xasprintf("alias \"%s\" defined twice", a->v[i].name);

			*error = errorf(a->path, 0, m);
			free(m);
			return -1;
		}
	return 0;
fail:
	sbuf_free(&ent);
	return -1;
}

/* Read a whole regular file of at most max bytes; NULL with *error. */
static char *
read_file(const char *path, size_t max, struct stat *st, size_t *len,
    char **error)
{
	FILE *f;
	char *buf;
	size_t n;

	if ((f = fopen(path, "re")) == NULL) {
		*error = xasprintf("%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fileno(f), st) != 0 || !S_ISREG(st->st_mode)) {
		*error = xasprintf("%s: not a regular file", path);
		fclose(f);
		return NULL;
	}
	if ((unsigned long long)st->st_size > max) {
		*error = xasprintf("%s: file too big", path);
		fclose(f);
		return NULL;
	}
	buf = xmalloc((size_t)st->st_size + 1);
	n = fread(buf, 1, (size_t)st->st_size + 1, f);
	if (ferror(f) || n > (size_t)st->st_size) {
		*error = xasprintf("%s: read error or file changed while reading",
		    path);
		free(buf);
		fclose(f);
		return NULL;
	}
	fclose(f);
	buf[n] = '\0';
	*len = n;
	return buf;
}

struct aliases *
aliases_load(const char *path, char **error)
{
	struct aliases *a;
	struct stat st;
	size_t len;
	char *text;

	*error = NULL;
	if ((text = read_file(path, AL_MAX_FILE, &st, &len, error)) == NULL)
		return NULL;
	a = xcalloc(1, sizeof(*a));
	a->path = xstrdup(path);
	a->dev = st.st_dev;
	a->ino = st.st_ino;
	a->size = st.st_size;
	a->mtime = st.st_mtim;
	if (parse_text(a, text, len, error) != 0) {
		free(text);
		aliases_free(a);
		return NULL;
	}
	free(text);
	return a;
}

int
aliases_refresh(struct aliases **ap, char **error)
{
	struct aliases *a = *ap, *n;
	struct stat st;

	*error = NULL;
	if (stat(a->path, &st) != 0) {
		*error = xasprintf("%s: %s", a->path, strerror(errno));
		return -1;
	}
	if (st.st_dev == a->dev && st.st_ino == a->ino && st.st_size == a->size &&
	    st.st_mtim.tv_sec == a->mtime.tv_sec &&
	    st.st_mtim.tv_nsec == a->mtime.tv_nsec)
		return 0;
	if ((n = aliases_load(a->path, error)) == NULL)
		return -1;
	aliases_free(a);
	*ap = n;
	return 0;
}

const char *const *
aliases_lookup(const struct aliases *a, const char *name, size_t *n_targets)
{
	char key[AL_MAX_NAME + 1];
	size_t lo = 0, hi, len;

	*n_targets = 0;
	if (a == NULL || (len = strlen(name)) == 0 || len > AL_MAX_NAME)
		return NULL;
	memcpy(key, name, len + 1);
	lower(key);
	hi = a->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(key, a->v[mid].name);

		if (c == 0) {
			*n_targets = a->v[mid].n_targets;
			return (const char *const *)a->v[mid].targets;
		}
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* ---- expansion ------------------------------------------------------- */

#define AL_MAX_INCLUDES ALIASES_MAX_DEPTH   /* nested include files */

struct expand {
	const struct aliases *a;
	const struct aliases_policy *pol;
	char **out;
	enum alias_kind *kinds;
	size_t n_out;
	const char *stack[ALIASES_MAX_DEPTH + 2];   /* alias names in expansion */
	int depth;
	const char *incs[AL_MAX_INCLUDES + 1];      /* include files being read */
	int n_incs;
	char *error;
};

enum alias_kind
aliases_target_kind(const char *t)
{
	if (strncasecmp(t, ":include:", 9) == 0)
		return ALIAS_INCLUDE;
	if (t[0] == '|')
		return ALIAS_COMMAND;
	if (t[0] == '/')
		return ALIAS_FILE;
	return ALIAS_ADDRESS;
}

/* Is domain (one trailing dot ignored) one of the local domains? */
static bool
is_local_domain(const struct aliases_policy *pol, const char *d)
{
	size_t dl = strlen(d);

	if (dl > 0 && d[dl - 1] == '.')
		dl--;
	if (dl == 0)
		return false;
	for (size_t i = 0; i < pol->n_local_domains; i++) {
		const char *ld = pol->local_domains[i];
		size_t ll = strlen(ld);

		if (ll > 0 && ld[ll - 1] == '.')
			ll--;
		if (ll == dl && strncasecmp(ld, d, dl) == 0)
			return true;
	}
	return false;
}

/* Add one result (deduplicated: addresses case-insensitively). */
static int
add_result(struct expand *x, const char *addr, enum alias_kind kind)
{
	for (size_t i = 0; i < x->n_out; i++)
		if (x->kinds[i] == kind && (kind == ALIAS_ADDRESS ?
		    strcasecmp(x->out[i], addr) : strcmp(x->out[i], addr)) == 0)
			return 0;
	if (x->n_out >= AL_MAX_RESULT) {
		x->error = xstrdup("alias expansion yields too many addresses");
		return -1;
	}
	x->out = xrealloc(x->out, (x->n_out + 1) * sizeof(char *));
	x->kinds = xrealloc(x->kinds, (x->n_out + 1) * sizeof(*x->kinds));
	x->kinds[x->n_out] = kind;
	x->out[x->n_out++] = xstrdup(addr);
	return 0;
}

/*
 * May an include file be trusted?  Not when it belongs to someone other
 * than root or us (its commands and files would run as alias_user, not as
 * its owner), nor when group or others may write it or its directory
 * (unless sticky, like /tmp): they could then send mail anywhere, or to
 * commands.  NULL or an error text.
 */
static const char *
include_unsafe(const char *path, const struct stat *st)
{
	char dir[AL_MAX_TARGET + 1];
	const char *slash = strrchr(path, '/');
	struct stat ds;
	size_t dl;

	if (st->st_uid != 0 && st->st_uid != geteuid())
		return "owned by another user than root or the daemon's";
	if (st->st_mode & (S_IWGRP | S_IWOTH))
		return "writable by group or others";
	dl = slash == NULL || slash == path ? 1 : (size_t)(slash - path);
	if (dl >= sizeof(dir))
		return "path too long";
	memcpy(dir, slash == NULL ? "/" : path, dl);
	dir[dl] = '\0';
	if (stat(dir, &ds) != 0)
		return "its directory cannot be checked";
	if ((ds.st_mode & (S_IWGRP | S_IWOTH)) && !(ds.st_mode & S_ISVTX))
		return "its directory is writable by group or others";
	return NULL;
}

/*
 * Read an include file into a target list: lines of comma-separated
 * targets, '#' comment lines and empty lines skipped.  -1 with x->error.
 */
static int
read_include(struct expand *x, const char *path, char ***list, size_t *n)
{
	struct stat st;
	char *text, *err = NULL, *p, *end;
	const char *why;
	size_t len;
	int r = 0;

	*list = NULL;
	*n = 0;
	if (path[0] != '/') {
		x->error = xasprintf("%.200s: include file must be an absolute path",
		    path);
		return -1;
	}
	if ((text = read_file(path, AL_MAX_INCLUDE, &st, &len, &err)) == NULL) {
		x->error = err;
		return -1;
	}
	if ((why = include_unsafe(path, &st)) != NULL) {
		x->error = xasprintf("%.200s: include file refused: %s", path, why);
		free(text);
		return -1;
	}
	for (p = text, end = text + len; p < end && r == 0; ) {
		char *nl = memchr(p, '\n', (size_t)(end - p)), *t;
		size_t ll = nl ? (size_t)(nl - p) : (size_t)(end - p);
		const char *e;

		if (ll > AL_MAX_LINE) {
			x->error = xasprintf("%.200s: line too long", path);
			r = -1;
			break;
		}
		if (memchr(p, '\0', ll) != NULL) {
			x->error = xasprintf("%.200s: NUL byte", path);
			r = -1;
			break;
		}
		p[ll] = '\0';
		t = p;
		p = nl ? nl + 1 : end;
		if (ll > 0 && t[ll - 1] == '\r')
			t[--ll] = '\0';
		t = trim(t, &ll);
		t[ll] = '\0';
		if (ll == 0 || t[0] == '#')
			continue;
		if ((e = split_targets(t, list, n)) != NULL) {
			x->error = xasprintf("%.200s: %s", path, e);
			r = -1;
		}
	}
	free(text);
	if (r != 0) {
		aliases_free_list(*list, *n);
		*list = NULL;
		*n = 0;
	}
	return r;
}

static int expand_addr(struct expand *x, const char *addr, const char *domain);
static int expand_target(struct expand *x, const char *t, const char *domain);

/* An allowed ":include:" target: read it and expand what it lists. */
static int
expand_include(struct expand *x, const char *path, const char *domain)
{
	char **list = NULL;
	size_t n = 0;
	int r = 0;

	for (int i = 0; i < x->n_incs; i++)
		if (strcmp(x->incs[i], path) == 0) {
			x->error = xasprintf("include loop at %.200s", path);
			return -1;
		}
	if (x->depth >= ALIASES_MAX_DEPTH || x->n_incs >= AL_MAX_INCLUDES) {
		x->error = xstrdup("aliases nested too deeply");
		return -1;
	}
	if (read_include(x, path, &list, &n) < 0)
		return -1;
	x->incs[x->n_incs++] = path;
	x->stack[x->depth++] = NULL;        /* a level, but no alias name */
	for (size_t i = 0; i < n && r == 0; i++)
		r = expand_target(x, list[i], domain);
	x->depth--;
	x->n_incs--;
	aliases_free_list(list, n);
	return r;
}

/* A target kind that is not allowed: an error, or returned as it is. */
static int
refused(struct expand *x, const char *t, enum alias_kind kind, const char *what)
{
	if (x->pol->keep_refused)
		return add_result(x, t, kind);
	x->error = xasprintf("%s targets are not allowed (%.200s)", what, t);
	return -1;
}

/* One target of an alias under expansion (domain: for bare names). */
static int
expand_target(struct expand *x, const char *t, const char *domain)
{
	const struct aliases_policy *pol = x->pol;

	switch (aliases_target_kind(t)) {
	case ALIAS_INCLUDE:
		if (!pol->allow_include)
			return refused(x, t, ALIAS_INCLUDE, "\":include:\"");
		return expand_include(x, t + 9, domain);
	case ALIAS_COMMAND:
		if (!pol->allow_pipe)
			return refused(x, t, ALIAS_COMMAND, "pipe");
		return add_result(x, t, ALIAS_COMMAND);
	case ALIAS_FILE:
		if (!pol->allow_file)
			return refused(x, t, ALIAS_FILE, "file");
		return add_result(x, t, ALIAS_FILE);
	case ALIAS_ADDRESS:
		break;
	}
	if (strchr(t, '@') == NULL && domain != NULL && *domain != '\0') {
		char *q = xasprintf("%s@%s", t, domain);
		int r = expand_addr(x, q, domain);

		free(q);
		return r;
	}
	return expand_addr(x, t, domain);
}

/*
 * Expand one address: returned as is unless it is local and an alias.
 * parent_domain is unused for addresses with a domain.
 */
static int
expand_addr(struct expand *x, const char *addr, const char *parent_domain)
{
	const char *at = strrchr(addr, '@');
	const char *domain = at ? at + 1 : "";
	char local[AL_MAX_NAME + 1], base[AL_MAX_NAME + 1];
	const char *const *t = NULL;
	const char *name = NULL;
	size_t ll = at ? (size_t)(at - addr) : strlen(addr), n = 0;
	int r = 0;

	(void)parent_domain;
	if (at != NULL && !is_local_domain(x->pol, domain))
		return add_result(x, addr, ALIAS_ADDRESS);
	if (ll == 0 || ll > AL_MAX_NAME)
		return add_result(x, addr, ALIAS_ADDRESS);
	memcpy(local, addr, ll);
	local[ll] = '\0';
	lower(local);
	if ((t = aliases_lookup(x->a, local, &n)) != NULL)
		name = local;
	else if (x->pol->recipient_delimiter && x->pol->recipient_delimiter[0]) {
		size_t bl = strcspn(local, x->pol->recipient_delimiter);

		if (bl > 0 && bl < ll) {
			memcpy(base, local, bl);
			base[bl] = '\0';
			if ((t = aliases_lookup(x->a, base, &n)) != NULL)
				name = base;
		}
	}
	if (t == NULL)
		return add_result(x, addr, ALIAS_ADDRESS);
	/* the alias being expanded names itself: that is its mailbox */
	if (x->depth > 0 && x->stack[x->depth - 1] != NULL &&
	    strcmp(x->stack[x->depth - 1], name) == 0)
		return add_result(x, addr, ALIAS_ADDRESS);
	for (int i = 0; i < x->depth; i++)
		if (x->stack[i] != NULL && strcmp(x->stack[i], name) == 0) {
			x->error = xasprintf("alias loop at \"%.100s\"", name);
			return -2;
		}
	if (x->depth >= ALIASES_MAX_DEPTH) {
		x->error = xstrdup("aliases nested too deeply");
		return -2;
	}
	x->stack[x->depth++] = name;
	for (size_t i = 0; i < n && r == 0; i++)
		r = expand_target(x, t[i], domain);
	x->depth--;
	return r;
}

int
aliases_expand(const struct aliases *a, const struct aliases_policy *pol,
    const char *address, char ***out, enum alias_kind **kinds, size_t *n_out,
    char **error)
{
	struct expand x;
	int rc;

	memset(&x, 0, sizeof(x));
	x.a = a;
	x.pol = pol;
	*out = NULL;
	if (kinds != NULL)
		*kinds = NULL;
	*n_out = 0;
	*error = NULL;
	if ((rc = expand_addr(&x, address, NULL)) != 0) {
		aliases_free_list(x.out, x.n_out);
		free(x.kinds);
		*error = x.error ? x.error : xstrdup("alias expansion failed");
		return rc == -2 ? -2 : -1;
	}
	*out = x.out;
	if (kinds != NULL)
		*kinds = x.kinds;
	else
		free(x.kinds);
	*n_out = x.n_out;
	return 0;
}
