/*
 * bench-util.c - helpers shared by the msagate benchmark tools: clock,
 * latency samples, /proc accounting of a server's process tree (CPU time,
 * Pss/RSS), rlimits, base64, SASL PLAIN, error messages and option
 * parsing.
 */
#define _GNU_SOURCE

#include "bench-util.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void
samples_init(struct samples *s, size_t cap)
{
	memset(s, 0, sizeof(*s));
	s->cap = cap ? cap : 1;
	s->v = calloc(s->cap, sizeof(*s->v));
	if (s->v == NULL) {
		perror("calloc");
		exit(2);
	}
	s->rng = 0x9e3779b97f4a7c15ull;
}

/* xorshift64*: enough for reservoir sampling */
static uint64_t
rng_next(uint64_t *x)
{
	*x ^= *x >> 12;
	*x ^= *x << 25;
	*x ^= *x >> 27;
	return *x * 0x2545f4914f6cdd1dull;
}

void
samples_add_ns(struct samples *s, uint64_t ns)
{
	uint64_t us = ns / 1000;
	uint32_t v = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;

	s->seen++;
	if (v > s->max)
		s->max = v;
	if (s->n < s->cap) {
		s->v[s->n++] = v;
		return;
	}
	uint64_t j = rng_next(&s->rng) % s->seen;
	if (j < s->cap)
		s->v[j] = v;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

double
samples_pct_ms(struct samples *s, double p)
{
	size_t i;

	if (s->n == 0)
		return 0;
	qsort(s->v, s->n, sizeof(*s->v), cmp_u32);
	/* nearest-rank */
	i = (size_t)((p / 100.0) * (double)s->n + 0.999999);
	if (i < 1)
		i = 1;
	if (i > s->n)
		i = s->n;
	return s->v[i - 1] / 1000.0;
}

double
samples_max_ms(const struct samples *s)
{
	return s->max / 1000.0;
}

void
samples_free(struct samples *s)
{
	free(s->v);
	s->v = NULL;
}

int
server_pids_add_list(struct server_pids *sp, const char *list)
{
	const char *p = list;

	while (*p) {
		char *end;
		long v;

		errno = 0;
		v = strtol(p, &end, 10);
		if (end == p || errno || v <= 0)
			return -1;
		if (sp->n < BENCH_MAX_PIDS)
			sp->pid[sp->n++] = (pid_t)v;
		p = end;
		while (*p == ',' || *p == ' ')
			p++;
	}
	return 0;
}

int
server_pids_add_file(struct server_pids *sp, const char *path)
{
	FILE *f = fopen(path, "r");
	long v;

	if (f == NULL)
		return -1;
	if (fscanf(f, " %ld", &v) != 1 || v <= 0) {
		fclose(f);
		return -1;
	}
	fclose(f);
	if (sp->n < BENCH_MAX_PIDS)
		sp->pid[sp->n++] = (pid_t)v;
	return 0;
}

/* one process's stat: ppid and the four CPU fields in ticks */
struct pstat {
	pid_t		pid, ppid;
	unsigned long long ticks;	/* utime+stime+cutime+cstime */
};

static int
read_pstat(pid_t pid, struct pstat *ps)
{
	char path[64], buf[1024], *p;
	FILE *f;
	size_t n;
	int field;
	unsigned long long v[4] = { 0, 0, 0, 0 };
	long ppid = 0;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* the command name may contain spaces and parentheses: skip to the last ')' */
	if ((p = strrchr(buf, ')')) == NULL)
		return -1;
	p++;
	/* fields after comm: 3 state, 4 ppid, ..., 14 utime 15 stime 16 cutime 17 cstime */
	for (field = 3; field <= 17 && *p; field++) {
		char *end;

		while (*p == ' ')
			p++;
		if (field == 4)
			ppid = strtol(p, &end, 10);
		else if (field >= 14)
			v[field - 14] = strtoull(p, &end, 10);
		else
			end = strchr(p, ' ') ? strchr(p, ' ') : p + strlen(p);
		p = end;
	}
	ps->pid = pid;
	ps->ppid = (pid_t)ppid;
	ps->ticks = v[0] + v[1] + v[2] + v[3];
	return 0;
}

/* every process on the machine (pid, ppid, ticks); returns the count */
static size_t
scan_procs(struct pstat **out)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	size_t n = 0, cap = 1024;
	struct pstat *v = malloc(cap * sizeof(*v));

	if (d == NULL || v == NULL) {
		if (d)
			closedir(d);
		free(v);
		*out = NULL;
		return 0;
	}
	while ((de = readdir(d)) != NULL) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		if (n == cap) {
			struct pstat *nv = realloc(v, 2 * cap * sizeof(*v));
			if (nv == NULL)
				break;
			v = nv;
			cap *= 2;
		}
		if (read_pstat((pid_t)atoi(de->d_name), &v[n]) == 0)
			n++;
	}
	closedir(d);
	*out = v;
	return n;
}

/* mark the roots and their descendants in all[]; returns a malloc'd flag array */
static char *
mark_tree(const struct server_pids *sp, const struct pstat *all, size_t n)
{
	char *in = calloc(n ? n : 1, 1);
	int changed = 1, i;
	size_t j, k;

	if (in == NULL)
		return NULL;
	for (j = 0; j < n; j++)
		for (i = 0; i < sp->n; i++)
			if (all[j].pid == sp->pid[i])
				in[j] = 1;
	while (changed) {
		changed = 0;
		for (j = 0; j < n; j++) {
			if (in[j])
				continue;
			for (k = 0; k < n; k++)
				if (in[k] && all[k].pid == all[j].ppid) {
					in[j] = 1;
					changed = 1;
					break;
				}
		}
	}
	return in;
}

