/*
 * sender-logins.c - the relay.sender_logins map (see sender-logins.h): a
 * bounded line parser into a sorted array searched by binary search.
 */
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sender-logins.h"
#include "util.h"

#define SL_MAX_FILE    (16 * 1024 * 1024)
#define SL_MAX_LINE    8192
#define SL_MAX_ENTRIES 200000
#define SL_MAX_KEY     320

struct sl_entry {
	char *key;                   /* lower case */
	char *logins;                /* "a\0b\0\0" */
};

struct sender_logins {
	char *path;
	struct sl_entry *v;
	size_t n;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
};

void
sender_logins_free(struct sender_logins *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->n; i++) {
		free(m->v[i].key);
		free(m->v[i].logins);
	}
	free(m->v);
	free(m->path);
	free(m);
}

static int
entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct sl_entry *)a)->key,
	    ((const struct sl_entry *)b)->key);
}

/* One "key logins..." line (trimmed, non-empty); NULL or an error text. */
static const char *
parse_line(struct sender_logins *m, char *l, size_t *cap)
{
	struct sbuf b;
	char *p = l, *key;
	size_t kl, n = 0;

	kl = strcspn(p, " \t");
	if (kl == 0 || kl > SL_MAX_KEY)
		return "bad key";
	key = xstrndup(p, kl);
	for (char *c = key; *c; c++) {
		if ((unsigned char)*c < 32 || *c == 127) {
			free(key);
			return "control character in key";
		}
		*c = (char)tolower((unsigned char)*c);
	}
	if (key[0] == '@' ? key[1] == '\0' || strchr(key + 1, '@') != NULL :
	    strchr(key, '@') == NULL) {
		free(key);
		return "key must be an address or @domain";
	}
	p += kl;
	sbuf_init(&b, 0);
	for (;;) {
		size_t wl;

		p += strspn(p, " \t,");
		if (*p == '\0')
			break;
		wl = strcspn(p, " \t,");
		for (size_t i = 0; i < wl; i++)
			if ((unsigned char)p[i] < 32 || p[i] == 127) {
				free(key);
				sbuf_free(&b);
				return "control character in login";
			}
		sbuf_add(&b, p, wl);
		sbuf_add(&b, "", 1);
		n++;
		p += wl;
	}
	if (n == 0) {
		free(key);
		sbuf_free(&b);
		return "no logins for this address";
	}
	sbuf_add(&b, "", 1);
	if (m->n >= SL_MAX_ENTRIES) {
		free(key);
		sbuf_free(&b);
		return "too many entries";
	}
	if (m->n == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		m->v = xrealloc(m->v, *cap * sizeof(*m->v));
	}
	m->v[m->n].key = key;
	m->v[m->n].logins = b.s;
	m->n++;
	return NULL;
}

struct sender_logins *
sender_logins_load(const char *path, char **error)
{
	struct sender_logins *m;
	struct stat st;
	FILE *f;
	char *line = NULL;
	size_t lcap = 0, cap = 0;
	ssize_t len;
	int lineno = 0;
	const char *err;

	*error = NULL;
	if ((f = fopen(path, "re")) == NULL) {
		*error = xasprintf("%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > SL_MAX_FILE) {
		*error = xasprintf("%s: not a regular file or too big", path);
		fclose(f);
		return NULL;
	}
	m = xcalloc(1, sizeof(*m));
	m->path = xstrdup(path);
	m->dev = st.st_dev;
	m->ino = st.st_ino;
	m->size = st.st_size;
	m->mtime = st.st_mtim;
	while ((len = getline(&line, &lcap, f)) >= 0) {
		char *p = line;

		lineno++;
		if ((size_t)len > SL_MAX_LINE) {
			*error = xasprintf("%s:%d: line too long", path, lineno);
			goto fail;
		}
		if (memchr(line, '\0', (size_t)len) != NULL) {
			*error = xasprintf("%s:%d: NUL byte", path, lineno);
			goto fail;
		}
		while (len > 0 && isspace((unsigned char)line[len - 1]))
			line[--len] = '\0';
		p += strspn(p, " \t");
		if (*p == '\0' || *p == '#')
			continue;
		if ((err = parse_line(m, p, &cap)) != NULL) {
			*error = xasprintf("%s:%d: %s", path, lineno, err);
			goto fail;
		}
	}
	if (ferror(f)) {
		*error = xasprintf("%s: read error", path);
		goto fail;
	}
	free(line);
	fclose(f);
	if (m->n > 0)
		qsort(m->v, m->n, sizeof(*m->v), entry_cmp);
	for (size_t i = 1; i < m->n; i++)
		if (strcmp(m->v[i - 1].key, m->v[i].key) == 0) {
			*error = xasprintf("%s: key \"%.100s\" defined twice", path,
			    m->v[i].key);
			sender_logins_free(m);
			return NULL;
		}
	return m;
fail:
	free(line);
	fclose(f);
	sender_logins_free(m);
	return NULL;
}

int
sender_logins_refresh(struct sender_logins **mp, char **error)
{
	struct sender_logins *m = *mp, *n;
	struct stat st;

	*error = NULL;
	if (stat(m->path, &st) != 0) {
		*error = xasprintf("%s: %s", m->path, strerror(errno));
		return -1;
	}
	if (st.st_dev == m->dev && st.st_ino == m->ino && st.st_size == m->size &&
	    st.st_mtim.tv_sec == m->mtime.tv_sec &&
	    st.st_mtim.tv_nsec == m->mtime.tv_nsec)
		return 0;
	if ((n = sender_logins_load(m->path, error)) == NULL)
		return -1;
	sender_logins_free(m);
	*mp = n;
	return 0;
}

/* Exact key (already lower case) or NULL. */
static const char *
find_key(const struct sender_logins *m, const char *key)
{
	size_t lo = 0, hi = m->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(key, m->v[mid].key);

		if (c == 0)
			return m->v[mid].logins;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

const char *
sender_logins_find(const struct sender_logins *m, const char *address,
                   const char *delim)
{
	char key[SL_MAX_KEY + 2];
	const char *at, *r;
	size_t len = strlen(address), ll;

	if (m == NULL || len == 0 || len > SL_MAX_KEY ||
	    (at = strrchr(address, '@')) == NULL)
		return NULL;
	for (size_t i = 0; i <= len; i++)
		key[i] = (char)tolower((unsigned char)address[i]);
	/* one trailing dot on the domain is ignored */
	if (len > 1 && key[len - 1] == '.')
		key[--len] = '\0';
	if ((r = find_key(m, key)) != NULL)
		return r;
	ll = (size_t)(at - address);
	if (delim != NULL && delim[0] != '\0') {
		size_t bl = strcspn(key, delim);

		if (bl > 0 && bl < ll) {
			memmove(key + bl, key + ll, len - ll + 1);
			if ((r = find_key(m, key)) != NULL)
				return r;
			ll = bl;
		}
	}
	return find_key(m, key + ll);
}

bool
sender_logins_has(const char *list, const char *login)
{
	if (list == NULL)
		return false;
	for (const char *p = list; *p; p += strlen(p) + 1)
		if (strcasecmp(p, login) == 0)
			return true;
	return false;
}
