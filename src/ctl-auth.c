/*
 * ctl-auth.c - `msagatectl auth test USER [PASSWORD]` (a PLAIN login
 * through the auth socket, as `doveadm auth test`) and `msagatectl pw`
 * (a new password hash, as `doveadm pw`).
 *
 * Passwords come from the terminal with echo off (the terminal is
 * restored even on ^C), or as one line from a pipe; they are read with
 * read(2), not stdio, so that no copy stays in a stdio buffer, and are
 * wiped after use.  Nothing here prints or logs a password.
 */
#include <sys/types.h>

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <termios.h>
#include <unistd.h>

#include <event2/event.h>

#include "authc.h"
#include "ctl.h"
#include "pwhash.h"
#include "util.h"

#define PW_MAX 1024                 /* longest password accepted */
#define AUTH_TEST_TIMEOUT_MS 30000

/* ---- reading a password ----------------------------------------------- */

static struct termios saved_tio;
static volatile sig_atomic_t tio_saved;

static void
restore_tty_and_die(int sig)
{
	if (tio_saved)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
	if (write(STDERR_FILENO, "\n", 1) < 0) {
		/* nothing to do */
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

/*
 * Read one line (without its LF or CR LF) into buf.  With a prompt, stdin
 * is a terminal: echo is turned off meanwhile.  Returns the length, or -1
 * (EOF before anything, or a line longer than size-1).
 */
static long
read_line_fd(const char *prompt, char *buf, size_t size)
{
	struct sigaction sa, old_int, old_term, old_quit, old_tstp;
	struct termios tio;
	size_t n = 0;
	bool too_long = false, got_any = false;
	char ch;
	ssize_t r;

	if (prompt != NULL) {
		if (tcgetattr(STDIN_FILENO, &saved_tio) < 0)
			return -1;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = restore_tty_and_die;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGINT, &sa, &old_int);
		sigaction(SIGTERM, &sa, &old_term);
		sigaction(SIGQUIT, &sa, &old_quit);
		sigaction(SIGTSTP, &sa, &old_tstp);
		tio_saved = 1;
		tio = saved_tio;
		tio.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK | ECHONL);
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &tio);
		fputs(prompt, stderr);
		fflush(stderr);
	}
	for (;;) {
		r = read(STDIN_FILENO, &ch, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got_any = true;
		if (ch == '\n')
			break;
		if (n + 1 < size)
			buf[n++] = ch;
		else
			too_long = true;
	}
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	buf[n] = '\0';
	if (prompt != NULL) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
		tio_saved = 0;
		sigaction(SIGINT, &old_int, NULL);
		sigaction(SIGTERM, &old_term, NULL);
		sigaction(SIGQUIT, &old_quit, NULL);
		sigaction(SIGTSTP, &old_tstp, NULL);
		fputc('\n', stderr);
	}
	if (!got_any || too_long) {
		secure_zero(buf, size);
		if (too_long)
			fprintf(stderr, "msagatectl: password too long (at most %d bytes)\n",
			    PW_MAX - 1);
		return -1;
	}
	return (long)n;
}

/* ---- auth test ---------------------------------------------------------- */

struct auth_test {
	struct event_base *base;
	struct authc *c;
	uint32_t id;
	bool done;
	enum authc_result res;
	char *data, *extra;
};

static void
auth_test_cb(void *ctx, enum authc_result res, const char *data, const char *extra)
{
	struct auth_test *t = ctx;

	if (res == AUTHC_CONT) {
		/* PLAIN with an initial response needs no challenge */
		authc_abort(t->c, t->id);
		data = "unexpected challenge from the auth service";
		res = AUTHC_TEMPFAIL;
		extra = NULL;
	}
	t->done = true;
	t->res = res;
	t->data = data ? xstrdup(data) : NULL;
	t->extra = extra ? xstrdup(extra) : NULL;
	event_base_loopbreak(t->base);
}

/* Print "key=value" fields (TAB-separated) one per line, masked. */
static void
print_fields(const char *user, const char *extra)
{
	if (user == NULL && (extra == NULL || extra[0] == '\0'))
		return;
	printf("extra fields:\n");
	if (user != NULL) {
		printf("  user=");
		for (const char *p = user; *p; p++)
			putchar((unsigned char)*p < 0x20 || *p == 0x7f ? '?' : *p);
		putchar('\n');
	}
	if (extra != NULL && extra[0] != '\0') {
		printf("  ");
		for (const char *p = extra; *p; p++) {
			if (*p == '\t')
				printf("\n  ");
			else
				putchar((unsigned char)*p < 0x20 || *p == 0x7f ? '?' : *p);
		}
		putchar('\n');
	}
}

static void
put_user(const char *user)
{
	for (const char *p = user; *p; p++)
		putchar((unsigned char)*p < 0x20 || *p == 0x7f ? '?' : *p);
}

