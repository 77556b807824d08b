/*
 * log.c - logging for every msagate process (see log.h): syslog with the
 * configured facility, or stderr with a timestamp when running in the
 * foreground (-f).  Lines are written whole with one write(2) so that
 * several processes sharing stderr do not interleave within a line.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include <sys/time.h>

#include "log.h"

static bool log_stderr = true;
static bool log_dbg;
static char log_ident[64] = "msagate";
static pid_t log_pid;                /* cached getpid(); 0 after a fork */
static bool log_atfork_set;          /* ...reset by log_forked() */

/* A forked child must not log with its parent's pid. */
static void
log_forked(void)
{
	log_pid = 0;
}

static const struct {
	const char *name;
	int value;
} facilities[] = {
	{ "mail", LOG_MAIL }, { "daemon", LOG_DAEMON }, { "auth", LOG_AUTH },
	{ "authpriv", LOG_AUTHPRIV }, { "user", LOG_USER },
	{ "local0", LOG_LOCAL0 }, { "local1", LOG_LOCAL1 }, { "local2", LOG_LOCAL2 },
	{ "local3", LOG_LOCAL3 }, { "local4", LOG_LOCAL4 }, { "local5", LOG_LOCAL5 },
	{ "local6", LOG_LOCAL6 }, { "local7", LOG_LOCAL7 },
};

void
log_init(const char *ident, bool to_stderr, bool debug, const char *facility)
{
	int fac = LOG_MAIL;
	size_t i;

	if (!log_atfork_set && pthread_atfork(NULL, NULL, log_forked) == 0)
		log_atfork_set = true;
	log_pid = 0;
	log_stderr = to_stderr;
	log_dbg = debug;
	if (facility)
		for (i = 0; i < sizeof(facilities) / sizeof(facilities[0]); i++)
			if (strcmp(facilities[i].name, facility) == 0)
				fac = facilities[i].value;
	log_set_ident(ident);
	if (!to_stderr)
		openlog(log_ident, LOG_PID | LOG_NDELAY, fac);
}

void
log_set_ident(const char *ident)
{
	snprintf(log_ident, sizeof(log_ident), "%s", ident);
}

bool
log_debug_enabled(void)
{
	return log_dbg;
}

/* vlog - format one line; errnum >= 0 appends ": strerror(errnum)". */
static void
vlog(int pri, int errnum, const char *fmt, va_list ap)
{
	char msg[2048];
	int n;

	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (n < 0)
		return;
	if (errnum >= 0 && (size_t)n < sizeof(msg))
		snprintf(msg + n, sizeof(msg) - (size_t)n, ": %s", strerror(errnum));
	if (log_stderr) {
		char line[2300], ts[32];
		struct timeval tv;
		struct tm tm;
		const char *lvl = pri == LOG_DEBUG ? "debug: " : pri == LOG_WARNING ?
		    "warning: " : pri <= LOG_ERR ? "error: " : "";
		int len;

		if (log_pid == 0 || !log_atfork_set)
			log_pid = getpid();
		gettimeofday(&tv, NULL);
		localtime_r(&tv.tv_sec, &tm);
		strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
		len = snprintf(line, sizeof(line), "%s.%03ld %s[%ld]: %s%s\n", ts,
		    (long)tv.tv_usec / 1000, log_ident, (long)log_pid, lvl, msg);
		if (len > (int)sizeof(line) - 1) {
			len = (int)sizeof(line) - 1;
			line[len - 1] = '\n';
		}
		if (write(STDERR_FILENO, line, (size_t)len) < 0) {
			/* nowhere left to report it */
		}
	} else {
		syslog(pri, "%s", msg);
	}
}

#define LOGFN(name, pri, witherr) \
void name(const char *fmt, ...) \
{ \
	va_list ap; \
	int e = errno; \
	va_start(ap, fmt); \
	vlog(pri, witherr ? e : -1, fmt, ap); \
	va_end(ap); \
	errno = e; \
}

LOGFN(log_info, LOG_INFO, 0)
LOGFN(log_warnx, LOG_WARNING, 0)
LOGFN(log_warn, LOG_WARNING, 1)
LOGFN(log_errx, LOG_ERR, 0)

void
log_debug(const char *fmt, ...)
{
	va_list ap;
	int e = errno;

	if (!log_dbg)
		return;
	va_start(ap, fmt);
	vlog(LOG_DEBUG, -1, fmt, ap);
	va_end(ap);
	errno = e;
}

void
fatal(const char *fmt, ...)
{
	va_list ap;
	int e = errno;

	va_start(ap, fmt);
	vlog(LOG_CRIT, e, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_CRIT, -1, fmt, ap);
	va_end(ap);
	exit(1);
}

char *
log_token(char *buf, size_t len, const char *s, size_t max)
{
	log_safe(buf, len, s, max);
	for (char *p = buf; *p; p++)
		if (*p == ' ')
			*p = '?';
	return buf;
}

char *
log_safe(char *buf, size_t len, const char *s, size_t max)
{
	size_t i, o = 0;

	if (len == 0)
		return buf;
	if (s == NULL)
		s = "-";
	for (i = 0; s[i] && i < max && o + 1 < len; i++) {
		unsigned char c = (unsigned char)s[i];
		buf[o++] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
	}
	if (s[i] && i >= max && o + 4 < len) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
	return buf;
}
