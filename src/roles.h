/*
 * roles.h - entry points of the processes that msagated's root parent
 * starts, and the privilege drop they share.
 *
 * Each role is forked by the parent with the configuration already loaded
 * (as root when started as root).  It sets up what needs privileges, calls
 * privsep_drop(), then runs its libevent loop until SIGTERM.  SIGHUP is
 * forwarded by the parent; what it means is role-specific.
 */
#ifndef MSAGATE_ROLES_H
#define MSAGATE_ROLES_H

#include <sys/types.h>

#include "config.h"

/* Listening sockets handed to the SMTP role, parallel to cfg->listen. */
struct smtp_listeners {
	int *fds;
	size_t n;
};

/* Sockets handed to the auth role: Dovecot-protocol client listeners
 * (auth.socket first, then auth.listeners) and the internal userdb socket
 * (Dovecot master-protocol USER lookups for the SMTP role; -1 if none). */
struct auth_fds {
	int *client;
	size_t n_client;
	int userdb;
};

int role_smtp_main(struct msagate_config *cfg, const struct smtp_listeners *ls);
int role_auth_main(struct msagate_config *cfg, const struct auth_fds *fds);
/* ctl_fd: the parent's end for reloads (SOCK_SEQPACKET), or -1 */
int role_queue_main(struct msagate_config *cfg, int queue_listen_fd, int ctl_fd);

/*
 * privsep_drop - when running as root, switch to cfg->user (setgroups,
 * setresgid, setresuid; dies if any step fails) and set no_new_privs.
 * When not root, logs once that everything runs as the invoking user.
 */
void privsep_drop(const struct msagate_config *cfg, const char *role);

/*
 * privsep_set_parent - called in a freshly forked role with the parent's
 * pid: privsep_drop() then asks for SIGTERM when that parent dies (after
 * the uid change, which clears the request), so a role never runs on
 * unsupervised, holding the ports, after a kill -9 of msagated.
 */
void privsep_set_parent(pid_t parent);

/* The parent asks a role to stop: set by the SIGTERM handler of the role. */

#endif
