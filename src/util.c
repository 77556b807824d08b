/*
 * util.c - small helpers shared by every msagate program (see util.h):
 * allocation, bounded strings, base64, Dovecot tab-escaping, constant-time
 * comparison, randomness and fd utilities.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/random.h>
#include <sys/socket.h>

#include "util.h"
#include "log.h"

void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (p == NULL)
		fatalx("out of memory (%zu bytes)", n);
	return p;
}

void *
xcalloc(size_t n, size_t m)
{
	void *p = calloc(n ? n : 1, m ? m : 1);
	if (p == NULL)
		fatalx("out of memory (%zu x %zu bytes)", n, m);
	return p;
}

void *
xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (q == NULL)
		fatalx("out of memory (%zu bytes)", n);
	return q;
}

char *
xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

/* xstrndup - copy at most n bytes of s (fewer if s is shorter). */
char *
xstrndup(const char *s, size_t n)
{
	char *p;

	n = strnlen(s, n);
	p = xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *
xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	s = xvasprintf(NULL, fmt, ap);
	va_end(ap);
	return s;
}

char *
xvasprintf(size_t *len, const char *fmt, va_list ap)
{
	char *s;
	int n;

	n = vasprintf(&s, fmt, ap);
	if (n < 0)
		fatalx("out of memory (asprintf)");
	if (len != NULL)
		*len = (size_t)n;
	return s;
}

void
sbuf_init(struct sbuf *b, size_t max)
{
	b->s = NULL;
	b->len = b->cap = 0;
	b->max = max;
}

/* sbuf_add - append n bytes, keeping a NUL after them; false past b->max. */
bool
sbuf_add(struct sbuf *b, const void *p, size_t n)
{
	if (b->max && b->len + n > b->max)
		return false;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		while (cap < b->len + n + 1)
			cap *= 2;
		b->s = xrealloc(b->s, cap);
		b->cap = cap;
	}
	if (n)
		memcpy(b->s + b->len, p, n);
	b->len += n;
	b->s[b->len] = '\0';
	return true;
}

bool
sbuf_addstr(struct sbuf *b, const char *s)
{
	return sbuf_add(b, s, strlen(s));
}

bool
sbuf_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	char tmp[512], *big = NULL;
	int n;
	bool ok;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0)
		return false;
	if ((size_t)n < sizeof(tmp))
		return sbuf_add(b, tmp, (size_t)n);
	va_start(ap, fmt);
	n = vasprintf(&big, fmt, ap);
	va_end(ap);
	if (n < 0)
		fatalx("out of memory (sbuf_printf)");
	ok = sbuf_add(b, big, (size_t)n);
	free(big);
	return ok;
}

void
sbuf_reset(struct sbuf *b)
{
	b->len = 0;
	if (b->s)
		b->s[0] = '\0';
}

void
sbuf_free(struct sbuf *b)
{
	if (b->s)
		secure_zero(b->s, b->cap);
	free(b->s);
	sbuf_init(b, b->max);
}

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t
b64_encoded_len(size_t n)
{
	return (n + 2) / 3 * 4;
}

