/*
 * smtp-load.c - closed-loop SMTP submission load generator for the msagate
 * benchmarks (issue 5).  N concurrent clients each run sessions of:
 * connect, greeting, EHLO, STARTTLS (587 style) or implicit TLS (465
 * style), EHLO, AUTH PLAIN, K messages of S bytes (MAIL, RCPT, DATA, with
 * or without PIPELINING), QUIT; a new session starts as soon as one ends.
 * One thread, non-blocking sockets, epoll, OpenSSL 3; every buffer is
 * allocated before the run (per session only the SSL object is made).
 *
 * It reports messages/s, sessions/s, set-up latency (connect -> 235) and
 * message latency (end of DATA -> 250) percentiles, errors, the queue ids
 * received, and the CPU time of the server's process tree (/proc).
 *
 * --hold N (the idle-session probe): first open N authenticated TLS
 * sessions and keep them open, report the server's memory (Pss/RSS of all
 * its processes) before and after, then run the normal closed loop with
 * the -c clients and report their set-up latency while the N are held.
 */
#define _GNU_SOURCE
#include "bench-util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define RBUF_SIZE	4096
#define MAX_CLIENTS	200000
#define MAX_SAMPLES	(2u * 1024 * 1024)

enum state {
	ST_IDLE_FREE,		/* not in a session */
	ST_CONNECTING,
	ST_HANDSHAKE,		/* TLS handshake (implicit or after STARTTLS) */
	ST_GREETING,
	ST_EHLO1,
	ST_STARTTLS,
	ST_EHLO2,
	ST_AUTH,
	ST_MAIL,
	ST_RCPT,
	ST_DATA,
	ST_PIPE,		/* MAIL+RCPT+DATA sent together */
	ST_BODY,		/* body being written / 250 awaited */
	ST_HELD,		/* authenticated, held open (--hold) */
	ST_QUIT,
	ST_DONE			/* finished for good */
};

struct client {
	int		 fd;
	int		 idx;
	enum state	 state;
	int		 held;		/* a --hold client */
	int		 tls_on;	/* I/O goes through ssl */
	int		 pipe_left;	/* replies still expected in ST_PIPE */
	int		 pipe_bad;
	int		 msgs;		/* messages done this session */
	uint32_t	 events;	/* current epoll interest */
	SSL		*ssl;
	SSL_SESSION	*sess;		/* for resumption */
	const char	*wptr;		/* pending output */
	size_t		 wlen;
	uint64_t	 t_start;	/* connect() */
	uint64_t	 t_data_end;	/* end of DATA written */
	uint64_t	 t_env;		/* MAIL queued for writing */
	uint64_t	 deadline;	/* I/O timeout */
	size_t		 rlen;
	char		 rbuf[RBUF_SIZE];
};

/* options */
static const char *o_host = "127.0.0.1";
static int o_port = 587;
static int o_implicit;
static const char *o_user = "bench@example.test";
static const char *o_pass = "bench-password";
static const char *o_from;
static const char *o_rcpt = "sink@bench.invalid";
static int o_clients = 16;
static int o_msgs = 10;
static long o_size = 2048;
static long o_duration_ms = 10000;
static long o_sessions;			/* total sessions; 0 = by duration */
static int o_pipelining = 1;
static int o_resume;
static int o_hold;
static int o_hold_conc = 100;
static long o_hold_timeout_ms = 120000;
static long o_timeout_ms = 30000;
static int o_src_count = 1;
static const char *o_ids_file;
static int o_quiet;
static struct server_pids o_pids;
const char *const bench_prog = "smtp-load";

/* prebuilt protocol text */
static char s_ehlo[] = "EHLO bench.example.test\r\n";
static char s_starttls[] = "STARTTLS\r\n";
static char s_quit[] = "QUIT\r\n";
static char s_data[] = "DATA\r\n";
static char *s_auth, *s_mail, *s_rcpt, *s_pipe, *s_body;
static size_t s_body_len;

/* run state */
static struct client *clients;
static int n_clients;
static int epfd;
static SSL_CTX *ctx;
static struct sockaddr_in srv_addr;
static int stopping;
static uint64_t t_end_by;
static long sessions_started;
static int active_setups;	/* hold clients in set-up */
static int phase_hold;		/* 1 while opening held sessions */
static FILE *ids_fp;

/* results */
static struct samples lat_setup, lat_msg, lat_env, lat_hold_setup;
static unsigned long long n_msgs, n_accepted, n_sessions, n_errors, n_resumed;
static unsigned long long n_held, n_hold_failed;
static unsigned long long e_connect, e_tls, e_reply, e_closed, e_timeout;

