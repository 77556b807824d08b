/*
 * backend-slots.c - bounded slot pool with bounded, deadline-limited
 * waiting (see backend-slots.h).  One mutex, one condition variable on
 * the monotonic clock.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "backend-slots.h"
#include "util.h"

enum slot_state { SLOT_FREE, SLOT_BUSY, SLOT_RETIRED };

struct backend_slots {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	enum slot_state *state;
	size_t n, usable, max_waiters, waiters;
};

struct backend_slots *
slots_new(size_t n, size_t max_waiters)
{
	struct backend_slots *s = xcalloc(1, sizeof(*s));
	pthread_condattr_t ca;

	s->state = xcalloc(n ? n : 1, sizeof(*s->state));
	s->n = s->usable = n;
	s->max_waiters = max_waiters;
	pthread_mutex_init(&s->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cond, &ca);
	pthread_condattr_destroy(&ca);
	return s;
}

void
slots_free(struct backend_slots *s)
{
	if (s == NULL)
		return;
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	free(s->state);
	free(s);
}

/* find_free - index of a free slot or -1; called locked. */
static int
find_free(const struct backend_slots *s)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (s->state[i] == SLOT_FREE)
			return (int)i;
	return -1;
}

int
slots_acquire(struct backend_slots *s, uint64_t deadline_ms)
{
	int slot, rc = 0;
	bool waiting = false;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		uint64_t now = now_ms();

		if (s->usable == 0) {
			slot = SLOTS_NONE;
			break;
		}
		if ((slot = find_free(s)) >= 0) {
			s->state[slot] = SLOT_BUSY;
			break;
		}
		if (rc == ETIMEDOUT || now >= deadline_ms) {
			slot = SLOTS_TIMEOUT;
			break;
		}
		if (!waiting) {
			if (s->waiters >= s->max_waiters) {
				slot = SLOTS_BUSY;
				break;
			}
			s->waiters++;
			waiting = true;
		}
		{
			/* the condition variable runs on CLOCK_MONOTONIC, as now_ms() */
			struct timespec ts;
			uint64_t left = deadline_ms - now;

			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_sec += (time_t)(left / 1000);
			ts.tv_nsec += (long)(left % 1000) * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			rc = pthread_cond_timedwait(&s->cond, &s->lock, &ts);
		}
	}
	if (waiting)
		s->waiters--;
	pthread_mutex_unlock(&s->lock);
	return slot;
}

void
slots_release(struct backend_slots *s, int slot)
{
	pthread_mutex_lock(&s->lock);
	if (slot >= 0 && (size_t)slot < s->n && s->state[slot] == SLOT_BUSY)
		s->state[slot] = SLOT_FREE;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

size_t
slots_retire(struct backend_slots *s, int slot)
{
	size_t left;

	pthread_mutex_lock(&s->lock);
	if (slot >= 0 && (size_t)slot < s->n && s->state[slot] != SLOT_RETIRED) {
		s->state[slot] = SLOT_RETIRED;
		s->usable--;
	}
	left = s->usable;
	/* waiters must learn when nothing is left */
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return left;
}

size_t
slots_max_threads(const struct backend_slots *s)
{
	return s->n + s->max_waiters;
}