void
b64_encode(const unsigned char *in, size_t n, char *out)
{
	size_t i;
	char *o = out;

	for (i = 0; i + 2 < n; i += 3) {
		*o++ = b64chars[in[i] >> 2];
		*o++ = b64chars[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
		*o++ = b64chars[((in[i + 1] & 15) << 2) | (in[i + 2] >> 6)];
		*o++ = b64chars[in[i + 2] & 63];
	}
	if (i < n) {
		*o++ = b64chars[in[i] >> 2];
		if (i + 1 < n) {
			*o++ = b64chars[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
			*o++ = b64chars[(in[i + 1] & 15) << 2];
		} else {
			*o++ = b64chars[(in[i] & 3) << 4];
			*o++ = '=';
		}
		*o++ = '=';
	}
	*o = '\0';
}

size_t
b64_decoded_max(size_t n)
{
	return (n + 3) / 4 * 3;
}

static int
b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/*
 * b64_decode - strict RFC 4648 decoding: length a multiple of 4, '=' only
 * as the last one or two characters, unused bits zero.
 */
ssize_t
b64_decode(const char *in, size_t n, unsigned char *out)
{
	size_t i, o = 0;

	if (n % 4 != 0)
		return -1;
	for (i = 0; i < n; i += 4) {
		int v[4], pad = 0, k;
		for (k = 0; k < 4; k++) {
			unsigned char c = (unsigned char)in[i + k];
			if (c == '=' && i + 4 == n && k >= 2) {
				v[k] = 0;
				pad++;
				continue;
			}
			if (pad)
				return -1;   /* data after '=' */
			v[k] = b64val(c);
			if (v[k] < 0)
				return -1;
		}
		if (pad == 2 && (v[1] & 15))
			return -1;
		if (pad == 1 && (v[2] & 3))
			return -1;
		out[o++] = (unsigned char)((v[0] << 2) | (v[1] >> 4));
		if (pad < 2)
			out[o++] = (unsigned char)(((v[1] & 15) << 4) | (v[2] >> 2));
		if (pad < 1)
			out[o++] = (unsigned char)(((v[2] & 3) << 6) | v[3]);
	}
	out[o] = '\0';
	return (ssize_t)o;
}

bool
b64_valid(const char *in, size_t n)
{
	unsigned char stackbuf[512], *buf;
	ssize_t r;

	if (n % 4 != 0)
		return false;
	buf = b64_decoded_max(n) + 1 <= sizeof(stackbuf) ? stackbuf :
	    xmalloc(b64_decoded_max(n) + 1);
	r = b64_decode(in, n, buf);
	secure_zero(buf, b64_decoded_max(n) + 1);
	if (buf != stackbuf)
		free(buf);
	return r >= 0;
}

void
tab_escape(struct sbuf *out, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '\001': sbuf_add(out, "\0011", 2); break;
		case '\t': sbuf_add(out, "\001t", 2); break;
		case '\r': sbuf_add(out, "\001r", 2); break;
		case '\n': sbuf_add(out, "\001n", 2); break;
		default: sbuf_add(out, s, 1); break;
		}
	}
}

/*
 * tab_unescape_len - Dovecot's str_tabunescape: \001 X, X in 0 1 t r n or
 * literal.  *outlen (if not NULL) gets the decoded length, which counts
 * decoded NULs.  A dangling \001 at the end is dropped and refused.
 */
bool
tab_unescape_len(char *s, size_t *outlen)
{
	char *start = s, *w = s;
	bool ok = true;

	while (*s != '\0') {
		if (*s != '\001') {
			*w++ = *s++;
			continue;
		}
		s++;
		switch (*s) {
		case '\0':
			ok = false;     /* dangling escape byte at the end */
			continue;
		case '0': *w++ = '\0'; break;
		case '1': *w++ = '\001'; break;
		case 't': *w++ = '\t'; break;
		case 'r': *w++ = '\r'; break;
		case 'n': *w++ = '\n'; break;
		default: *w++ = *s; break;
		}
		s++;
	}
	*w = '\0';
	if (outlen != NULL)
		*outlen = (size_t)(w - start);
	return ok;
}

bool
tab_unescape(char *s)
{
	return tab_unescape_len(s, NULL);
}

/*
 * ct_equal - compare without an early exit; the time depends only on the
 * length of `b` (the attacker-chosen side should be `a`).
 */
bool
ct_equal(const void *a, size_t alen, const void *b, size_t blen)
{
	const volatile unsigned char *x = a, *y = b;
	unsigned char diff = (unsigned char)(alen != blen);
	size_t i;

	for (i = 0; i < blen; i++)
		diff |= (unsigned char)((i < alen ? x[i] : 0) ^ y[i]);
	return diff == 0;
}

void
secure_zero(void *p, size_t n)
{
	volatile unsigned char *q = p;
	while (n--)
		*q++ = 0;
}

