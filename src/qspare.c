/*
 * qspare.c - recycled queue files (see qspare.h): a delivered message's
 * file becomes a spare in incoming/, and OPEN hands spares out before it
 * creates anything.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qspare.h"
#include "util.h"

#define SPARE_NAME_MAX 40

struct spare {
	uint64_t num;                /* spare.<num> in incoming/ */
	uint64_t need;               /* usable once this many syncs of queue/ are done */
};

struct qspare {
	pthread_mutex_t mu;
	int in_dfd;
	size_t max, n;
	size_t reserved;             /* puts between their check and their push */
	uint64_t next;               /* the next spare's number */
	uint64_t syncs_started, syncs_done;   /* fsyncs of queue/ */
	uint64_t takes;              /* takes so far (qspare_idle) */
	uint64_t takes_seen;
	struct spare *pool;          /* oldest first */
};

static void
spare_name(char *buf, size_t len, uint64_t num)
{
	snprintf(buf, len, QSPARE_PREFIX "%llu", (unsigned long long)num);
}

struct qspare *
qspare_new(int in_dfd, size_t max)
{
	struct qspare *sp = xcalloc(1, sizeof(*sp));

	pthread_mutex_init(&sp->mu, NULL);
	sp->in_dfd = in_dfd;
	sp->max = max;
	sp->pool = xcalloc(max ? max : 1, sizeof(*sp->pool));
	return sp;
}

void
qspare_free(struct qspare *sp)
{
	if (sp == NULL)
		return;
	pthread_mutex_destroy(&sp->mu);
	free(sp->pool);
	free(sp);
}

/* rename without replacing anything: a name clash must never lose a file */
static int
rename_noreplace(int odfd, const char *old, int ndfd, const char *new)
{
#ifdef RENAME_NOREPLACE
	if (renameat2(odfd, old, ndfd, new, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
#endif
	/* no renameat2 here: the names are ours, check and rename */
	if (faccessat(ndfd, new, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
		errno = EEXIST;
		return -1;
	}
	return renameat(odfd, old, ndfd, new);
}

/*
 * A file up to QSPARE_KEEP_MAX bytes keeps its blocks (and the delivered
 * message in them) until the next message is written over it: freeing
 * and allocating the blocks of every message costs more than everything
 * else a delivery does (and a synchronous discard on a filesystem mounted
 * with "discard").  A larger file is truncated after the rename: if a
 * crash falls between the two, its data is in incoming/ (removed at
 * start-up), never under a queue id.
 */
int
qspare_put(struct qspare *sp, int dfd, const char *name, long long size)
{
	char sname[SPARE_NAME_MAX];
	uint64_t num;
	int fd = -1, err;

	pthread_mutex_lock(&sp->mu);
	if (sp->n + sp->reserved >= sp->max) {
		pthread_mutex_unlock(&sp->mu);
		return 1;
	}
	sp->reserved++;
	num = sp->next++;
	pthread_mutex_unlock(&sp->mu);

	spare_name(sname, sizeof(sname), num);
	if (rename_noreplace(dfd, name, sp->in_dfd, sname) < 0) {
		err = errno;
		pthread_mutex_lock(&sp->mu);
		sp->reserved--;
		pthread_mutex_unlock(&sp->mu);
		errno = err;
		return -1;
	}
	if (size < 0 || size > QSPARE_KEEP_MAX)
		fd = openat(sp->in_dfd, sname, O_WRONLY | O_TRUNC | O_CLOEXEC |
		    O_NOFOLLOW | O_NONBLOCK);
	pthread_mutex_lock(&sp->mu);
	sp->reserved--;
	if (fd >= 0 || (size >= 0 && size <= QSPARE_KEEP_MAX)) {
		/* a sync of queue/ that starts after this rename must end first */
		sp->pool[sp->n].num = num;
		sp->pool[sp->n].need = sp->syncs_started + 1;
		sp->n++;
	}
	pthread_mutex_unlock(&sp->mu);
	if (fd >= 0)
		close(fd);
	else if (size < 0 || size > QSPARE_KEEP_MAX)
		/* taken out of queue/ all the same: only the pool misses it */
		(void)unlinkat(sp->in_dfd, sname, 0);
	return 0;
}

int
qspare_take(struct qspare *sp, const char *name)
{
	char sname[SPARE_NAME_MAX];
	struct spare got;
	bool kept;
	int err;

	pthread_mutex_lock(&sp->mu);
	/* the oldest is the likeliest to be durably out of queue/ */
	if (sp->n == 0 || sp->pool[0].need > sp->syncs_done) {
		pthread_mutex_unlock(&sp->mu);
		errno = ENOENT;
		return -1;
	}
	got = sp->pool[0];
	memmove(sp->pool, sp->pool + 1, --sp->n * sizeof(*sp->pool));
	sp->takes++;
	pthread_mutex_unlock(&sp->mu);

	spare_name(sname, sizeof(sname), got.num);
	if (rename_noreplace(sp->in_dfd, sname, sp->in_dfd, name) == 0)
		return 0;
	err = errno;
	kept = false;
	if (err == EEXIST) {
		/* the new name is taken: keep the spare for the next one */
		pthread_mutex_lock(&sp->mu);
		if (sp->n + sp->reserved < sp->max) {   /* puts on their way count */
			memmove(sp->pool + 1, sp->pool, sp->n * sizeof(*sp->pool));
			sp->pool[0] = got;
			sp->n++;
			kept = true;
		}
		pthread_mutex_unlock(&sp->mu);
	}
	if (!kept)
		(void)unlinkat(sp->in_dfd, sname, 0);
	errno = err;
	return -1;
}

void
qspare_sync_start(struct qspare *sp)
{
	pthread_mutex_lock(&sp->mu);
	sp->syncs_started++;
	pthread_mutex_unlock(&sp->mu);
}

void
qspare_sync_done(struct qspare *sp)
{
	pthread_mutex_lock(&sp->mu);
	sp->syncs_done++;
	pthread_mutex_unlock(&sp->mu);
}

bool
qspare_idle(struct qspare *sp)
{
	bool idle;

	pthread_mutex_lock(&sp->mu);
	idle = sp->n > 0 && sp->takes == sp->takes_seen;
	sp->takes_seen = sp->takes;
	pthread_mutex_unlock(&sp->mu);
	return idle;
}

void
qspare_clear(struct qspare *sp)
{
	char sname[SPARE_NAME_MAX];

	if (sp == NULL)
		return;
	pthread_mutex_lock(&sp->mu);
	while (sp->n > 0) {
		spare_name(sname, sizeof(sname), sp->pool[--sp->n].num);
		(void)unlinkat(sp->in_dfd, sname, 0);
	}
	pthread_mutex_unlock(&sp->mu);
}

size_t
qspare_count(struct qspare *sp)
{
	size_t n;

	pthread_mutex_lock(&sp->mu);
	n = sp->n;
	pthread_mutex_unlock(&sp->mu);
	return n;
}

bool
qspare_is_spare(const char *name)
{
	return strncmp(name, QSPARE_PREFIX, sizeof(QSPARE_PREFIX) - 1) == 0;
}
