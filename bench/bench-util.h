/*
 * bench-util.h - helpers shared by the msagate benchmark tools: a monotonic
 * clock, latency sample sets with percentiles, the CPU time and memory of a
 * server's process tree read from /proc, the options and messages both
 * tools share, and small parsing helpers.
 */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define BENCH_MAX_PIDS 64

/* nanoseconds on CLOCK_MONOTONIC */
uint64_t now_ns(void);

/*
 * A set of latency samples in microseconds, allocated once.  When it is
 * full, reservoir sampling keeps a uniform subset (the count and the max
 * stay exact).
 */
struct samples {
	uint32_t	*v;
	size_t		 cap;
	size_t		 n;		/* stored */
	uint64_t	 seen;		/* offered */
	uint32_t	 max;
	uint64_t	 rng;
};

void	 samples_init(struct samples *, size_t cap);
void	 samples_add_ns(struct samples *, uint64_t ns);
/* sorts in place; p in [0,100]; result in milliseconds (0 if empty) */
double	 samples_pct_ms(struct samples *, double p);
double	 samples_max_ms(const struct samples *);
void	 samples_free(struct samples *);

/* The server: some root pids; their descendants are found in /proc. */
struct server_pids {
	pid_t	 pid[BENCH_MAX_PIDS];
	int	 n;
};

/* "123,456" or repeated calls; returns -1 on a bad number */
int	 server_pids_add_list(struct server_pids *, const char *);
/* the first number in a pid file; -1 when unreadable */
int	 server_pids_add_file(struct server_pids *, const char *);

/*
 * CPU time (utime+stime+cutime+cstime, milliseconds) of the roots and all
 * their living descendants.  Children that exited in between are counted
 * through their parent's cutime/cstime.
 */
double	 server_cpu_ms(const struct server_pids *);
/* memory of the tree in KiB: Pss (smaps_rollup) and VmRSS summed */
void	 server_mem_kb(const struct server_pids *, long *pss, long *rss, int *nproc);
/* CPU time this process used so far, ms */
double	 self_cpu_ms(void);

/* set fd's epoll interest (data.ptr = ptr) to ev unless *cur already is
 * ev, then *cur = ev; returns epoll_ctl's result (0 if nothing changed) */
int	 epoll_set(int epfd, int fd, void *ptr, uint32_t *cur, uint32_t ev);

/* raise RLIMIT_NOFILE to at least want (up to the hard limit); returns the result */
long	 raise_nofile(long want);

/* base64 of len bytes into out (size >= 4*((len+2)/3)+1) */
void	 b64_encode(const unsigned char *in, size_t len, char *out);

/* the SASL PLAIN response "\0user\0pass" in base64 into out (outsize
 * bytes); -1 if user + pass exceed BENCH_PLAIN_MAX bytes or out is too small */
#define BENCH_PLAIN_MAX	600
int	 plain_b64(const char *user, const char *pass, char *out, size_t outsize);

/* each tool defines its name ("smtp-load"), the prefix of its messages */
extern const char *const bench_prog;
/* "PROG: message" on stderr, only the first 5 of a run (not to flood it) */
void	 errmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/*
 * The options both tools take: -i PID[,PID] and -I PIDFILE (server pids,
 * repeatable) and -q (only the key=value line: *quiet = 1).  Returns 1
 * when ch was one of them, 0 when it is another option or -i's list is
 * bad (the caller shows its usage); exits 2 on an unreadable pid file.
 */
int	 common_option(int ch, const char *arg, struct server_pids *, int *quiet);

/* parse "10", "10s", "2m", "1500ms" to milliseconds; -1 if bad */
long	 parse_duration_ms(const char *);
/* parse "2048", "2k", "1M"; -1 if bad */
long	 parse_size(const char *);

#endif
