/*
 * backend-slots.h - a bounded set of busy/free slots for backends that
 * hand each request to one of a few helpers (PAM worker processes,
 * connections to an upstream Dovecot), shared by the auth role's worker
 * threads.
 *
 * A thread takes a free slot, uses the helper behind it exclusively and
 * gives it back.  At most max_waiters threads wait for a slot at a time,
 * each until its deadline; more are refused at once.  That bounds how
 * many of the auth role's threads one slow backend can hold (slots +
 * waiters), so that the other backends keep threads to run on.
 * A slot whose helper is gone for good can be retired.
 */
#ifndef MSAGATE_BACKEND_SLOTS_H
#define MSAGATE_BACKEND_SLOTS_H

#include <stddef.h>
#include <stdint.h>

struct backend_slots;

/* Why slots_acquire() gave no slot. */
#define SLOTS_TIMEOUT	(-1)    /* deadline passed while waiting */
#define SLOTS_BUSY	(-2)    /* too many threads already waiting */
#define SLOTS_NONE	(-3)    /* every slot is retired */

struct backend_slots *slots_new(size_t n, size_t max_waiters);
void slots_free(struct backend_slots *s);
/* A free slot's index (0..n-1), or SLOTS_*; deadline in now_ms() time. */
int slots_acquire(struct backend_slots *s, uint64_t deadline_ms);
/* Give a slot back. */
void slots_release(struct backend_slots *s, int slot);
/* Give a slot back for good; returns how many usable slots remain. */
size_t slots_retire(struct backend_slots *s, int slot);
/* How many threads this can hold at most: slots + waiters. */
size_t slots_max_threads(const struct backend_slots *s);

#endif
