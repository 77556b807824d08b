/*
 * test-sync-backoff.c - when the commit thread stops using syncfs()
 * (src/sync-backoff.h): only after SYNC_BACKOFF_RUN slow calls in a row,
 * never after fewer or when a fast call breaks the run, for exactly
 * SYNC_BACKOFF_MS, and the count starts again after a back-off.
 */
#include "tap.h"
#include "../../src/sync-backoff.h"

#define SLOW (SYNC_BACKOFF_SLOW_MS + 1)
#define FAST SYNC_BACKOFF_SLOW_MS

int
main(void)
{
	struct sync_backoff b = { 0, 0 };
	uint64_t t = 1000000;
	int i, started;

	ok(sync_backoff_allows(&b, t), "a new queue role uses syncfs()");

	/* slow calls, but one fewer than a run, then a fast one */
	started = 0;
	for (i = 0; i < SYNC_BACKOFF_RUN - 1; i++)
		started += sync_backoff_note(&b, SLOW, t += 200);
	ok(!started && sync_backoff_allows(&b, t),
	    "%d slow calls in a row: still syncfs()", SYNC_BACKOFF_RUN - 1);
	ok(!sync_backoff_note(&b, FAST, t += 10), "a call of exactly the limit is not slow");
	started = 0;
	for (i = 0; i < SYNC_BACKOFF_RUN - 1; i++)
		started += sync_backoff_note(&b, SLOW, t += 200);
	ok(!started && sync_backoff_allows(&b, t),
	    "a fast call in between starts the count again");

	/* one more slow call makes the run */
	ok(sync_backoff_note(&b, SLOW, t += 200), "slow call number %d in a row starts a back-off",
	    SYNC_BACKOFF_RUN);
	ok(!sync_backoff_allows(&b, t), "no syncfs() right after");
	ok(!sync_backoff_allows(&b, t + SYNC_BACKOFF_MS - 1), "nor 1 ms before the back-off ends");
	ok(sync_backoff_allows(&b, t + SYNC_BACKOFF_MS), "syncfs() again after %d ms",
	    SYNC_BACKOFF_MS);

	/* after it, a run is counted from zero */
	t += SYNC_BACKOFF_MS;
	started = 0;
	for (i = 0; i < SYNC_BACKOFF_RUN - 1; i++)
		started += sync_backoff_note(&b, SLOW, t += 200);
	ok(!started && sync_backoff_allows(&b, t),
	    "after a back-off, %d slow calls do not start another", SYNC_BACKOFF_RUN - 1);
	ok(sync_backoff_note(&b, SLOW, t += 200) && !sync_backoff_allows(&b, t),
	    "a full run does");
	return done_testing();
}
