/*
 * bench-util.h - helpers shared by the msagate benchmark tools: a monotonic
 * clock, latency sample sets with percentiles, the CPU time and memory of a
 * server's process tree read from /proc, and small parsing helpers.
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

/* raise RLIMIT_NOFILE to at least want (up to the hard limit); returns the result */
long	 raise_nofile(long want);

/* base64 of len bytes into out (size >= 4*((len+2)/3)+1) */
void	 b64_encode(const unsigned char *in, size_t len, char *out);

/* parse "10", "10s", "2m", "1500ms" to milliseconds; -1 if bad */
long	 parse_duration_ms(const char *);
/* parse "2048", "2k", "1M"; -1 if bad */
long	 parse_size(const char *);

#endif