static void start_session(struct client *);
static void end_session(struct client *, int ok);

static void
usage(void)
{
	fprintf(stderr,
"usage: smtp-load [options]\n"
"  -H HOST        server address (127.0.0.1)        -p PORT   port (587)\n"
"  -m MODE        starttls | implicit (starttls)\n"
"  -u USER -w PASSWORD   AUTH PLAIN credentials\n"
"  -f FROM -r RCPT       envelope (FROM defaults to USER)\n"
"  -c N           concurrent clients (16)           -k K      messages per session (10)\n"
"  -s SIZE        message size, e.g. 2k (2048)      -d DUR    duration, e.g. 10s (10s)\n"
"  -n SESSIONS    total sessions instead of a duration\n"
"  -P on|off      PIPELINING (on)                   -R on|off TLS session resumption (off)\n"
"  -i PID[,PID]   server pids (repeatable; their descendants count too)\n"
"  -I PIDFILE     server pid file (repeatable)\n"
"  --hold N       first open and hold N authenticated sessions (idle probe)\n"
"  --hold-conc N  set-ups in flight while opening them (100)\n"
"  --hold-timeout DUR   give up opening held sessions after DUR (120s),\n"
"                 or when none succeeded for 10 s\n"
"  --sources N    spread connections over source addresses 127.0.0.1..N\n"
"  --timeout DUR  per-step I/O timeout (30s)\n"
"  --ids FILE     write every queue id received, one a line\n"
"  -q             only the key=value line\n");
	exit(2);
}

static char *
xstrdup_printf(const char *fmt, ...)
{
	va_list ap;
	char *p;

	va_start(ap, fmt);
	if (vasprintf(&p, fmt, ap) < 0) {
		perror("vasprintf");
		exit(2);
	}
	va_end(ap);
	return p;
}

/* the message: a few headers, then 76-column lines up to o_size, then "." */
static void
build_message(void)
{
	char hdr[512];
	size_t hl, i, col = 0;
	char *p;

	hl = (size_t)snprintf(hdr, sizeof(hdr),
	    "From: <%s>\r\nTo: <%s>\r\nSubject: msagate benchmark\r\n"
	    "Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n"
	    "Message-ID: <bench@bench.example.test>\r\n\r\n", o_from, o_rcpt);
	s_body = malloc(hl + (size_t)o_size + 16);
	if (s_body == NULL)
		exit(2);
	memcpy(s_body, hdr, hl);
	p = s_body + hl;
	for (i = hl; i + 2 < (size_t)o_size; i++) {
		if (col == 76) {
			*p++ = '\r';
			*p++ = '\n';
			i++;
			col = 0;
			continue;
		}
		*p++ = (char)('a' + (i % 26));
		col++;
	}
	memcpy(p, "\r\n.\r\n", 5);
	p += 5;
	s_body_len = (size_t)(p - s_body);
}

static void
set_events(struct client *c, uint32_t ev)
{
	if (epoll_set(epfd, c->fd, c, &c->events, ev) != 0)
		perror("epoll_ctl");
}

static void
queue_write(struct client *c, const char *p, size_t len)
{
	c->wptr = p;
	c->wlen = len;
}

static void
count_error(struct client *c, unsigned long long *kind, const char *what)
{
	n_errors++;
	(*kind)++;
	errmsg("client %d: %s", c->idx, what);
}

/* a new session on this client: socket, non-blocking connect */
static void
start_session(struct client *c)
{
	struct epoll_event e;
	int one = 1, fd;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		count_error(c, &e_connect, strerror(errno));
		c->state = ST_DONE;
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (o_src_count > 1) {
		struct sockaddr_in src;

		memset(&src, 0, sizeof(src));
		src.sin_family = AF_INET;
		src.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(c->idx % o_src_count));
#ifdef IP_BIND_ADDRESS_NO_PORT
		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
#endif
		if (bind(fd, (struct sockaddr *)&src, sizeof(src)) != 0) {
			count_error(c, &e_connect, "bind source address");
			close(fd);
			c->state = ST_DONE;
			return;
		}
	}
	c->fd = fd;
	c->t_start = now_ns();
	c->deadline = c->t_start + (uint64_t)(c->held ? o_hold_timeout_ms : o_timeout_ms) * 1000000ull;
	c->rlen = 0;
	c->wlen = 0;
	c->msgs = 0;
	c->tls_on = 0;
	c->ssl = NULL;
	if (!c->held)
		sessions_started++;
	else
		active_setups++;
	memset(&e, 0, sizeof(e));
	e.events = EPOLLOUT;
	e.data.ptr = c;
	c->events = EPOLLOUT;
	c->state = ST_CONNECTING;
	if (connect(fd, (struct sockaddr *)&srv_addr, sizeof(srv_addr)) != 0 &&
	    errno != EINPROGRESS) {
		count_error(c, &e_connect, strerror(errno));
		close(fd);
		c->fd = -1;
		c->state = ST_IDLE_FREE;
		if (c->held) {
			active_setups--;
			n_hold_failed++;
		}
		c->state = ST_DONE;
		return;
	}
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &e) != 0) {
		perror("epoll_ctl add");
		exit(2);
	}
}