double
server_cpu_ms(const struct server_pids *sp)
{
	struct pstat *all;
	size_t n = scan_procs(&all), j;
	char *in = mark_tree(sp, all, n);
	unsigned long long t = 0;
	long hz = sysconf(_SC_CLK_TCK);

	for (j = 0; in && j < n; j++)
		if (in[j])
			t += all[j].ticks;
	free(in);
	free(all);
	return (double)t * 1000.0 / (double)(hz > 0 ? hz : 100);
}

/* a "Key:   123 kB" value from a /proc file; -1 if missing */
static long
proc_kb(pid_t pid, const char *file, const char *key)
{
	char path[64], line[256];
	size_t kl = strlen(key);
	FILE *f;
	long v = -1;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
			v = strtol(line + kl + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

void
server_mem_kb(const struct server_pids *sp, long *pss, long *rss, int *nproc)
{
	struct pstat *all;
	size_t n = scan_procs(&all), j;
	char *in = mark_tree(sp, all, n);
	long p, r;

	*pss = *rss = 0;
	*nproc = 0;
	for (j = 0; in && j < n; j++) {
		if (!in[j])
			continue;
		(*nproc)++;
		if ((r = proc_kb(all[j].pid, "status", "VmRSS")) > 0)
			*rss += r;
		if ((p = proc_kb(all[j].pid, "smaps_rollup", "Pss")) > 0)
			*pss += p;
	}
	free(in);
	free(all);
}

double
self_cpu_ms(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000.0 +
	    (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000.0;
}

int
epoll_set(int epfd, int fd, void *ptr, uint32_t *cur, uint32_t ev)
{
	struct epoll_event e;
	int r;

	if (*cur == ev)
		return 0;
	memset(&e, 0, sizeof(e));
	e.events = ev;
	e.data.ptr = ptr;
	r = epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &e);
	*cur = ev;
	return r;
}

long
raise_nofile(long want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return -1;
	if ((long)rl.rlim_cur < want) {
		rlim_t w = (rlim_t)want;

		if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < w) {
			/* root may raise the hard limit too */
			struct rlimit r2 = { w, w };
			if (setrlimit(RLIMIT_NOFILE, &r2) == 0)
				return want;
			w = rl.rlim_max;
		}
		rl.rlim_cur = w;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	return (long)rl.rlim_cur;
}

void
b64_encode(const unsigned char *in, size_t len, char *out)
{
	static const char t[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i;

	for (i = 0; i + 2 < len; i += 3) {
		*out++ = t[in[i] >> 2];
		*out++ = t[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
		*out++ = t[((in[i + 1] & 15) << 2) | (in[i + 2] >> 6)];
		*out++ = t[in[i + 2] & 63];
	}
	if (i < len) {
		*out++ = t[in[i] >> 2];
		if (i + 1 < len) {
			*out++ = t[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
			*out++ = t[(in[i + 1] & 15) << 2];
		} else {
			*out++ = t[(in[i] & 3) << 4];
			*out++ = '=';
		}
		*out++ = '=';
	}
	*out = '\0';
}

int
plain_b64(const char *user, const char *pass, char *out, size_t outsize)
{
	char plain[BENCH_PLAIN_MAX];
	size_t ul = strlen(user), pl = strlen(pass);

	if (ul + pl + 2 > sizeof(plain) || outsize < 4 * ((ul + pl + 4) / 3) + 1)
		return -1;
	plain[0] = '\0';
	memcpy(plain + 1, user, ul);
	plain[1 + ul] = '\0';
	memcpy(plain + 2 + ul, pass, pl);
	b64_encode((unsigned char *)plain, ul + pl + 2, out);
	return 0;
}

static int errors_printed;

void
errmsg(const char *fmt, ...)
{
	va_list ap;

	if (errors_printed >= 5)
		return;
	errors_printed++;
	va_start(ap, fmt);
	fprintf(stderr, "%s: ", bench_prog);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

int
common_option(int ch, const char *arg, struct server_pids *pids, int *quiet)
{
	switch (ch) {
	case 'i':
		return server_pids_add_list(pids, arg) == 0;
	case 'I':
		if (server_pids_add_file(pids, arg) != 0) {
			fprintf(stderr, "%s: cannot read pid file %s\n", bench_prog, arg);
			exit(2);
		}
		return 1;
	case 'q':
		*quiet = 1;
		return 1;
	}
	return 0;
}

long
parse_duration_ms(const char *s)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || v < 0)
		return -1;
	if (*end == '\0' || strcmp(end, "s") == 0)
		return (long)(v * 1000);
	if (strcmp(end, "ms") == 0)
		return (long)v;
	if (strcmp(end, "m") == 0)
		return (long)(v * 60000);
	return -1;
}

long
parse_size(const char *s)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || v < 0)
		return -1;
	if (*end == '\0')
		return (long)v;
	if ((*end == 'k' || *end == 'K') && end[1] == '\0')
		return (long)(v * 1024);
	if ((*end == 'm' || *end == 'M') && end[1] == '\0')
		return (long)(v * 1024 * 1024);
	return -1;
}
