/*
 * qstatus.c - the per-recipient status file of a queued message (format
 * in qstatus.h): reading it (bounded), appending events, and the small
 * queries the queue manager and msagatectl need.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qstatus.h"
#include "util.h"

#define QSTATUS_MAX_LINE 2048

static void
add_entry(struct qstatus *st, char kind, size_t idx, const char *final,
    time_t when, const char *dsn, const char *detail)
{
	struct qstatus_entry *e;

	if (st->n == st->cap) {
		st->cap = st->cap ? st->cap * 2 : 16;
		st->e = xrealloc(st->e, st->cap * sizeof(*st->e));
	}
	e = &st->e[st->n++];
	e->kind = kind;
	e->idx = idx;
	e->when = when;
	e->final = final ? xstrdup(final) : NULL;
	e->dsn = dsn ? xstrdup(dsn) : NULL;
	e->detail = detail ? xstrdup(detail) : NULL;
}

/* One complete line (without LF, NUL-terminated, writable); bad ones skipped. */
static void
parse_line(struct qstatus *st, char *line)
{
	char *f[6];
	size_t nf = 0;
	unsigned long long idx, when = 0;
	char *p = line;

	while (nf < 6) {
		f[nf++] = p;
		if ((p = strchr(p, '\t')) == NULL)
			break;
		*p++ = '\0';
	}
	if (strlen(f[0]) != 1 || nf < 2 || !parse_uint(f[1], SIZE_MAX / 2, &idx))
		return;
	switch (f[0][0]) {
	case 'C':
		add_entry(st, 'C', (size_t)idx, NULL, 0, NULL, NULL);
		return;
	case 'W':
		/* f[1] is the time; not a recipient entry */
		st->warned = true;
		return;
	case 'S':
	case 'B':
	case 'D':
		if (nf < 6 || !parse_uint(f[3], INT64_MAX, &when))
			return;
		add_entry(st, f[0][0], (size_t)idx, f[2], (time_t)when, f[4], f[5]);
		return;
	default:
		return;
	}
}

void
qstatus_parse(struct qstatus *st, const char *text, size_t len)
{
	char line[QSTATUS_MAX_LINE + 1];
	size_t i = 0;

	while (i < len) {
		const char *nl = memchr(text + i, '\n', len - i);
		size_t n;

		if (nl == NULL)
			break;                  /* torn last line: ignored */
		n = (size_t)(nl - (text + i));
		if (n <= QSTATUS_MAX_LINE && memchr(text + i, '\0', n) == NULL) {
			memcpy(line, text + i, n);
			line[n] = '\0';
			parse_line(st, line);
		}
		i += n + 1;
	}
}

