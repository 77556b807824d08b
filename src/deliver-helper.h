/*
 * deliver-helper.h - the privileged delivery helper: the one process of
 * the queue side that may switch user ids (it runs as `user` with only
 * CAP_SETUID and CAP_SETGID left), so that local mail can be written as
 * its recipient (Maildir owned by the userdb uid/gid, like Postfix's
 * local(8)/virtual(8)) and alias commands and files run as
 * relay.alias_user - while the queue role itself, which talks to remote
 * servers, runs as `user`.
 *
 * The queue role forks it before it drops root (deliver_helper_start());
 * the helper then becomes `user` too, keeping only those two
 * capabilities.  The queue role talks to it over a SOCK_SEQPACKET
 * socketpair: one message per delivery, with the open queue file and the
 * write end of a fresh reply socketpair passed by SCM_RIGHTS, plus a
 * bounded request (kind, uid, gid, target path or command, sender,
 * recipient, header lines to prepend).  The helper never touches a file
 * itself: it forks a child per delivery, which switches to the target
 * uid/gid (setgroups, setresgid, setresuid, then drops every capability,
 * all checked) before it opens anything, delivers, and answers on the
 * reply socket.  The helper refuses by itself what the configuration does
 * not allow: uid 0, gid 0, uids below relay.delivery.min_uid, commands or
 * files when they are off - a queue role that was taken over cannot make
 * it write as root or run commands.
 *
 * Started without root, the helper (and everything) runs as the invoking
 * user and refuses any other uid.
 */
#ifndef MSAGATE_DELIVER_HELPER_H
#define MSAGATE_DELIVER_HELPER_H

#include <stdbool.h>
#include <sys/types.h>

#include "config.h"
#include "delivery.h"

#define HELPER_FS_SECS       300      /* a Maildir or file delivery, at most */
#define HELPER_MAX_CHILDREN  128      /* deliveries at once */
#define HELPER_MAX_TARGET    4096
#define HELPER_MAX_ADDR      1024     /* sender, recipient */
#define HELPER_MAX_HEAD      4096

enum helper_kind {
	HELPER_MAILDIR = 1,          /* target: the Maildir directory */
	HELPER_COMMAND = 2,          /* target: "|command" */
	HELPER_FILE = 3              /* target: "/path" */
};

struct helper_request {
	enum helper_kind kind;
	uid_t uid;                   /* HELPER_MAILDIR: the recipient's */
	gid_t gid;
	const char *target;
	const char *sender;          /* envelope sender, "" = null sender */
	const char *rcpt;            /* envelope recipient (RECIPIENT=) */
	const char *head;            /* header lines to prepend, each ends LF */
};

/*
 * deliver_helper_start - fork the helper if the configuration may need
 * it (Maildir delivery while root, alias commands or files).  Call it in
 * the queue role before privsep_drop(), while single-threaded.  Dies if
 * it cannot.
 */
void deliver_helper_start(const struct msagate_config *cfg);
/* Is it there (started and not known to be gone)? */
bool deliver_helper_running(void);
/* Was it started as root (can it write as other users)? */
bool deliver_helper_privileged(void);

/*
 * deliver_helper_call - one delivery through the helper; blocks (worker
 * threads only) until the answer or a timeout, and fills r's verdict.
 * A helper that is gone defers (and makes the queue role restart).
 */
void deliver_helper_call(const struct helper_request *req,
    const struct delivery_msg *msg, struct delivery_rcpt *r);

/*
 * deliver_helper_check - the helper's own checks of a request (exported
 * for the unit tests): NULL when acceptable, else why not.  privileged:
 * the helper may switch ids; self_uid/self_gid: its ids otherwise.
 */
const char *deliver_helper_check(const struct helper_request *req,
    const struct msagate_config *cfg, bool privileged, uid_t self_uid,
    gid_t self_gid);

#endif
