/*
 * auth-load.c - load generator for a Dovecot auth protocol client socket
 * (msagate's auth socket or Dovecot's auth-client), for the msagate
 * benchmarks (issue 5, W5/W6).  Several connections, each does the
 * handshake (VERSION/CPID, waits for DONE) and then keeps F AUTH PLAIN
 * requests in flight:
 *     AUTH\t<id>\tPLAIN\tservice=smtp\tno-penalty\tresp=<b64>\n
 * Closed loop for a duration or a number of requests.  Reports requests/s,
 * latency p50/p99/max, errors (any FAIL for the right password is one) and
 * the server's CPU time from /proc.  One thread, epoll, no allocation
 * after start-up.
 */
#define _GNU_SOURCE
#include "bench-util.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define RBUF_SIZE	16384
#define MAX_INFLIGHT	1024
#define REQ_MAX		1024

struct slot {
	unsigned	 id;		/* 0: free */
	uint64_t	 t_sent;
};

struct conn {
	int		 fd;
	int		 idx;
	int		 ready;		/* DONE seen */
	int		 dead;
	int		 have_plain;
	unsigned	 next_id;
	int		 inflight;
	uint32_t	 events;
	struct slot	*slots;
	char		*wbuf;		/* pending output */
	size_t		 wlen, woff, wcap;
	size_t		 rlen;
	char		 rbuf[RBUF_SIZE];
};

static const char *o_socket;
static const char *o_user = "bench@example.test";
static const char *o_pass = "bench-password";
static const char *o_service = "smtp";
static int o_conns = 4;
static int o_inflight = 8;
static long o_duration_ms = 10000;
static long o_total;
static int o_quiet;
static struct server_pids o_pids;
const char *const bench_prog = "auth-load";

static char req_tail[REQ_MAX];		/* "\tPLAIN\tservice=...\tresp=...\n" */
static size_t req_tail_len;
static struct conn *conns;
static int epfd;
static int stopping;
static long n_sent;
static unsigned long long n_ok, n_fail, n_errors, n_proto;
static struct samples lat;

static void
usage(void)
{
	fprintf(stderr,
"usage: auth-load -S SOCKET [options]\n"
"  -S PATH      the auth-client socket (Dovecot auth protocol)\n"
"  -u USER -w PASSWORD   AUTH PLAIN credentials (must be right)\n"
"  -c N         connections (4)          -F N   requests in flight per connection (8)\n"
"  -d DUR       duration, e.g. 10s       -n N   total requests instead\n"
"  -s SERVICE   service= (smtp)\n"
"  -i PID[,PID] server pids (repeatable; descendants count too)\n"
"  -I PIDFILE   server pid file          -q     only the key=value line\n");
	exit(2);
}

static void
set_events(struct conn *c, uint32_t ev)
{
	epoll_set(epfd, c->fd, c, &c->events, ev);
}

static void
kill_conn(struct conn *c, const char *why)
{
	if (c->dead)
		return;
	errmsg("connection %d: %s", c->idx, why);
	n_errors++;
	n_proto++;
	/* its requests in flight are lost: count them as errors */
	n_errors += (unsigned long long)c->inflight;
	c->inflight = 0;
	c->dead = 1;
	epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
}

static int
may_send(void)
{
	if (stopping)
		return 0;
	return o_total <= 0 || n_sent < o_total;
}

/* append one AUTH request for a free slot to the output buffer */
static void
queue_request(struct conn *c, int s)
{
	char head[32];
	int hl;

	if (c->next_id == 0)
		c->next_id = 1;
	c->slots[s].id = c->next_id++;
	hl = snprintf(head, sizeof(head), "AUTH\t%u", c->slots[s].id);
	if (c->wlen + (size_t)hl + req_tail_len > c->wcap) {
		/* cannot happen: wcap holds o_inflight requests */
		kill_conn(c, "output buffer full");
		return;
	}
	memcpy(c->wbuf + c->wlen, head, (size_t)hl);
	memcpy(c->wbuf + c->wlen + hl, req_tail, req_tail_len);
	c->wlen += (size_t)hl + req_tail_len;
	c->slots[s].t_sent = now_ns();
	c->inflight++;
	n_sent++;
}

static void
fill(struct conn *c)
{
	int s;

	if (c->dead || !c->ready)
		return;
	for (s = 0; s < o_inflight && may_send(); s++)
		if (c->slots[s].id == 0)
			queue_request(c, s);
}