int
qstatus_load(int dfd, const char *id, struct qstatus *st)
{
	struct stat sb;
	char *buf;
	size_t len = 0;
	ssize_t n;
	int fd;

	memset(st, 0, sizeof(*st));
	if ((fd = openat(dfd, id, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
		return errno == ENOENT ? 0 : -1;
	if (fstat(fd, &sb) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	len = sb.st_size > QSTATUS_MAX_BYTES ? QSTATUS_MAX_BYTES : (size_t)sb.st_size;
	buf = xmalloc(len + 1);
	for (size_t got = 0; got < len; got += (size_t)n) {
		n = pread(fd, buf + got, len - got, (off_t)got);
		if (n < 0 && errno == EINTR) {
			n = 0;
			continue;
		}
		if (n <= 0) {
			len = got;
			break;
		}
	}
	close(fd);
	qstatus_parse(st, buf, len);
	free(buf);
	return 0;
}

void
qstatus_free(struct qstatus *st)
{
	for (size_t i = 0; i < st->n; i++) {
		free(st->e[i].final);
		free(st->e[i].dsn);
		free(st->e[i].detail);
	}
	free(st->e);
	memset(st, 0, sizeof(*st));
}

bool
qstatus_rcpt_complete(const struct qstatus *st, size_t idx)
{
	for (size_t i = 0; i < st->n; i++)
		if (st->e[i].kind == 'C' && st->e[i].idx == idx)
			return true;
	return false;
}

bool
qstatus_final_done(const struct qstatus *st, size_t idx, const char *final)
{
	for (size_t i = 0; i < st->n; i++) {
		const struct qstatus_entry *e = &st->e[i];

		if ((e->kind == 'S' || e->kind == 'B') && e->idx == idx &&
		    strcmp(e->final, final) == 0)
			return true;
	}
	return false;
}

const struct qstatus_entry *
qstatus_last(const struct qstatus *st, size_t idx)
{
	for (size_t i = st->n; i-- > 0;) {
		const struct qstatus_entry *e = &st->e[i];

		if (e->kind != 'C' && e->idx == idx)
			return e;
	}
	return NULL;
}

int
qstatus_open(int dfd, const char *id)
{
	struct stat sb;
	char last;
	int fd;

	fd = openat(dfd, id, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
	    0600);
	if (fd < 0)
		return -1;
	/* a crash may have left half a line: start a fresh one */
	if (fstat(fd, &sb) == 0 && sb.st_size > 0 &&
	    pread(fd, &last, 1, sb.st_size - 1) == 1 && last != '\n' &&
	    write_all(fd, "\n", 1) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* Copy s into a field: no TAB, CR, LF or other control characters. */
static void
field(struct sbuf *b, const char *s, size_t max)
{
	size_t i;

	for (i = 0; s != NULL && s[i] != '\0' && i < max; i++) {
		unsigned char c = (unsigned char)s[i];
		char ch = c < 0x20 || c == 0x7f ? '?' : (char)c;

		sbuf_add(b, &ch, 1);
	}
}

/* Format one event line into b (which holds nothing else yet). */
static void
format_line(struct sbuf *b, char kind, size_t idx, const char *final,
    const char *dsn, const char *detail)
{
	time_t now = time(NULL);

	if (kind == 'C') {
		sbuf_printf(b, "C\t%zu\n", idx);
	} else {
		sbuf_printf(b, "%c\t%zu\t", kind, idx);
		/* whole: a cut address would never match again (aliases allow
		 * targets of 1024 bytes, plus "@domain") */
		field(b, final, 1300);
		sbuf_printf(b, "\t%lld\t", (long long)now);
		field(b, dsn, 15);
		sbuf_addstr(b, "\t");
		field(b, detail, 500);
		sbuf_addstr(b, "\n");
	}
}

/* keep the in-memory copy identical to what a reader will see */
static void
note_line(struct qstatus *st, struct sbuf *b)
{
	if (st != NULL) {
		b->s[b->len - 1] = '\0';
		parse_line(st, b->s);
		b->s[b->len - 1] = '\n';
	}
}

int
qstatus_append(int fd, struct qstatus *st, char kind, size_t idx,
    const char *final, const char *dsn, const char *detail)
{
	struct sbuf b;
	int rc;

	sbuf_init(&b, 0);
	format_line(&b, kind, idx, final, dsn, detail);
	rc = write_all(fd, b.s, b.len) < 0 ? -1 : 0;
	if (rc == 0)
		note_line(st, &b);
	sbuf_free(&b);
	return rc;
}

int
qstatus_append_mem(struct sbuf *out, struct qstatus *st, char kind,
    size_t idx, const char *final, const char *dsn, const char *detail)
{
	struct sbuf b;

	sbuf_init(&b, 0);
	format_line(&b, kind, idx, final, dsn, detail);
	sbuf_add(out, b.s, b.len);
	note_line(st, &b);
	sbuf_free(&b);
	return 0;
}

int
qstatus_append_warned(int fd, struct qstatus *st, const char *dsn_id)
{
	struct sbuf b;
	int rc;

	sbuf_init(&b, 0);
	sbuf_printf(&b, "W\t%lld\t", (long long)time(NULL));
	field(&b, dsn_id, 64);
	sbuf_addstr(&b, "\n");
	rc = write_all(fd, b.s, b.len) < 0 ? -1 : 0;
	if (rc == 0 && st != NULL)
		st->warned = true;
	sbuf_free(&b);
	return rc;
}
