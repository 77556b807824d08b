/*
 * sync-backoff.h - when the queue role's commit thread stops making a
 * batch durable with one syncfs() of state_dir's filesystem and goes back
 * to one fdatasync() per message (role-queue.c, sync_data).
 *
 * syncfs() writes out everything dirty on the filesystem, not only our
 * files: when other programs have much to write there, our 250s would
 * wait for them.  Slow calls SYNC_BACKOFF_RUN times in a row mean that;
 * then syncfs() is not used for SYNC_BACKOFF_MS.  One slow call alone is
 * usually the backlog the first batch after a quiet spell writes out, and
 * a fast call starts the count again.
 */
#ifndef MSAGATE_SYNC_BACKOFF_H
#define MSAGATE_SYNC_BACKOFF_H

#include <stdbool.h>
#include <stdint.h>

#define SYNC_BACKOFF_SLOW_MS 100     /* syncfs() calls slower than this... */
#define SYNC_BACKOFF_RUN     3       /* ...this many times in a row... */
#define SYNC_BACKOFF_MS      60000   /* ...mean per-file syncs for this long */

struct sync_backoff {
	uint64_t until_ms;           /* no syncfs() before this time */
	int run;                     /* slow calls in a row */
};

/* May a batch use syncfs() at now_ms? */
static inline bool
sync_backoff_allows(const struct sync_backoff *b, uint64_t now_ms)
{
	return now_ms >= b->until_ms;
}

/*
 * Record that a syncfs() finishing at now_ms took took_ms.  True when
 * this call starts a back-off (the caller logs it once).
 */
static inline bool
sync_backoff_note(struct sync_backoff *b, uint64_t took_ms, uint64_t now_ms)
{
	if (took_ms <= SYNC_BACKOFF_SLOW_MS) {
		b->run = 0;
		return false;
	}
	if (++b->run < SYNC_BACKOFF_RUN)
		return false;
	b->run = 0;
	b->until_ms = now_ms + SYNC_BACKOFF_MS;
	return true;
}

#endif