/* may this client start another session? (with -n, the sessions started
 * run to their end; `stopping' is for the end of a duration) */
static int
may_continue(void)
{
	if (stopping)
		return 0;
	if (o_sessions > 0 && sessions_started >= o_sessions)
		return 0;
	return 1;
}

static void
end_session(struct client *c, int ok)
{
	if (c->ssl) {
		if (!ok && c->sess) {
			/* do not resume a session that went wrong */
			SSL_SESSION_free(c->sess);
			c->sess = NULL;
		}
		/* a clean end: without this OpenSSL marks the session not resumable */
		if (ok)
			SSL_set_shutdown(c->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0) {
		epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
		c->fd = -1;
	}
	c->tls_on = 0;
	if (c->held) {
		if (c->state != ST_HELD && phase_hold) {
			active_setups--;
			n_hold_failed++;
		}
		c->state = ST_DONE;
		return;
	}
	if (ok)
		n_sessions++;
	c->state = ST_DONE;
	if (may_continue())
		start_session(c);
}

/* a session (TLS 1.3: a ticket) to resume next time: keep the newest */
static int
new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
	struct client *c = SSL_get_app_data(ssl);

	if (c == NULL || !o_resume)
		return 0;
	if (c->sess)
		SSL_SESSION_free(c->sess);
	c->sess = sess;
	return 1;	/* we keep the reference */
}

static void
begin_tls(struct client *c)
{
	c->ssl = SSL_new(ctx);
	if (c->ssl == NULL) {
		count_error(c, &e_tls, "SSL_new");
		end_session(c, 0);
		return;
	}
	SSL_set_fd(c->ssl, c->fd);
	SSL_set_app_data(c->ssl, c);
	SSL_set_connect_state(c->ssl);
	if (o_resume && c->sess)
		SSL_set_session(c->ssl, c->sess);
	c->state = ST_HANDSHAKE;
}

/* the next message (or QUIT) after the previous one or after AUTH */
static void
next_message(struct client *c)
{
	if (c->msgs >= o_msgs || stopping) {
		queue_write(c, s_quit, sizeof(s_quit) - 1);
		c->state = ST_QUIT;
		return;
	}
	c->t_env = now_ns();
	if (o_pipelining) {
		queue_write(c, s_pipe, strlen(s_pipe));
		c->state = ST_PIPE;
		c->pipe_left = 3;
		c->pipe_bad = 0;
	} else {
		queue_write(c, s_mail, strlen(s_mail));
		c->state = ST_MAIL;
	}
}

/* a queue id from "250 2.0.0 Ok: queued as ID" (last word) */
static void
note_queue_id(const char *line, size_t len)
{
	const char *p = line + len;

	n_accepted++;
	if (ids_fp == NULL)
		return;
	while (p > line && p[-1] != ' ')
		p--;
	fwrite(p, 1, (size_t)(line + len - p), ids_fp);
	fputc('\n', ids_fp);
}

