/*
 * auth-penalty.h - brute-force defence of the auth role: per client
 * address, a growing delay before each attempt after repeated failures,
 * and a block for a while past a threshold (like Dovecot's anvil
 * penalties, plus a hard block).  Addresses in the exempt list and
 * requests carrying `no-penalty` are spared.
 *
 * Addresses are keyed exactly for IPv4 and by /48 for IPv6 (as Dovecot's
 * anvil: a site usually owns a /48, a host a whole /64).  The table is bounded; when it is full, entries
 * that have expired go first, then the oldest.
 */
#ifndef MSAGATE_AUTH_PENALTY_H
#define MSAGATE_AUTH_PENALTY_H

#include <stdbool.h>
#include <time.h>

#include "config.h"

struct penalty;

struct penalty *penalty_new(const struct msagate_config *cfg);
void penalty_free(struct penalty *p);

/*
 * penalty_check - before an attempt from rip: returns the seconds the
 * address is still blocked (> 0: refuse at once), else 0 with *delay_ms set
 * to how long to hold the attempt before running it (0 = none).
 */
int penalty_check(struct penalty *p, const char *rip, time_t now, int *delay_ms);
/* penalty_record - a final result from rip: a success clears the count. */
void penalty_record(struct penalty *p, const char *rip, bool success, time_t now);

#endif