/* one line from the server (without the LF) */
static void
on_line(struct conn *c, char *line, size_t len)
{
	char *tab;
	unsigned long id;
	int s, ok;

	line[len] = '\0';
	if (!c->ready) {
		if (strncmp(line, "MECH\tPLAIN", 10) == 0 && (line[10] == '\0' || line[10] == '\t'))
			c->have_plain = 1;
		else if (strcmp(line, "DONE") == 0) {
			if (!c->have_plain) {
				kill_conn(c, "server offers no PLAIN");
				return;
			}
			c->ready = 1;
		}
		return;
	}
	if (strncmp(line, "OK\t", 3) == 0)
		ok = 1;
	else if (strncmp(line, "FAIL\t", 5) == 0)
		ok = 0;
	else if (strncmp(line, "CONT\t", 5) == 0)
		ok = -1;
	else {
		kill_conn(c, "unexpected line from the server");
		return;
	}
	tab = strchr(line, '\t');
	id = strtoul(tab + 1, NULL, 10);
	for (s = 0; s < o_inflight; s++)
		if (c->slots[s].id == id)
			break;
	if (s == o_inflight) {
		kill_conn(c, "reply for an unknown id");
		return;
	}
	samples_add_ns(&lat, now_ns() - c->slots[s].t_sent);
	c->slots[s].id = 0;
	c->inflight--;
	if (ok == 1)
		n_ok++;
	else {
		n_errors++;
		if (ok == 0)
			n_fail++;
		errmsg("%s", line);
		if (ok == -1) {
			/* a CONT leaves the request open on the server: drop the connection */
			kill_conn(c, "CONT for PLAIN with an initial response");
			return;
		}
	}
	if (may_send())
		queue_request(c, s);
}

static void
drive(struct conn *c)
{
	for (;;) {
		ssize_t n;

		if (c->dead)
			return;
		if (c->woff < c->wlen) {
			n = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);
			if (n < 0 && errno == EAGAIN) {
				set_events(c, EPOLLIN | EPOLLOUT);
				/* still read replies meanwhile */
			} else if (n <= 0) {
				kill_conn(c, "write failed");
				return;
			} else {
				c->woff += (size_t)n;
				if (c->woff == c->wlen)
					c->woff = c->wlen = 0;
				continue;
			}
		}
		n = read(c->fd, c->rbuf + c->rlen, sizeof(c->rbuf) - 1 - c->rlen);
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			set_events(c, c->wlen ? EPOLLIN | EPOLLOUT : EPOLLIN);
			return;
		}
		if (n <= 0) {
			kill_conn(c, n == 0 ? "closed by the server" : strerror(errno));
			return;
		}
		c->rlen += (size_t)n;
		{
			size_t off = 0;
			char *nl;

			while ((nl = memchr(c->rbuf + off, '\n', c->rlen - off)) != NULL) {
				on_line(c, c->rbuf + off, (size_t)(nl - (c->rbuf + off)));
				if (c->dead)
					return;
				off = (size_t)(nl - c->rbuf) + 1;
			}
			memmove(c->rbuf, c->rbuf + off, c->rlen - off);
			c->rlen -= off;
			if (c->rlen >= sizeof(c->rbuf) - 1) {
				kill_conn(c, "line too long");
				return;
			}
		}
		if (c->ready && c->inflight < o_inflight)
			fill(c);
	}
}