void
random_bytes(void *buf, size_t n)
{
	unsigned char *p = buf;

	while (n > 0) {
		ssize_t r = getrandom(p, n, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			fatal("getrandom");
		}
		p += r;
		n -= (size_t)r;
	}
}

int
set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -1;
	return fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

int
set_cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFD);
	if (fl < 0)
		return -1;
	return fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
}

ssize_t
write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	size_t left = n;

	while (left > 0) {
		ssize_t w = write(fd, p, left);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (w == 0) {
			errno = EIO;
			return -1;
		}
		p += w;
		left -= (size_t)w;
	}
	return (ssize_t)n;
}

ssize_t
send_fds(int sock, const void *buf, size_t len, const int *fds, int nfds, int flags)
{
	struct msghdr mh;
	struct iovec iov = { (void *)(uintptr_t)buf, len };
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(4 * sizeof(int))];
	} u;
	ssize_t n;

	if (nfds < 0 || nfds > 4) {
		errno = EINVAL;
		return -1;
	}
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (nfds > 0) {
		struct cmsghdr *ch;

		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
		ch = CMSG_FIRSTHDR(&mh);
		ch->cmsg_level = SOL_SOCKET;
		ch->cmsg_type = SCM_RIGHTS;
		ch->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
		memcpy(CMSG_DATA(ch), fds, (size_t)nfds * sizeof(int));
	}
	do
		n = sendmsg(sock, &mh, flags | MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n;
}

int
send_fd(int sock, int fd, char tag)
{
	return send_fds(sock, &tag, 1, &fd, 1, MSG_DONTWAIT) == 1 ? 0 : -1;
}

int
recv_fd(int sock, int *fd, char *tag)
{
	struct msghdr mh;
	struct iovec iov = { tag, 1 };
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(4 * sizeof(int))];
	} u;
	struct cmsghdr *ch;
	ssize_t n;

	*fd = -1;
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = u.buf;
	mh.msg_controllen = sizeof(u.buf);
	do
		n = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return n < 0 ? -1 : 0;
	for (ch = CMSG_FIRSTHDR(&mh); ch != NULL; ch = CMSG_NXTHDR(&mh, ch)) {
		size_t k;

		if (ch->cmsg_level != SOL_SOCKET || ch->cmsg_type != SCM_RIGHTS)
			continue;
		for (k = 0; k < (ch->cmsg_len - CMSG_LEN(0)) / sizeof(int); k++) {
			int got;

			memcpy(&got, CMSG_DATA(ch) + k * sizeof(int), sizeof(int));
			if (*fd < 0)
				*fd = got;
			else
				close(got);
		}
	}
	return 1;
}

bool
parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
	unsigned long long v = 0;

	if (s == NULL || *s == '\0')
		return false;
	for (; *s; s++) {
		unsigned d;
		if (*s < '0' || *s > '9')
			return false;
		d = (unsigned)(*s - '0');
		if (v > max / 10 || v * 10 > max - d || d > max)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

uint64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

long
msagated_pid_from(const char *pid_file)
{
	FILE *fp = fopen(pid_file, "r");
	char path[64], comm[32];
	long pid = 0;

	if (fp == NULL)
		return 0;
	if (fscanf(fp, "%ld", &pid) != 1 || pid <= 0 || pid > INT_MAX)
		pid = 0;
	fclose(fp);
	if (pid == 0 || (kill((pid_t)pid, 0) != 0 && errno != EPERM))
		return 0;
	/* the process name (comm) of the daemon is "msagated" */
	snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
	if ((fp = fopen(path, "r")) == NULL)
		return pid;          /* no /proc: trust the file, as before */
	if (fgets(comm, sizeof(comm), fp) == NULL)
		comm[0] = '\0';
	fclose(fp);
	comm[strcspn(comm, "\n")] = '\0';
	return strcmp(comm, "msagated") == 0 ? pid : 0;
}
