/*
 * qfile.c - queue ids and the envelope header of a queue file (see
 * qfile.h for the format).  Shared by the queue role, the SMTP role (which
 * writes the header into the file the queue role hands out) and
 * msagatectl (which reads it).  Everything read is bounded: line length,
 * number of recipients, total header size.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "qfile.h"
#include "util.h"

#define QFILE_MAX_LINE   2048      /* one header line, without its LF */
#define QFILE_MAX_RCPTS  100000
#define QFILE_MAX_LINES  (QFILE_MAX_RCPTS + 64)

/*
 * qid_new - 8 hex digits of seconds, 5 of microseconds, 3 random.  The
 * time part is forced to increase strictly within the process, so two ids
 * made by one process never collide; ids of different processes that fall
 * on the same microsecond differ by the random part, and the queue role's
 * O_EXCL create catches the rest.
 */
void
qid_new(char out[QID_LEN + 1])
{
	static uint64_t last;       /* seconds * 1000000 + usec of the last id */
	static unsigned char pool[64];
	static size_t pool_left;
	static const char hex[] = "0123456789ABCDEF";
	struct timeval tv;
	uint64_t t;
	uint32_t sec, usec;
	unsigned char rnd[2];
	unsigned r;

	gettimeofday(&tv, NULL);
	t = (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
	if (t <= last)
		t = last + 1;
	last = t;
	sec = (uint32_t)(t / 1000000u);
	usec = (uint32_t)(t % 1000000u);
	/* random bits for 32 ids per getrandom() */
	if (pool_left < sizeof(rnd)) {
		random_bytes(pool, sizeof(pool));
		pool_left = sizeof(pool);
	}
	pool_left -= sizeof(rnd);
	memcpy(rnd, pool + pool_left, sizeof(rnd));
	r = ((unsigned)rnd[0] << 8 | rnd[1]) & 0xfff;

	for (int i = 7; i >= 0; i--, sec >>= 4)
		out[i] = hex[sec & 0xf];
	for (int i = 12; i >= 8; i--, usec >>= 4)
		out[i] = hex[usec & 0xf];
	for (int i = 15; i >= 13; i--, r >>= 4)
		out[i] = hex[r & 0xf];
	out[QID_LEN] = '\0';
}

int
qid_valid(const char *s)
{
	size_t i;

	if (s == NULL)
		return 0;
	for (i = 0; i < QID_LEN; i++) {
		char c = s[i];
		if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F')))
			return 0;
	}
	return s[QID_LEN] == '\0';
}

/* A value may go into the header: no CR, LF (NUL cannot occur in a C string). */
static int
value_ok(const char *v)
{
	return v != NULL && strpbrk(v, "\r\n") == NULL &&
	    strlen(v) <= QFILE_MAX_LINE - 16;
}

static int
add_kv(struct sbuf *b, const char *key, const char *val)
{
	if (!value_ok(val))
		return -1;
	return sbuf_printf(b, "%s=%s\n", key, val) ? 0 : -1;
}

long
qfile_format_header(const struct qenvelope *env, char **out)
{
	struct sbuf b;
	size_t i;
	int bad = 0;

	*out = NULL;
	if (!qid_valid(env->id) || env->sender == NULL || env->n_rcpts == 0 ||
	    env->n_rcpts > QFILE_MAX_RCPTS)
		return -1;
	sbuf_init(&b, 0);
	bad |= !sbuf_printf(&b, "%s\n", QFILE_MAGIC);
	bad |= add_kv(&b, "id", env->id);
	bad |= !sbuf_printf(&b, "arrival=%lld\n", (long long)env->arrival);
	bad |= add_kv(&b, "sender", env->sender);
	for (i = 0; i < env->n_rcpts && !bad; i++)
		bad |= add_kv(&b, "rcpt", env->rcpts[i]);
	if (env->auth_user != NULL)
		bad |= add_kv(&b, "auth_user", env->auth_user);
	bad |= add_kv(&b, "client", env->client ? env->client : "");
	bad |= !sbuf_printf(&b, "client_port=%u\n", env->client_port);
	bad |= add_kv(&b, "helo", env->helo ? env->helo : "");
	if (env->tls != NULL)
		bad |= add_kv(&b, "tls", env->tls);
	bad |= add_kv(&b, "listener", env->listener ? env->listener : "");
	if (env->smtputf8)
		bad |= add_kv(&b, "smtputf8", "yes");
	if (env->eightbit)
		bad |= add_kv(&b, "body", "8BITMIME");
	bad |= !sbuf_addstr(&b, "\n");
	if (bad) {
		sbuf_free(&b);
		return -1;
	}
	*out = b.s;
	return (long)b.len;
}

/*
 * Read one LF-terminated line of at most QFILE_MAX_LINE bytes into buf
 * (without the LF).  Returns its length, -1 on EOF/overlong/NUL byte.
 */
static long
read_line(FILE *fp, char *buf, size_t size)
{
	size_t n = 0;
	int c;

	while ((c = getc(fp)) != EOF) {
		if (c == '\n') {
			buf[n] = '\0';
			return (long)n;
		}
		if (c == '\0' || c == '\r' || n + 1 >= size)
			return -1;
		buf[n++] = (char)c;
	}
	return -1;
}

static int
set_str(char **dst, const char *v)
{
	if (*dst != NULL)        /* a key given twice: refuse, it is not ours */
		return -1;
	*dst = xstrdup(v);
	return 0;
}

int
qfile_read_header(FILE *fp, struct qenvelope *env)
{
	char line[QFILE_MAX_LINE + 1];
	size_t cap_rcpts = 0, nlines = 0;
	unsigned long long num;
	long n;
	int have_id = 0, have_arrival = 0;
	long long off;

	memset(env, 0, sizeof(*env));
	if (read_line(fp, line, sizeof(line)) < 0 || strcmp(line, QFILE_MAGIC) != 0)
		return -1;
	for (;;) {
		char *eq, *val;

		if ((n = read_line(fp, line, sizeof(line))) < 0)
			goto bad;
		if (n == 0)
			break;
		if (++nlines > QFILE_MAX_LINES)
			goto bad;
		if ((eq = strchr(line, '=')) == NULL)
			goto bad;
		*eq = '\0';
		val = eq + 1;
		if (strcmp(line, "id") == 0) {
			if (have_id || !qid_valid(val))
				goto bad;
			memcpy(env->id, val, QID_LEN + 1);
			have_id = 1;
		} else if (strcmp(line, "arrival") == 0) {
			if (have_arrival || !parse_uint(val, INT64_MAX, &num))
				goto bad;
			env->arrival = (time_t)num;
			have_arrival = 1;
		} else if (strcmp(line, "sender") == 0) {
			if (set_str(&env->sender, val) < 0)
				goto bad;
		} else if (strcmp(line, "rcpt") == 0) {
			if (env->n_rcpts >= QFILE_MAX_RCPTS)
				goto bad;
			if (env->n_rcpts == cap_rcpts) {
				cap_rcpts = cap_rcpts ? cap_rcpts * 2 : 8;
				env->rcpts = xrealloc(env->rcpts,
				    cap_rcpts * sizeof(*env->rcpts));
			}
			env->rcpts[env->n_rcpts++] = xstrdup(val);
		} else if (strcmp(line, "auth_user") == 0) {
			if (set_str(&env->auth_user, val) < 0)
				goto bad;
		} else if (strcmp(line, "client") == 0) {
			if (set_str(&env->client, val) < 0)
				goto bad;
		} else if (strcmp(line, "client_port") == 0) {
			if (!parse_uint(val, 65535, &num))
				goto bad;
			env->client_port = (unsigned)num;
		} else if (strcmp(line, "helo") == 0) {
			if (set_str(&env->helo, val) < 0)
				goto bad;
		} else if (strcmp(line, "tls") == 0) {
			if (set_str(&env->tls, val) < 0)
				goto bad;
		} else if (strcmp(line, "listener") == 0) {
			if (set_str(&env->listener, val) < 0)
				goto bad;
		} else if (strcmp(line, "smtputf8") == 0) {
			env->smtputf8 = strcmp(val, "yes") == 0;
		} else if (strcmp(line, "body") == 0) {
			env->eightbit = strcmp(val, "8BITMIME") == 0;
		}
		/* unknown keys are ignored: newer writers may add some */
	}
	if (!have_id || !have_arrival || env->sender == NULL)
		goto bad;
	if ((off = ftello(fp)) < 0)
		goto bad;
	env->body_offset = off;
	return 0;
bad:
	qenvelope_free(env);
	return -1;
}

void
qenvelope_free(struct qenvelope *env)
{
	size_t i;

	if (env == NULL)
		return;
	for (i = 0; i < env->n_rcpts; i++)
		free(env->rcpts[i]);
	free(env->rcpts);
	free(env->sender);
	free(env->auth_user);
	free(env->client);
	free(env->helo);
	free(env->tls);
	free(env->listener);
	memset(env, 0, sizeof(*env));
}

/* Returns buf, or NULL (and an empty buf) when the path does not fit. */
char *
qfile_path(char *buf, size_t len, const char *state_dir, const char *sub,
    const char *id)
{
	int n;

	n = snprintf(buf, len, "%s/%s/%s", state_dir, sub, id);
	if (n < 0 || (size_t)n >= len) {
		if (len > 0)
			buf[0] = '\0';
		errno = ENAMETOOLONG;
		return NULL;
	}
	return buf;
}

int
qid_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
qfile_list_ids(int dfd, char ***ids_out, size_t *n_out)
{
	DIR *d;
	struct dirent *de;
	char **ids = NULL;
	size_t n = 0, cap = 0;
	int fd;

	*n_out = 0;
	*ids_out = NULL;
	if ((fd = dup(dfd)) < 0)
		return -1;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return -1;
	}
	rewinddir(d);            /* the offset is shared with dfd */
	while ((de = readdir(d)) != NULL) {
		if (!qid_valid(de->d_name))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			ids = xrealloc(ids, cap * sizeof(*ids));
		}
		ids[n++] = xstrdup(de->d_name);
	}
	closedir(d);
	if (n > 0)
		qsort(ids, n, sizeof(*ids), qid_cmp);
	*n_out = n;
	*ids_out = ids;
	return 0;
}

void
qfile_free_ids(char **ids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
}

bool
qfile_names_itself(int fd, const char *id)
{
	char want[sizeof(QFILE_MAGIC) + QID_LEN + 8], got[sizeof(want)];
	int n = snprintf(want, sizeof(want), "%s\nid=%s\n", QFILE_MAGIC, id);
	ssize_t r;

	if (n < 0 || (size_t)n >= sizeof(want))
		return false;
	r = pread(fd, got, (size_t)n, 0);
	return r == n && memcmp(got, want, (size_t)n) == 0;
}
