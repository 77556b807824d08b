/*
 * privsep.c - dropping root for the roles: when started as root, every
 * role switches to the configured unprivileged user before it touches the
 * network or client data; started by anyone else, it stays that user.
 */
#include <errno.h>
#include <signal.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>

#include "roles.h"
#include "log.h"

static pid_t parent_pid;             /* msagated, or 0: not a role */

/*
 * privsep_drop - setgroups, setresgid, setresuid to cfg->user, then verify
 * that root cannot be regained.  Dies on any failure: a role must never run
 * with more privileges than intended.
 */
void
privsep_drop(const struct msagate_config *cfg, const char *role)
{
	struct passwd *pw;
	uid_t ru, eu, su;

	if (geteuid() != 0) {
		log_debug("%s role runs as uid %ld (not started as root)",
		    role, (long)geteuid());
		goto nnp;
	}
	pw = getpwnam(cfg->user);
	if (pw == NULL)
		fatalx("%s: user \"%s\" does not exist", role, cfg->user);
	if (pw->pw_uid == 0)
		fatalx("%s: user \"%s\" is root; set `user` to an unprivileged account",
		    role, cfg->user);
	if (setgroups(1, &pw->pw_gid) == -1)
		fatal("%s: setgroups", role);
	if (setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) == -1)
		fatal("%s: setresgid", role);
	if (setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) == -1)
		fatal("%s: setresuid", role);
	if (getresuid(&ru, &eu, &su) == -1 || ru == 0 || eu == 0 || su == 0)
		fatalx("%s: still root after dropping privileges", role);
	if (setuid(0) != -1)
		fatalx("%s: could regain root after dropping privileges", role);
	log_debug("%s role dropped privileges to %s (uid %ld)", role, cfg->user,
	    (long)pw->pw_uid);
nnp:
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
		log_warn("%s: prctl(PR_SET_NO_NEW_PRIVS)", role);
	/* the parent's death: SIGTERM, a clean stop (set after the uid
	 * change, which clears it); it may have died already */
	if (parent_pid > 0) {
		if (prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) == -1)
			log_warn("%s: prctl(PR_SET_PDEATHSIG)", role);
		if (getppid() != parent_pid) {
			log_warnx("%s: msagated (pid %ld) is gone; stopping", role,
			    (long)parent_pid);
			exit(1);
		}
	}
}

void
privsep_set_parent(pid_t parent)
{
	parent_pid = parent;
}