/* one complete reply; last = its final line (without CRLF) */
static void
on_reply(struct client *c, int code, const char *last, size_t lastlen)
{
	uint64_t t;

	switch (c->state) {
	case ST_GREETING:
		if (code != 220)
			goto bad;
		queue_write(c, s_ehlo, sizeof(s_ehlo) - 1);
		c->state = c->tls_on ? ST_EHLO2 : ST_EHLO1;
		return;
	case ST_EHLO1:
		if (code != 250)
			goto bad;
		queue_write(c, s_starttls, sizeof(s_starttls) - 1);
		c->state = ST_STARTTLS;
		return;
	case ST_STARTTLS:
		if (code != 220)
			goto bad;
		if (c->rlen) {
			count_error(c, &e_reply, "data after 220 to STARTTLS");
			end_session(c, 0);
			return;
		}
		begin_tls(c);
		return;
	case ST_EHLO2:
		if (code != 250)
			goto bad;
		queue_write(c, s_auth, strlen(s_auth));
		c->state = ST_AUTH;
		return;
	case ST_AUTH:
		if (code != 235)
			goto bad;
		t = now_ns();
		if (c->ssl && SSL_session_reused(c->ssl))
			n_resumed++;
		if (c->held) {
			samples_add_ns(&lat_hold_setup, t - c->t_start);
			c->state = ST_HELD;
			n_held++;
			active_setups--;
			return;
		}
		samples_add_ns(&lat_setup, t - c->t_start);
		next_message(c);
		return;
	case ST_MAIL:
		if (code != 250)
			goto bad;
		queue_write(c, s_rcpt, strlen(s_rcpt));
		c->state = ST_RCPT;
		return;
	case ST_RCPT:
		if (code != 250 && code != 251)
			goto bad;
		queue_write(c, s_data, sizeof(s_data) - 1);
		c->state = ST_DATA;
		return;
	case ST_DATA:
		if (code != 354)
			goto bad;
		samples_add_ns(&lat_env, now_ns() - c->t_env);
		queue_write(c, s_body, s_body_len);
		c->state = ST_BODY;
		c->t_data_end = 0;
		return;
	case ST_PIPE:
		c->pipe_left--;
		if (c->pipe_left > 0) {
			if (code != 250 && code != 251)
				c->pipe_bad = code;
			return;
		}
		if (c->pipe_bad || code != 354) {
			if (c->pipe_bad)
				code = c->pipe_bad;
			goto bad;
		}
		samples_add_ns(&lat_env, now_ns() - c->t_env);
		queue_write(c, s_body, s_body_len);
		c->state = ST_BODY;
		c->t_data_end = 0;
		return;
	case ST_BODY:
		if (code != 250 || c->t_data_end == 0)
			goto bad;
		samples_add_ns(&lat_msg, now_ns() - c->t_data_end);
		n_msgs++;
		note_queue_id(last, lastlen);
		c->msgs++;
		next_message(c);
		return;
	case ST_QUIT:
		/* 221; anything else still ends the session */
		end_session(c, code == 221);
		return;
	default:
		goto bad;
	}
bad:
	{
		char what[160];

		snprintf(what, sizeof(what), "unexpected reply in state %d: %.*s",
		    (int)c->state, (int)(lastlen > 100 ? 100 : lastlen), last);
		count_error(c, &e_reply, what);
	}
	end_session(c, 0);
}

/* parse complete replies in rbuf; returns 0 if the session ended */
static int
parse_replies(struct client *c)
{
	size_t off = 0;
	char *nl;

	while (off < c->rlen &&
	    (nl = memchr(c->rbuf + off, '\n', c->rlen - off)) != NULL) {
		char *line = c->rbuf + off;
		size_t len = (size_t)(nl - line);
		int code;

		off += len + 1;
		if (len && line[len - 1] == '\r')
			len--;
		if (len < 3 || line[0] < '1' || line[0] > '5') {
			count_error(c, &e_reply, "malformed reply line");
			end_session(c, 0);
			return 0;
		}
		if (len > 3 && line[3] == '-')
			continue;
		code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
		{
			/* keep the final line, drop the reply from the buffer */
			int fd = c->fd;
			char last[RBUF_SIZE];

			memcpy(last, line, len);
			memmove(c->rbuf, c->rbuf + off, c->rlen - off);
			c->rlen -= off;
			off = 0;
			on_reply(c, code, last, len);
			/* the session ended (or restarted) under us */
			if (c->fd != fd || c->state == ST_DONE)
				return 0;
		}
	}
	if (c->rlen == sizeof(c->rbuf)) {
		count_error(c, &e_reply, "reply line too long");
		end_session(c, 0);
		return 0;
	}
	return 1;
}

/* I/O: -1 would block (want read), -2 want write, 0 eof/error, >0 bytes */
static ssize_t
io_read(struct client *c)
{
	ssize_t n;

	if (c->tls_on) {
		int r = SSL_read(c->ssl, c->rbuf + c->rlen, (int)(sizeof(c->rbuf) - c->rlen));
		if (r > 0)
			return r;
		switch (SSL_get_error(c->ssl, r)) {
		case SSL_ERROR_WANT_READ:
			return -1;
		case SSL_ERROR_WANT_WRITE:
			return -2;
		default:
			return 0;
		}
	}
	n = read(c->fd, c->rbuf + c->rlen, sizeof(c->rbuf) - c->rlen);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return -1;
	return n < 0 ? 0 : n;
}