int
main(int argc, char **argv)
{
	struct epoll_event evs[256];
	struct sockaddr_un sun;
	char b64[900], hs[64];
	int ch, i, live;
	double cpu0, cpu1, self0, self1, elapsed;
	uint64_t t0, t1, stop_deadline = 0;

	while ((ch = getopt(argc, argv, "S:u:w:c:F:d:n:s:i:I:q")) != -1) {
		switch (ch) {
		case 'S': o_socket = optarg; break;
		case 'u': o_user = optarg; break;
		case 'w': o_pass = optarg; break;
		case 'c': o_conns = atoi(optarg); break;
		case 'F': o_inflight = atoi(optarg); break;
		case 'd': o_duration_ms = parse_duration_ms(optarg); break;
		case 'n': o_total = atol(optarg); break;
		case 's': o_service = optarg; break;
		default:
			if (!common_option(ch, optarg, &o_pids, &o_quiet))
				usage();
		}
	}
	if (optind != argc || o_socket == NULL || o_conns < 1 || o_conns > 10000 ||
	    o_inflight < 1 || o_inflight > MAX_INFLIGHT || o_duration_ms < 0 ||
	    strlen(o_socket) >= sizeof(sun.sun_path))
		usage();
	if (plain_b64(o_user, o_pass, b64, sizeof(b64)) != 0 ||
	    strpbrk(o_service, "\t\n\001"))
		usage();
	signal(SIGPIPE, SIG_IGN);
	raise_nofile(o_conns + 64);

	i = snprintf(req_tail, sizeof(req_tail),
	    "\tPLAIN\tservice=%s\tno-penalty\tresp=%s\n", o_service, b64);
	if (i <= 0 || (size_t)i >= sizeof(req_tail))
		usage();
	req_tail_len = (size_t)i;

	samples_init(&lat, 4u * 1024 * 1024);
	if ((epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
		perror("epoll_create1");
		exit(2);
	}
	conns = calloc((size_t)o_conns, sizeof(*conns));
	if (conns == NULL)
		exit(2);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strcpy(sun.sun_path, o_socket);
	snprintf(hs, sizeof(hs), "VERSION\t1\t2\nCPID\t%d\n", (int)getpid());

	cpu0 = o_pids.n ? server_cpu_ms(&o_pids) : 0;
	self0 = self_cpu_ms();
	t0 = now_ns();
	for (i = 0; i < o_conns; i++) {
		struct conn *c = &conns[i];
		struct epoll_event e;

		c->idx = i;
		c->slots = calloc((size_t)o_inflight, sizeof(*c->slots));
		c->wcap = (size_t)o_inflight * (req_tail_len + 32) + sizeof(hs);
		c->wbuf = malloc(c->wcap);
		if (c->slots == NULL || c->wbuf == NULL)
			exit(2);
		c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
			fprintf(stderr, "auth-load: %s: %s\n", o_socket, strerror(errno));
			exit(2);
		}
		/* the client speaks first (Dovecot 2.4 waits for VERSION) */
		memcpy(c->wbuf, hs, strlen(hs));
		c->wlen = strlen(hs);
		if (fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK) != 0) {
			perror("fcntl");
			exit(2);
		}
		memset(&e, 0, sizeof(e));
		e.events = EPOLLIN | EPOLLOUT;
		e.data.ptr = c;
		c->events = e.events;
		epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &e);
	}
	for (;;) {
		int n = epoll_wait(epfd, evs, 256, 50), inflight = 0;
		uint64_t now;

		for (i = 0; i < n; i++)
			drive((struct conn *)evs[i].data.ptr);
		now = now_ns();
		if (!stopping && ((o_total <= 0 && now - t0 >= (uint64_t)o_duration_ms * 1000000ull) ||
		    (o_total > 0 && n_sent >= o_total))) {
			stopping = 1;
			stop_deadline = now + 15000000000ull;
		}
		live = 0;
		for (i = 0; i < o_conns; i++)
			if (!conns[i].dead) {
				live++;
				inflight += conns[i].inflight;
				if (!conns[i].ready)
					inflight++;
			}
		if (live == 0 || (stopping && inflight == 0))
			break;
		if (stopping && now > stop_deadline) {
			for (i = 0; i < o_conns; i++)
				kill_conn(&conns[i], "requests unanswered at the end");
			break;
		}
	}
	t1 = now_ns();
	self1 = self_cpu_ms();
	cpu1 = o_pids.n ? server_cpu_ms(&o_pids) : 0;
	elapsed = (double)(t1 - t0) / 1e9;
	{
		double cpu = cpu1 - cpu0, rps = n_ok / elapsed;
		double p50 = samples_pct_ms(&lat, 50), p99 = samples_pct_ms(&lat, 99);

		if (!o_quiet) {
			printf("%s: %d connections x %d in flight: %.1f requests/s, "
			    "p50/p99/max %.3f/%.3f/%.3f ms, ok %llu, errors %llu",
			    o_socket, o_conns, o_inflight, rps, p50, p99,
			    samples_max_ms(&lat), n_ok, n_errors);
			if (o_pids.n)
				printf(", server CPU %.0f ms (%.4f ms/request)", cpu,
				    n_ok ? cpu / n_ok : 0);
			printf("\n");
		}
		printf("tool=auth-load conns=%d inflight=%d elapsed_s=%.3f requests=%llu "
		    "req_per_s=%.2f ok=%llu fail=%llu errors=%llu err_proto=%llu "
		    "lat_p50_ms=%.3f lat_p99_ms=%.3f lat_max_ms=%.3f server_cpu_ms=%.0f "
		    "cpu_ms_per_req=%.4f client_cpu_ms=%.0f\n",
		    o_conns, o_inflight, elapsed, n_ok + n_fail, rps, n_ok, n_fail,
		    n_errors, n_proto, p50, p99, samples_max_ms(&lat), cpu,
		    n_ok ? cpu / n_ok : 0, self1 - self0);
	}
	return n_errors ? 1 : 0;
}