int
ctl_auth(const struct msagate_config *cfg, int argc, char **argv)
{
	char pw[PW_MAX], *plain, *b64;
	size_t ulen, plen, len;
	struct auth_test t;
	struct authc_info info;
	int rc;

	if (argc < 2 || argc > 3 || strcmp(argv[0], "test") != 0 || argv[1][0] == '\0') {
		fprintf(stderr, "usage: msagatectl auth test USER [PASSWORD]\n");
		return CTL_USAGE;
	}
	if (argc == 3) {
		if (strlen(argv[2]) >= sizeof(pw)) {
			fprintf(stderr, "msagatectl: password too long\n");
			return CTL_USAGE;
		}
		strcpy(pw, argv[2]);
	} else if (read_line_fd(isatty(STDIN_FILENO) ? "Password: " : NULL, pw,
	    sizeof(pw)) < 0) {
		fprintf(stderr, "msagatectl: no password given\n");
		return CTL_USAGE;
	}

	/* PLAIN: authzid (empty) NUL authcid NUL password */
	ulen = strlen(argv[1]);
	plen = strlen(pw);
	len = 1 + ulen + 1 + plen;
	plain = xmalloc(len);
	plain[0] = '\0';
	memcpy(plain + 1, argv[1], ulen);
	plain[1 + ulen] = '\0';
	memcpy(plain + 2 + ulen, pw, plen);
	secure_zero(pw, sizeof(pw));
	b64 = xmalloc(b64_encoded_len(len) + 1);
	b64_encode((unsigned char *)plain, len, b64);
	secure_zero(plain, len);
	free(plain);

	memset(&t, 0, sizeof(t));
	memset(&info, 0, sizeof(info));
	info.service = "smtp";
	info.secured = true;         /* a local admin tool, like doveadm */
	info.no_penalty = true;
	info.session = "msagatectl";
	if (access(cfg->auth.socket, W_OK) != 0 && errno == EACCES) {
		/* not a temporary failure: the wrong user (like queue commands) */
		secure_zero(b64, strlen(b64));
		free(b64);
		fprintf(stderr, "msagatectl: %s: permission denied (run it as root or "
		    "as a user of the socket's group)\n", cfg->auth.socket);
		return CTL_USAGE;
	}
	if ((t.base = event_base_new()) == NULL) {
		fprintf(stderr, "msagatectl: event_base_new failed\n");
		return CTL_TEMPFAIL;
	}
	t.c = authc_new(t.base, cfg->auth.socket, AUTH_TEST_TIMEOUT_MS);
	t.id = authc_begin(t.c, "PLAIN", b64, &info, auth_test_cb, &t);
	secure_zero(b64, strlen(b64));
	free(b64);
	while (!t.done)
		if (event_base_dispatch(t.base) < 0)
			break;
	authc_free(t.c);
	event_base_free(t.base);

	switch (t.done ? t.res : AUTHC_TEMPFAIL) {
	case AUTHC_OK:
		printf("passdb: ");
		put_user(argv[1]);
		printf(" auth succeeded\n");
		print_fields(t.data, t.extra);
		rc = CTL_OK;
		break;
	case AUTHC_FAIL:
	case AUTHC_BADB64:
		printf("passdb: ");
		put_user(argv[1]);
		printf(" auth failed\n");
		if (t.data != NULL) {
			printf("reason: ");
			put_user(t.data);
			putchar('\n');
		}
		print_fields(NULL, t.extra);
		rc = CTL_NEGATIVE;
		break;
	default:
		fprintf(stderr, "msagatectl: auth test: %s (socket %s)\n",
		    t.data ? t.data : "temporary failure", cfg->auth.socket);
		rc = CTL_TEMPFAIL;
		break;
	}
	free(t.data);
	free(t.extra);
	return rc;
}

/* ---- pw ------------------------------------------------------------------ */

static int
pw_usage(void)
{
	fprintf(stderr, "usage: msagatectl pw [-s SCHEME]\n");
	return CTL_USAGE;
}

int
ctl_pw(int argc, char **argv)
{
	const char *scheme = NULL;
	char pw[PW_MAX], pw2[PW_MAX], *hash;
	bool tty = isatty(STDIN_FILENO);
	int i = 0;

	if (argc > 0 && strcmp(argv[0], "pw") == 0)
		i = 1;
	for (; i < argc; i++) {
		if (strcmp(argv[i], "-s") == 0 && i + 1 < argc)
			scheme = argv[++i];
		else if (strncmp(argv[i], "-s", 2) == 0 && argv[i][2] != '\0')
			scheme = argv[i] + 2;
		else
			return pw_usage();
	}
	if (scheme == NULL)
		scheme = pwhash_default_scheme();
	if (!pwhash_scheme_known(scheme)) {
		fprintf(stderr, "msagatectl: unknown scheme: %s\n", scheme);
		return CTL_USAGE;
	}
	if (read_line_fd(tty ? "Enter new password: " : NULL, pw, sizeof(pw)) < 0) {
		fprintf(stderr, "msagatectl: no password given\n");
		return CTL_USAGE;
	}
	if (pw[0] == '\0') {
		fprintf(stderr, "msagatectl: empty passwords are not allowed\n");
		return CTL_USAGE;
	}
	if (strcasecmp(scheme, "PLAIN") == 0 && strchr(pw, ':') != NULL) {
		secure_zero(pw, sizeof(pw));
		fprintf(stderr, "msagatectl: a {PLAIN} password cannot contain ':' "
		    "(it separates the passwd-file fields); use a hashed scheme\n");
		return CTL_USAGE;
	}
	if (tty) {
		long n = read_line_fd("Retype new password: ", pw2, sizeof(pw2));
		bool same = n >= 0 && ct_equal(pw, strlen(pw), pw2, (size_t)n);

		secure_zero(pw2, sizeof(pw2));
		if (!same) {
			secure_zero(pw, sizeof(pw));
			fprintf(stderr, "msagatectl: passwords don't match\n");
			return CTL_NEGATIVE;
		}
	}
	hash = pwhash_make(scheme, pw);
	secure_zero(pw, sizeof(pw));
	if (hash == NULL) {
		fprintf(stderr, "msagatectl: cannot make %s hashes\n", scheme);
		return CTL_USAGE;
	}
	printf("%s\n", hash);
	free(hash);
	return CTL_OK;
}