static ssize_t
io_write(struct client *c)
{
	ssize_t n;

	if (c->tls_on) {
		int r = SSL_write(c->ssl, c->wptr, (int)c->wlen);
		if (r > 0)
			return r;
		switch (SSL_get_error(c->ssl, r)) {
		case SSL_ERROR_WANT_READ:
			return -1;
		case SSL_ERROR_WANT_WRITE:
			return -2;
		default:
			return 0;
		}
	}
	n = send(c->fd, c->wptr, c->wlen, MSG_NOSIGNAL);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return -2;
	return n < 0 ? 0 : n;
}

/* run one client as far as it goes without blocking */
static void
drive(struct client *c)
{
	int fd = c->fd;

	for (;;) {
		ssize_t n;

		if (c->fd != fd || c->fd < 0 || c->state == ST_DONE)
			return;
		c->deadline = now_ns() + (uint64_t)(c->held && c->state != ST_HELD ?
		    o_hold_timeout_ms : o_timeout_ms) * 1000000ull;
		if (c->state == ST_CONNECTING) {
			int err = 0;
			socklen_t l = sizeof(err);

			getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
			if (err) {
				count_error(c, &e_connect, strerror(err));
				end_session(c, 0);
				return;
			}
			if (o_implicit)
				begin_tls(c);
			else
				c->state = ST_GREETING;
			if (c->state == ST_DONE)
				return;
			continue;
		}
		if (c->state == ST_HANDSHAKE) {
			int r = SSL_connect(c->ssl);

			if (r == 1) {
				c->tls_on = 1;
				c->state = o_implicit ? ST_GREETING : ST_EHLO2;
				if (!o_implicit)
					queue_write(c, s_ehlo, sizeof(s_ehlo) - 1);
				continue;
			}
			switch (SSL_get_error(c->ssl, r)) {
			case SSL_ERROR_WANT_READ:
				set_events(c, EPOLLIN);
				return;
			case SSL_ERROR_WANT_WRITE:
				set_events(c, EPOLLOUT);
				return;
			default: {
				char eb[200];

				ERR_error_string_n(ERR_get_error(), eb, sizeof(eb));
				count_error(c, &e_tls, eb);
				ERR_clear_error();
				end_session(c, 0);
				return;
			}
			}
		}
		if (c->wlen) {
			n = io_write(c);
			if (n == -1) {
				set_events(c, EPOLLIN);
				return;
			}
			if (n == -2) {
				set_events(c, EPOLLOUT);
				return;
			}
			if (n == 0) {
				count_error(c, &e_closed, "write failed");
				end_session(c, 0);
				return;
			}
			c->wptr += n;
			c->wlen -= (size_t)n;
			if (c->wlen == 0 && c->state == ST_BODY)
				c->t_data_end = now_ns();
			continue;
		}
		n = io_read(c);
		if (n == -1) {
			set_events(c, EPOLLIN);
			return;
		}
		if (n == -2) {
			set_events(c, EPOLLOUT);
			return;
		}
		if (n == 0) {
			if (c->state == ST_QUIT) {
				/* closed right after or instead of 221 */
				end_session(c, 1);
				return;
			}
			count_error(c, &e_closed, c->held && c->state == ST_HELD ?
			    "held session closed by the server" : "connection closed");
			if (c->held && c->state == ST_HELD) {
				n_held--;
				n_hold_failed++;
			}
			end_session(c, 0);
			return;
		}
		c->rlen += (size_t)n;
		if (!parse_replies(c))
			return;
	}
}

static void
check_timeouts(uint64_t now)
{
	int i;

	for (i = 0; i < n_clients; i++) {
		struct client *c = &clients[i];

		if (c->fd < 0 || c->state == ST_DONE || c->state == ST_HELD)
			continue;
		if (now > c->deadline) {
			char what[64];

			snprintf(what, sizeof(what), "timeout in state %d", (int)c->state);
			count_error(c, &e_timeout, what);
			end_session(c, 0);
		}
	}
}

/* one epoll round, waiting at most ms */
static void
poll_once(struct epoll_event *evs, int maxev, int ms)
{
	int n = epoll_wait(epfd, evs, maxev, ms), i;

	for (i = 0; i < n; i++)
		drive((struct client *)evs[i].data.ptr);
}

