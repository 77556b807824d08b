/*
 * fakeauth.h - the common parts of the fake Dovecot auth servers in the
 * unit tests (test-backend-dovecot, test-auth-cache): reading one request
 * line at a time, and the accept loop of the server thread.  Each test
 * keeps its own handshake and replies.
 */
#ifndef MSAGATE_T_FAKEAUTH_H
#define MSAGATE_T_FAKEAUTH_H

#include <sys/socket.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/*
 * fake_read_line - the next line from fd into line (without its LF),
 * buffering in buf (cap bytes, *len used).  0 on success, -1 when the peer
 * is gone (or a line does not fit in buf).
 */
static inline int
fake_read_line(int fd, char *buf, size_t *len, size_t cap, char *line,
    size_t linecap)
{
	char *nl;
	ssize_t n;

	while ((nl = memchr(buf, '\n', *len)) == NULL) {
		if (*len >= cap)
			return -1;
		n = recv(fd, buf + *len, cap - *len, 0);
		if (n <= 0)
			return -1;
		*len += (size_t)n;
	}
	*nl = '\0';
	snprintf(line, linecap, "%s", buf);
	memmove(buf, nl + 1, *len - (size_t)(nl + 1 - buf));
	*len -= (size_t)(nl + 1 - buf);
	return 0;
}

/* fake_accept_loop - serve one connection at a time until accept fails. */
static inline void
fake_accept_loop(int lfd, void (*serve)(int fd))
{
	for (;;) {
		int fd = accept(lfd, NULL, NULL);

		if (fd == -1) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return;
		}
		serve(fd);
		close(fd);
	}
}

#endif
