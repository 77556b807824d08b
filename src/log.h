/*
 * log.h - logging for every msagate process: syslog (facility from the
 * configuration) or stderr in foreground mode, one line per event.
 *
 * Callers must never pass secrets (passwords, AUTH payloads).  Strings that
 * come from clients go through log_safe() first, which truncates and
 * replaces non-printable bytes.
 */
#ifndef MSAGATE_LOG_H
#define MSAGATE_LOG_H

#include <stdbool.h>
#include <stddef.h>

void log_init(const char *ident, bool to_stderr, bool debug, const char *facility);
void log_set_ident(const char *ident);           /* per role: "msagated/smtp" */
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));  /* + strerror(errno) */
void log_errx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn)); /* + errno */
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
bool log_debug_enabled(void);

/*
 * log_safe - copy at most `max` bytes of client-supplied s into buf (size
 * len) replacing control and non-ASCII bytes with '?'.  Returns buf.
 */
char *log_safe(char *buf, size_t len, const char *s, size_t max);
/*
 * log_token - the same for a value logged as one key=value token (user=):
 * spaces become '?' too, so that a chosen name cannot add fields that
 * log scanners (fail2ban) would read.
 */
char *log_token(char *buf, size_t len, const char *s, size_t max);

#endif
