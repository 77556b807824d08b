/*
 * util.h - small helpers shared by every msagate program: allocation that
 * dies cleanly on OOM, bounded string building, base64 (RFC 4648), Dovecot
 * tab-escaping, constant-time comparison, random bytes, fd helpers.
 */
#ifndef MSAGATE_UTIL_H
#define MSAGATE_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t m);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* xvasprintf - xasprintf from a va_list; *len (if not NULL) gets its length. */
char *xvasprintf(size_t *len, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* Growable byte string with an optional hard cap (0 = none). */
struct sbuf {
	char *s;
	size_t len, cap, max;
};
void sbuf_init(struct sbuf *b, size_t max);
bool sbuf_add(struct sbuf *b, const void *p, size_t n);   /* false past max */
bool sbuf_addstr(struct sbuf *b, const char *s);
bool sbuf_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sbuf_reset(struct sbuf *b);
void sbuf_free(struct sbuf *b);

/*
 * base64 - RFC 4648 with padding, single line.  b64_decode is strict: only
 * the alphabet and correct padding; returns decoded length or -1.  Output
 * is NUL-terminated (out must hold b64_decoded_max(len)+1).
 */
size_t b64_encoded_len(size_t n);                  /* without NUL */
void b64_encode(const unsigned char *in, size_t n, char *out);  /* out NUL-terminated */
size_t b64_decoded_max(size_t n);
ssize_t b64_decode(const char *in, size_t n, unsigned char *out);
bool b64_valid(const char *in, size_t n);

/* Dovecot auth protocol escaping: \001 then 0,1,t,r,n. */
void tab_escape(struct sbuf *out, const char *s);
/* Unescape in place; returns false on a malformed escape at the end. */
bool tab_unescape(char *s);
/* As tab_unescape; *outlen (if not NULL) gets the decoded length, NULs included. */
bool tab_unescape_len(char *s, size_t *outlen);

/* Constant-time equality of two byte strings (length leaks only via a flag). */
bool ct_equal(const void *a, size_t alen, const void *b, size_t blen);
/* Zero memory in a way the compiler cannot elide. */
void secure_zero(void *p, size_t n);

/* Random bytes from getrandom(2); dies on failure. */
void random_bytes(void *buf, size_t n);

int set_nonblock(int fd);
int set_cloexec(int fd);
ssize_t write_all(int fd, const void *buf, size_t n);   /* -1 with errno */
/*
 * send_fds - one sendmsg(2) of buf with up to 4 descriptors (SCM_RIGHTS;
 * none if nfds is 0), MSG_NOSIGNAL plus `flags`; EINTR is retried.
 * Returns what sendmsg returned (-1 with errno).
 */
ssize_t send_fds(int sock, const void *buf, size_t len, const int *fds, int nfds,
    int flags);
/* One byte `tag` with descriptor fd (SCM_RIGHTS), not waiting; 0 or -1. */
int send_fd(int sock, int fd, char tag);
/* The other side: 1 with *fd (-1 if none came; close-on-exec) and *tag,
 * 0 at EOF, -1 with errno (EAGAIN: nothing yet).  Extra descriptors are
 * closed. */
int recv_fd(int sock, int *fd, char *tag);

/* Parse a decimal number in [min,max]; false otherwise. */
bool parse_uint(const char *s, unsigned long long max, unsigned long long *out);

/* Monotonic milliseconds. */
uint64_t now_ms(void);

/*
 * The pid of a running msagated parent in pid_file, or 0 (no file, no pid,
 * the process is gone, or it is some other program: a stale file whose pid
 * was reused must neither block a start nor receive our signals).
 */
long msagated_pid_from(const char *pid_file);

#endif