static int
busy_clients(int from, int to)
{
	int i, busy = 0;

	for (i = from; i < to; i++)
		if (clients[i].state != ST_DONE && clients[i].state != ST_HELD)
			busy++;
	return busy;
}

static void
parse_onoff(const char *s, int *v)
{
	if (strcmp(s, "on") == 0 || strcmp(s, "1") == 0 || strcmp(s, "yes") == 0)
		*v = 1;
	else if (strcmp(s, "off") == 0 || strcmp(s, "0") == 0 || strcmp(s, "no") == 0)
		*v = 0;
	else
		usage();
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "hold", required_argument, NULL, 1 },
		{ "hold-conc", required_argument, NULL, 2 },
		{ "hold-timeout", required_argument, NULL, 3 },
		{ "sources", required_argument, NULL, 4 },
		{ "timeout", required_argument, NULL, 5 },
		{ "ids", required_argument, NULL, 6 },
		{ NULL, 0, NULL, 0 }
	};
	struct epoll_event *evs;
	int ch, i, maxev = 1024;
	char b64[900];
	double cpu0 = 0, cpu1 = 0, self0, self1, elapsed;
	long pss0 = 0, rss0 = 0, pss1 = 0, rss1 = 0;
	int np0 = 0, np1 = 0;
	uint64_t t0, t1, stop_deadline = 0;

	while ((ch = getopt_long(argc, argv, "H:p:m:u:w:f:r:c:k:s:d:n:P:R:i:I:q",
	    lo, NULL)) != -1) {
		switch (ch) {
		case 'H': o_host = optarg; break;
		case 'p': o_port = atoi(optarg); break;
		case 'm':
			if (strcmp(optarg, "starttls") == 0)
				o_implicit = 0;
			else if (strcmp(optarg, "implicit") == 0)
				o_implicit = 1;
			else
				usage();
			break;
		case 'u': o_user = optarg; break;
		case 'w': o_pass = optarg; break;
		case 'f': o_from = optarg; break;
		case 'r': o_rcpt = optarg; break;
		case 'c': o_clients = atoi(optarg); break;
		case 'k': o_msgs = atoi(optarg); break;
		case 's': o_size = parse_size(optarg); break;
		case 'd': o_duration_ms = parse_duration_ms(optarg); break;
		case 'n': o_sessions = atol(optarg); break;
		case 'P': parse_onoff(optarg, &o_pipelining); break;
		case 'R': parse_onoff(optarg, &o_resume); break;
		case 1: o_hold = atoi(optarg); break;
		case 2: o_hold_conc = atoi(optarg); break;
		case 3: o_hold_timeout_ms = parse_duration_ms(optarg); break;
		case 4: o_src_count = atoi(optarg); break;
		case 5: o_timeout_ms = parse_duration_ms(optarg); break;
		case 6: o_ids_file = optarg; break;
		default:
			if (!common_option(ch, optarg, &o_pids, &o_quiet))
				usage();
		}
	}
	if (optind != argc || o_port <= 0 || o_port > 65535 || o_clients < 0 ||
	    o_msgs < 0 || o_size < 64 || o_size > 64 * 1024 * 1024 ||
	    o_duration_ms < 0 || o_hold < 0 || o_hold_conc < 1 ||
	    o_hold_timeout_ms < 0 || o_timeout_ms <= 0 || o_src_count < 1 ||
	    o_src_count > 254 || o_clients + o_hold > MAX_CLIENTS ||
	    o_clients + o_hold == 0)
		usage();
	if (o_from == NULL)
		o_from = o_user;
	if (plain_b64(o_user, o_pass, b64, sizeof(b64)) != 0 ||
	    strchr(o_rcpt, '>') || strchr(o_from, '>'))
		usage();

	signal(SIGPIPE, SIG_IGN);
	raise_nofile((long)o_clients + o_hold + 64);

	memset(&srv_addr, 0, sizeof(srv_addr));
	srv_addr.sin_family = AF_INET;
	srv_addr.sin_port = htons((uint16_t)o_port);
	if (inet_pton(AF_INET, o_host, &srv_addr.sin_addr) != 1) {
		fprintf(stderr, "smtp-load: -H wants an IPv4 address\n");
		exit(2);
	}

	/* protocol text */
	s_auth = xstrdup_printf("AUTH PLAIN %s\r\n", b64);
	s_mail = xstrdup_printf("MAIL FROM:<%s>\r\n", o_from);
	s_rcpt = xstrdup_printf("RCPT TO:<%s>\r\n", o_rcpt);
	s_pipe = xstrdup_printf("%s%s%s", s_mail, s_rcpt, s_data);
	build_message();

	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL) {
		ERR_print_errors_fp(stderr);
		exit(2);
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
	/*
	 * One read(2) for a record's header and body (and whatever follows):
	 * safe here because drive() reads until SSL_read wants more, so
	 * nothing read ahead waits for the next readable event.
	 */
	SSL_CTX_set_read_ahead(ctx, 1);
	if (!o_resume)
		SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	/* sessions reach new_session_cb (TLS 1.2 and 1.3 tickets alike) */
	SSL_CTX_set_session_cache_mode(ctx, o_resume ?
	    SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE : SSL_SESS_CACHE_OFF);
	SSL_CTX_sess_set_new_cb(ctx, new_session_cb);

	if (o_ids_file && (ids_fp = fopen(o_ids_file, "w")) == NULL) {
		perror(o_ids_file);
		exit(2);
	}

	n_clients = o_hold + o_clients;
	clients = calloc((size_t)n_clients, sizeof(*clients));
	evs = calloc((size_t)maxev, sizeof(*evs));
	if (clients == NULL || evs == NULL)
		exit(2);
	for (i = 0; i < n_clients; i++) {
		clients[i].fd = -1;
		clients[i].idx = i;
		clients[i].held = i < o_hold;
		clients[i].state = ST_DONE;
	}
	samples_init(&lat_setup, MAX_SAMPLES);
	samples_init(&lat_msg, MAX_SAMPLES);
	samples_init(&lat_env, MAX_SAMPLES);
	samples_init(&lat_hold_setup, o_hold > 0 ? (size_t)o_hold : 1);
	if ((epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
		perror("epoll_create1");
		exit(2);
	}

	/* idle probe: open and hold o_hold sessions first */
	if (o_hold > 0) {
		int next = 0;
		uint64_t hold_end, last_progress;
		unsigned long long last_held = 0;

		server_mem_kb(&o_pids, &pss0, &rss0, &np0);
		phase_hold = 1;
		hold_end = now_ns() + (uint64_t)o_hold_timeout_ms * 1000000ull;
		last_progress = now_ns();
		while (next < o_hold || active_setups > 0) {
			uint64_t now = now_ns();

			while (next < o_hold && active_setups < o_hold_conc)
				start_session(&clients[next++]);
			poll_once(evs, maxev, 100);
			now = now_ns();
			check_timeouts(now);
			if (n_held != last_held) {
				last_held = n_held;
				last_progress = now;
			}
			/* past the deadline, or no new session for 10 s (a server
			 * that queues connections it cannot serve) */
			if (now > hold_end || now - last_progress > 10000000000ull) {
				/* give up on the rest */
				for (i = 0; i < o_hold; i++)
					if (clients[i].state != ST_HELD &&
					    clients[i].state != ST_DONE)
						end_session(&clients[i], 0);
				n_hold_failed += (unsigned long long)(o_hold - next);
				next = o_hold;
				break;
			}
		}
		phase_hold = 0;
		/* let the server settle (freed handshake buffers, etc.) */
		for (i = 0; i < 10; i++)
			poll_once(evs, maxev, 100);
		server_mem_kb(&o_pids, &pss1, &rss1, &np1);
		if (!o_quiet)
			fprintf(stderr, "smtp-load: holding %llu sessions (%llu failed), "
			    "server Pss %ld -> %ld KiB\n", n_held, n_hold_failed, pss0, pss1);
	}

	cpu0 = o_pids.n ? server_cpu_ms(&o_pids) : 0;
	self0 = self_cpu_ms();
	t0 = now_ns();
	t_end_by = o_sessions > 0 ? 0 : t0 + (uint64_t)o_duration_ms * 1000000ull;
	for (i = o_hold; i < n_clients; i++)
		if (may_continue())
			start_session(&clients[i]);
	for (;;) {
		uint64_t now;

		poll_once(evs, maxev, 50);
		now = now_ns();
		if (!stopping && t_end_by && now >= t_end_by) {
			stopping = 1;
			stop_deadline = now + 15000000000ull;
		}
		check_timeouts(now);
		if (busy_clients(o_hold, n_clients) == 0)
			break;
		if (stopping && now > stop_deadline) {
			for (i = o_hold; i < n_clients; i++)
				if (clients[i].state != ST_DONE) {
					count_error(&clients[i], &e_timeout, "unfinished at the end");
					end_session(&clients[i], 0);
				}
			break;
		}
	}
	t1 = now_ns();
	self1 = self_cpu_ms();
	cpu1 = o_pids.n ? server_cpu_ms(&o_pids) : 0;
	/* held sessions still open? (a server may have dropped some) */
	if (o_hold > 0) {
		unsigned long long still = 0;

		for (i = 0; i < o_hold; i++)
			if (clients[i].state == ST_HELD) {
				still++;
				end_session(&clients[i], 1);
			}
		n_held = still;
	}
	if (ids_fp)
		fclose(ids_fp);

	elapsed = (double)(t1 - t0) / 1e9;
	{
		double cpu = cpu1 - cpu0;
		double mps = n_msgs / elapsed, sps = n_sessions / elapsed;
		double s50 = samples_pct_ms(&lat_setup, 50), s99 = samples_pct_ms(&lat_setup, 99);
		double m50 = samples_pct_ms(&lat_msg, 50), m99 = samples_pct_ms(&lat_msg, 99);
		double h99 = samples_pct_ms(&lat_hold_setup, 99);
		const char *mode = o_implicit ? "implicit" : "starttls";

		if (!o_quiet) {
			printf("%s port %d: %d clients x %d msgs of %ld B%s: %.1f msgs/s, "
			    "%.1f sessions/s, setup p50/p99/max %.2f/%.2f/%.2f ms, "
			    "msg p50/p99/max %.2f/%.2f/%.2f ms, errors %llu, accepted %llu",
			    mode, o_port, o_clients, o_msgs, o_size,
			    o_pipelining ? " pipelined" : "", mps, sps, s50, s99,
			    samples_max_ms(&lat_setup), m50, m99, samples_max_ms(&lat_msg),
			    n_errors, n_accepted);
			if (o_pids.n)
				printf(", server CPU %.0f ms (%.3f ms/msg, %.3f ms/session)",
				    cpu, n_msgs ? cpu / n_msgs : 0, n_sessions ? cpu / n_sessions : 0);
			if (o_hold)
				printf(", held %llu/%d, server Pss %ld -> %ld KiB (%.1f KiB/session)",
				    n_held, o_hold, pss0, pss1,
				    n_held ? (double)(pss1 - pss0) / n_held : 0);
			printf("\n");
		}
		printf("tool=smtp-load mode=%s port=%d clients=%d msgs_per_session=%d "
		    "size=%ld pipelining=%d resume=%d elapsed_s=%.3f sessions=%llu "
		    "sessions_per_s=%.2f msgs=%llu msgs_per_s=%.2f accepted=%llu "
		    "errors=%llu err_connect=%llu err_tls=%llu err_reply=%llu "
		    "err_closed=%llu err_timeout=%llu resumed=%llu "
		    "setup_p50_ms=%.3f setup_p99_ms=%.3f setup_max_ms=%.3f "
		    "msg_p50_ms=%.3f msg_p99_ms=%.3f msg_max_ms=%.3f "
		    "env_p50_ms=%.3f env_p99_ms=%.3f "
		    "server_cpu_ms=%.0f cpu_ms_per_msg=%.4f cpu_ms_per_session=%.4f "
		    "client_cpu_ms=%.0f",
		    mode, o_port, o_clients, o_msgs, o_size, o_pipelining, o_resume,
		    elapsed, n_sessions, sps, n_msgs, mps, n_accepted, n_errors,
		    e_connect, e_tls, e_reply, e_closed, e_timeout, n_resumed,
		    s50, s99, samples_max_ms(&lat_setup), m50, m99,
		    samples_max_ms(&lat_msg), samples_pct_ms(&lat_env, 50),
		    samples_pct_ms(&lat_env, 99), cpu, n_msgs ? cpu / n_msgs : 0,
		    n_sessions ? cpu / n_sessions : 0, self1 - self0);
		if (o_hold)
			printf(" hold=%d held=%llu hold_failed=%llu hold_setup_p99_ms=%.3f "
			    "pss_before_kb=%ld pss_after_kb=%ld rss_before_kb=%ld "
			    "rss_after_kb=%ld nproc_before=%d nproc_after=%d "
			    "pss_per_session_kb=%.2f",
			    o_hold, n_held, n_hold_failed, h99, pss0, pss1, rss0, rss1,
			    np0, np1, n_held ? (double)(pss1 - pss0) / n_held : 0);
		printf("\n");
	}
	fflush(stdout);
	return n_errors ? 1 : 0;
}
