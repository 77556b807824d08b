/*
 * qmgr.h - the queue manager: schedules delivery of the messages in
 * state_dir/queue from inside the queue role.
 *
 * The scheduler lives on the queue role's event loop and never blocks it:
 * each delivery attempt of one message runs in one of a bounded number of
 * worker threads (the delivery methods may block, with timeouts).  Per-
 * recipient state is kept durably in state_dir/status/ID (qstatus.h); a
 * message whose recipients are all delivered or bounced is removed.
 * Temporary failures are retried after 1, 2, 4, ... minutes, at most one
 * hour apart (relay.retry_min, relay.retry_max); messages older than the
 * queue lifetime (relay.queue_lifetime) bounce.  Permanent failures
 * produce an RFC 3464 bounce (dsn.h) queued as a new message with the
 * null sender; a bounce is never bounced.  A message still deferred after
 * relay.delay_warning gets one delay warning (Action: delayed) the same
 * way, recorded in its status file so that it is sent only once.
 */
#ifndef MSAGATE_QMGR_H
#define MSAGATE_QMGR_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>

#include "config.h"
#include "qfile.h"

/* Defaults of the relay.* keys (config.c), used where cfg has 0. */
#define QMGR_WORKERS        4             /* deliveries in parallel */
#define QMGR_WORKERS_MAX    64
#define QMGR_RETRY_MIN      60            /* first retry after (seconds) */
#define QMGR_RETRY_MAX      3600          /* retries at most this far apart */
#define QMGR_LIFETIME       (5 * 86400)   /* then the rest bounces */
#define QMGR_DELAY_WARNING  (4 * 3600)    /* warn the sender (config default) */

struct qmgr;

/*
 * qmgr_new - set up the delivery method and the aliases, start the
 * workers.  The directory descriptors (incoming/, queue/, status/) stay
 * owned by the caller and must outlive the qmgr.  NULL with a log line if
 * the delivery configuration is unusable.
 */
struct qmgr *qmgr_new(const struct msagate_config *cfg, struct event_base *base,
    int in_dfd, int q_dfd, int st_dfd);
/*
 * qmgr_reconfigure - SIGHUP: deliver with cfg's settings from now on
 * (delivery method, relayhost, local domains, aliases file, retries,
 * lifetime, hostname).  Attempts in progress finish with the settings
 * they started with.  Takes cfg (freed when no attempt uses it any more,
 * or at once on failure).  0, or -1 (logged; the old settings stay).
 * The number of delivery threads stays as started.
 */
int qmgr_reconfigure(struct qmgr *m, struct msagate_config *cfg);
/*
 * qmgr_set_spares - delivered messages' files go to this pool of spares
 * (qspare.h) instead of being unlinked, while it has room.  Call before
 * qmgr_scan(); the pool must outlive the qmgr.
 */
struct qspare;
void qmgr_set_spares(struct qmgr *m, struct qspare *sp);
/* Schedule every message in queue/ now; remove orphaned status files. */
void qmgr_scan(struct qmgr *m);
/* A new message was committed: deliver it now. */
void qmgr_add(struct qmgr *m, const char *qid);
/* Make every deferred message due now; returns how many were waiting. */
size_t qmgr_flush(struct qmgr *m);
/* Forget (and log) the waiting or ready messages whose file msagatectl
 * deleted; one being delivered notices by itself.  Returns how many. */
size_t qmgr_sweep_deleted(struct qmgr *m);
/* Counts for log lines: waiting for a retry, ready or being delivered. */
void qmgr_counts(const struct qmgr *m, size_t *waiting, size_t *active);
/* Stop dispatching and wait for the deliveries in progress. */
void qmgr_stop(struct qmgr *m);
void qmgr_free(struct qmgr *m);

/*
 * Seconds until the next attempt after `tries` failed ones (tries >= 1):
 * min, doubling, at most max.
 */
unsigned qmgr_retry_delay(unsigned tries, unsigned min, unsigned max);
/* qid_new() made safe for the queue role's threads. */
void qmgr_qid_new(char out[QID_LEN + 1]);

/*
 * qmgr_queue_file - write a whole queue file (header + message) into
 * incoming/, fsync, rename into queue/, fsync queue/.  Used for bounces.
 * Returns 0 (id filled in) or -1 with errno.
 */
int qmgr_queue_file(int in_dfd, int q_dfd, struct qenvelope *env,
    const char *msg, size_t len);

#endif
