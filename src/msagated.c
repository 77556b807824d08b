/*
 * msagated.c - the root parent: reads and checks the configuration, binds
 * the TCP listeners, the auth socket and the queue socket, starts the roles
 * (queue, auth, smtp) as separate processes, restarts a role that dies,
 * and handles SIGHUP (reload) and SIGTERM (graceful stop).
 *
 * The parent never parses network input.  Roles drop to cfg->user
 * themselves right after their privileged set-up (see roles.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "config.h"
#include "log.h"
#include "roles.h"
#include "util.h"
#include "version.h"

enum role_kind { ROLE_QUEUE, ROLE_AUTH, ROLE_SMTP };
static const char *const role_names[] = { "queue", "auth", "smtp" };

/* One supervised child process. */
struct child {
	pid_t pid;
	enum role_kind kind;
	int slot;                /* smtp process number */
	bool retiring;           /* old generation after a reload: do not restart */
	time_t started;
	int fast_deaths;         /* consecutive deaths soon after start */
	time_t restart_at;       /* 0 = running or none pending */
	int ctl;                 /* queue role: our end of its reload socket, or -1 */
};

#define MAX_CHILDREN 160
static struct child children[MAX_CHILDREN];
static size_t n_children;

static volatile sig_atomic_t got_hup, got_term, got_chld;
static struct msagate_config *cfg;
static struct smtp_listeners listeners;
static struct auth_fds auth_fds = { NULL, 0, -1 };
static int queue_fd = -1;
static bool foreground;

static void
on_signal(int sig)
{
	if (sig == SIGHUP)
		got_hup = 1;
	else if (sig == SIGCHLD)
		got_chld = 1;
	else
		got_term = 1;
}

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: msagated [-fndVh] [-c FILE]\n"
	    "  -c FILE  configuration file (default %s)\n"
	    "  -f       stay in the foreground, log to stderr\n"
	    "  -n       check the configuration, print every problem as FILE:LINE: message,\n"
	    "           exit 0 if good, 1 if not\n"
	    "  -d       debug logging\n"
	    "  -V, --version  print the version and exit\n"
	    "  -h, --help     this help\n"
	    "Signals: SIGHUP re-reads the configuration, certificates and passwd files;\n"
	    "SIGTERM stops accepting, lets sessions in DATA finish, exits 0.\n",
	    MSAGATE_DEFAULT_CONFIG);
}

/* load_checked - load and fully check a configuration; NULL (errors printed
 * or logged) when it has any problem. */
static struct msagate_config *
load_checked(const char *file, bool to_stdout)
{
	struct config_errors errs = { 0 };
	struct msagate_config *c;
	size_t i;

	c = config_load(file, &errs);
	if (c)
		config_check_deep(c, &errs);
	if (c) {
		struct config_errors later = { 0 };

		config_check_later(c, &later);
		for (i = 0; i < later.n; i++) {
			if (to_stdout) {
				/* -n: a problem like the others (moved over) */
				errs.msg = xrealloc(errs.msg, (errs.n + 1) * sizeof(char *));
				errs.msg[errs.n++] = later.msg[i];
				later.msg[i] = NULL;
			} else
				log_warnx("%s", later.msg[i]);
		}
		config_errors_free(&later);
	}
	for (i = 0; i < errs.n; i++) {
		if (to_stdout)
			printf("%s\n", errs.msg[i]);
		else
			log_errx("%s", errs.msg[i]);
	}
	if (errs.n) {
		config_errors_free(&errs);
		config_free(c);
		return NULL;
	}
	return c;
}

/* bind_tcp - a listening, non-blocking TCP socket for one listener. */
static int
bind_tcp(const struct listen_cfg *l)
{
	struct sockaddr_storage ss;
	socklen_t slen;
	int fd, one = 1;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, l->address, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)l->port);
		slen = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
		if (inet_pton(AF_INET6, l->address, &sin6->sin6_addr) != 1)
			fatalx("listen address %s invalid", l->address);
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)l->port);
		slen = sizeof(*sin6);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		fatal("socket");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, slen) < 0)
		fatal("cannot listen on %s port %d (%s:%d)", l->address, l->port,
		    cfg->file, l->line);
	if (listen(fd, 4096) < 0)
		fatal("listen %s port %d", l->address, l->port);
	return fd;
}

/* bind_unix - a listening UNIX socket at path with mode and owner. */
static int
bind_unix(const char *path, int type, int mode, uid_t uid, gid_t gid)
{
	struct sockaddr_un sun;
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path))
		fatalx("socket path too long: %s", path);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		fatal("socket");
	/* a socket something still answers on is not stale: another daemon's
	 * (Dovecot's, a second msagated's) must not be taken over */
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0 ||
	    errno == EAGAIN || errno == EINPROGRESS)
		fatalx("%s is in use by another running program; not starting "
		    "(a second msagated, or another daemon's socket?)", path);
	close(fd);
	fd = socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		fatal("socket");
	if (unlink(path) < 0 && errno != ENOENT)
		fatal("cannot remove stale socket %s", path);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		fatal("cannot bind %s", path);
	if (chmod(path, (mode_t)mode) < 0)
		fatal("chmod %s", path);
	if ((uid != (uid_t)-1 || gid != (gid_t)-1) && chown(path, uid, gid) < 0)
		fatal("chown %s", path);
	if (listen(fd, 1024) < 0)
		fatal("listen %s", path);
	return fd;
}

/* ensure_dir - create dir (mode) if missing, owned by uid/gid when root. */
static void
ensure_dir(const char *dir, mode_t mode, uid_t uid, gid_t gid)
{
	if (mkdir(dir, mode) < 0 && errno != EEXIST)
		fatal("cannot create %s", dir);
	if (geteuid() == 0 && chown(dir, uid, gid) < 0)
		fatal("chown %s", dir);
}

/* check_pidfile - refuse to start a second daemon on the same run_dir. */
static void
check_pidfile(void)
{
	long pid = msagated_pid_from(cfg->pid_file);

	if (pid > 0)
		fatalx("msagated already running as pid %ld (%s)", pid, cfg->pid_file);
}

static void
write_pidfile(void)
{
	char tmp[4096 + 8], buf[32];
	int fd, n;

	snprintf(tmp, sizeof(tmp), "%s.tmp", cfg->pid_file);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		fatal("cannot write %s", tmp);
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (write_all(fd, buf, (size_t)n) < 0 || close(fd) < 0 ||
	    rename(tmp, cfg->pid_file) < 0)
		fatal("cannot write %s", cfg->pid_file);
}

/* open_sockets - everything that needs root: listeners and local sockets. */
static void
open_sockets(void)
{
	uid_t uid = (uid_t)-1, auid = (uid_t)-1;
	gid_t gid = (gid_t)-1, agid = (gid_t)-1;
	size_t i;

	if (geteuid() == 0) {
		struct passwd *pw = getpwnam(cfg->user);
		if (pw == NULL)
			fatalx("user \"%s\" does not exist (%s)", cfg->user, cfg->file);
		uid = auid = pw->pw_uid;
		gid = agid = pw->pw_gid;
		if (cfg->auth.socket_user) {
			struct passwd *ap = getpwnam(cfg->auth.socket_user);
			if (ap == NULL)
				fatalx("auth.socket_user \"%s\" does not exist",
				    cfg->auth.socket_user);
			auid = ap->pw_uid;
		}
		if (cfg->auth.socket_group) {
			struct group *gr = getgrnam(cfg->auth.socket_group);
			if (gr == NULL)
				fatalx("auth.socket_group \"%s\" does not exist",
				    cfg->auth.socket_group);
			agid = gr->gr_gid;
		}
	}
	ensure_dir(cfg->run_dir, 0755, 0, 0);
	ensure_dir(cfg->state_dir, 0700, uid, gid);
	check_pidfile();

	listeners.n = cfg->n_listen;
	listeners.fds = xcalloc(cfg->n_listen + 1, sizeof(int));
	for (i = 0; i < cfg->n_listen; i++)
		listeners.fds[i] = bind_tcp(&cfg->listen[i]);
	auth_fds.client = xcalloc(cfg->auth.n_listeners + 2, sizeof(int));
	auth_fds.client[auth_fds.n_client++] = bind_unix(cfg->auth.socket, SOCK_STREAM,
	    cfg->auth.socket_mode, auid, agid);
	for (i = 0; i < cfg->auth.n_listeners; i++) {
		const struct auth_listener_cfg *al = &cfg->auth.listeners[i];
		uid_t lu = uid;
		gid_t lg = gid;
		if (geteuid() == 0 && al->user) {
			struct passwd *lp = getpwnam(al->user);
			if (lp == NULL)
				fatalx("auth.listeners user \"%s\" does not exist", al->user);
			lu = lp->pw_uid;
		}
		if (geteuid() == 0 && al->group) {
			struct group *lgr = getgrnam(al->group);
			if (lgr == NULL)
				fatalx("auth.listeners group \"%s\" does not exist", al->group);
			lg = lgr->gr_gid;
		}
		auth_fds.client[auth_fds.n_client++] = bind_unix(al->path, SOCK_STREAM,
		    al->mode, lu, lg);
	}
	/* internal: the SMTP role's recipient lookups (same user only) */
	auth_fds.userdb = bind_unix(cfg->auth.userdb_socket, SOCK_STREAM, 0600, uid, gid);
	queue_fd = bind_unix(cfg->queue_socket, SOCK_SEQPACKET, 0600, uid, gid);
}

static void
close_sockets(void)
{
	size_t i;

	for (i = 0; i < listeners.n; i++)
		if (listeners.fds[i] >= 0)
			close(listeners.fds[i]);
	for (i = 0; i < auth_fds.n_client; i++)
		close(auth_fds.client[i]);
	close(auth_fds.userdb);
	close(queue_fd);
	unlink(cfg->auth.socket);
	for (i = 0; i < cfg->auth.n_listeners; i++)
		unlink(cfg->auth.listeners[i].path);
	unlink(cfg->auth.userdb_socket);
	unlink(cfg->queue_socket);
}

static void
close_auth_fds(void)
{
	size_t i;

	for (i = 0; i < auth_fds.n_client; i++)
		close(auth_fds.client[i]);
	close(auth_fds.userdb);
}

/*
 * raise_fd_hard_limit - as root, make room for smtp.max_connections
 * descriptors in every SMTP process (a session is one) before the roles
 * start: the hard RLIMIT_NOFILE up to what the kernel allows
 * (fs.nr_open); the roles raise their soft limit to it.
 */
static void
raise_fd_hard_limit(void)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)(cfg->smtp.max_connections > 0 ?
	    cfg->smtp.max_connections : 20000) + 1024;
	FILE *fp;
	unsigned long long nr_open = 0;

	if (geteuid() != 0 || getrlimit(RLIMIT_NOFILE, &rl) != 0 ||
	    rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want)
		return;
	if ((fp = fopen("/proc/sys/fs/nr_open", "r")) != NULL) {
		if (fscanf(fp, "%llu", &nr_open) != 1)
			nr_open = 0;
		fclose(fp);
	}
	if (nr_open > 0 && want > (rlim_t)nr_open)
		want = (rlim_t)nr_open;
	if (want <= rl.rlim_max)
		return;
	rl.rlim_max = want;
	/* without CAP_SYS_RESOURCE (a container): the SMTP role says what
	 * the limit means for max_connections */
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		log_debug("cannot raise the descriptor limit to %llu: %s",
		    (unsigned long long)want, strerror(errno));
}

/* start_child - fork one role; the child never returns. */
static void
start_child(struct child *c)
{
	sigset_t none;
	pid_t pid;
	int rc = 1, sv[2] = { -1, -1 };

	if (c->ctl >= 0) {
		close(c->ctl);
		c->ctl = -1;
	}
	/* the queue role gets reloads (a descriptor of the config) on sv[1] */
	if (c->kind == ROLE_QUEUE &&
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		log_warn("socketpair for the queue role");
		sv[0] = sv[1] = -1;
	}
	pid = fork();
	if (pid < 0) {
		log_warn("fork for %s role", role_names[c->kind]);
		c->restart_at = time(NULL) + 5;
		if (sv[0] >= 0) {
			close(sv[0]);
			close(sv[1]);
		}
		return;
	}
	if (pid > 0) {
		if (sv[1] >= 0)
			close(sv[1]);
		c->ctl = sv[0];
		c->pid = pid;
		c->started = time(NULL);
		c->restart_at = 0;
		log_debug("started %s role, pid %ld", role_names[c->kind], (long)pid);
		return;
	}
	/* child: default signal handling, then the role */
	privsep_set_parent(getppid());
	for (size_t i = 0; i < n_children; i++)
		if (children[i].ctl >= 0)
			close(children[i].ctl);
	if (sv[0] >= 0)
		close(sv[0]);
	signal(SIGHUP, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
	signal(SIGUSR1, SIG_DFL);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	{
		char ident[64];
		snprintf(ident, sizeof(ident), "msagated/%s", role_names[c->kind]);
		log_set_ident(ident);
	}
	switch (c->kind) {
	case ROLE_QUEUE:
		close_auth_fds();
		for (size_t i = 0; i < listeners.n; i++)
			close(listeners.fds[i]);
		rc = role_queue_main(cfg, queue_fd, sv[1]);
		break;
	case ROLE_AUTH:
		close(queue_fd);
		for (size_t i = 0; i < listeners.n; i++)
			close(listeners.fds[i]);
		rc = role_auth_main(cfg, &auth_fds);
		break;
	case ROLE_SMTP:
		close(queue_fd);
		close_auth_fds();
		rc = role_smtp_main(cfg, &listeners);
		break;
	}
	_exit(rc);
}

static struct child *
add_child(enum role_kind kind, int slot)
{
	struct child *c;

	if (n_children >= MAX_CHILDREN)
		fatalx("too many role processes");
	c = &children[n_children++];
	memset(c, 0, sizeof(*c));
	c->ctl = -1;
	c->kind = kind;
	c->slot = slot;
	start_child(c);
	return c;
}

static void
start_smtp_generation(void)
{
	int i;

	for (i = 0; i < cfg->smtp.processes; i++)
		add_child(ROLE_SMTP, i);
}

/* reap - collect dead children; schedule restarts with a growing backoff. */
static void
reap(void)
{
	int status;
	pid_t pid;
	size_t i;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (i = 0; i < n_children; i++) {
			struct child *c = &children[i];
			if (c->pid != pid)
				continue;
			c->pid = 0;
			if (c->ctl >= 0) {
				close(c->ctl);
				c->ctl = -1;
			}
			if (c->retiring || got_term) {
				log_debug("%s role pid %ld finished", role_names[c->kind], (long)pid);
				*c = children[--n_children];
				break;
			}
			if (WIFSIGNALED(status))
				log_errx("%s role (pid %ld) killed by signal %d; restarting",
				    role_names[c->kind], (long)pid, WTERMSIG(status));
			else
				log_errx("%s role (pid %ld) exited with status %d; restarting",
				    role_names[c->kind], (long)pid, WEXITSTATUS(status));
			if (time(NULL) - c->started < 10)
				c->fast_deaths++;
			else
				c->fast_deaths = 0;
			c->restart_at = time(NULL) + (c->fast_deaths == 0 ? 0 :
			    c->fast_deaths < 5 ? c->fast_deaths : 30);
			break;
		}
	}
}

static void
signal_role(enum role_kind kind, int sig)
{
	size_t i;

	for (i = 0; i < n_children; i++)
		if (children[i].kind == kind && children[i].pid > 0 && !children[i].retiring)
			kill(children[i].pid, sig);
}

/*
 * send_queue_reload - hand the running queue role the configuration just
 * checked, as a descriptor (the file may be readable by root only).  A
 * queue role waiting for its restart starts with it anyway.
 */
static bool
same_file_state(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
	    a->st_size == b->st_size && a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	    a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static void
send_queue_reload(int fd, const struct stat *opened)
{
	struct stat a, b;
	size_t i;

	/* the file checked must be the one handed over: opened before the
	 * check, and neither replaced nor edited in place since */
	if (fd < 0 || fstat(fd, &a) != 0 || stat(cfg->file, &b) != 0 ||
	    !same_file_state(&a, &b) || !same_file_state(&a, opened)) {
		log_warnx("reload: %s changed while it was being checked; the queue "
		    "role keeps its settings (reload again)", cfg->file);
		return;
	}
	for (i = 0; i < n_children; i++) {
		struct child *c = &children[i];

		if (c->kind != ROLE_QUEUE || c->retiring || c->pid <= 0 || c->ctl < 0)
			continue;
		if (lseek(fd, 0, SEEK_SET) != 0 || send_fd(c->ctl, fd, 'R') < 0)
			log_warn("reload: cannot reach the queue role");
	}
}

/* same_auth_sockets - do a and b name the same auth and userdb sockets? */
static bool
same_auth_sockets(const struct msagate_config *a, const struct msagate_config *b)
{
	if (strcmp(a->auth.socket, b->auth.socket) != 0 ||
	    strcmp(a->auth.userdb_socket, b->auth.userdb_socket) != 0 ||
	    a->auth.n_listeners != b->auth.n_listeners)
		return false;
	for (size_t i = 0; i < a->auth.n_listeners; i++)
		if (strcmp(a->auth.listeners[i].path, b->auth.listeners[i].path) != 0)
			return false;
	return true;
}

/*
 * reload - SIGHUP: re-read and check the configuration; if good, start a
 * new generation of smtp processes (new certificates, new settings) and let
 * the old ones finish their sessions; the auth role re-reads its files
 * (changed auth settings get a new auth role); the queue role is handed
 * the new configuration and delivers with its relay settings from now on
 * (role-queue.c: a few keys of its delivery helper stay as started).
 * Listener addresses and socket paths need a restart.
 */
static void
reload(void)
{
	struct msagate_config *n;
	size_t i;
	bool auth_changed, auth_swap;
	int cfd;
	struct stat cst;

	log_info("SIGHUP: reloading %s", cfg->file);
	cfd = open(cfg->file, O_RDONLY | O_CLOEXEC);   /* what the queue role gets */
	if (cfd >= 0 && fstat(cfd, &cst) != 0) {
		close(cfd);
		cfd = -1;
	}
	n = load_checked(cfg->file, false);
	if (n == NULL) {
		log_errx("configuration has errors; keeping the running one");
		if (cfd >= 0)
			close(cfd);
		return;
	}
	if (n->n_listen != cfg->n_listen ||
	    strcmp(n->auth.socket, cfg->auth.socket) != 0 ||
	    strcmp(n->run_dir, cfg->run_dir) != 0 ||
	    strcmp(n->state_dir, cfg->state_dir) != 0)
		log_warnx("listeners, sockets and directories change only on restart");
	else
		for (i = 0; i < n->n_listen; i++)
			if (n->listen[i].port != cfg->listen[i].port ||
			    strcmp(n->listen[i].address, cfg->listen[i].address) != 0)
				log_warnx("listener %s:%d changes only on restart",
				    n->listen[i].address, n->listen[i].port);
	/*
	 * Changed auth settings: a new auth role takes over the same sockets
	 * (it holds nothing durable) while the old one stops accepting and
	 * exits once its clients have moved (auth role, SIGTERM).  Different
	 * socket paths need a restart.
	 */
	auth_changed = strcmp(n->auth_text, cfg->auth_text) != 0;
	auth_swap = auth_changed && same_auth_sockets(n, cfg);
	if (auth_changed && !auth_swap)
		log_warnx("reload: the auth socket paths changed: the auth settings "
		    "apply only after a restart of msagated");
	/* keep addresses/paths of the running sockets */
	for (i = 0; i < n->n_listen && i < cfg->n_listen; i++) {
		free(n->listen[i].address);
		n->listen[i].address = xstrdup(cfg->listen[i].address);
		n->listen[i].port = cfg->listen[i].port;
	}
	n->n_listen = cfg->n_listen < n->n_listen ? cfg->n_listen : n->n_listen;
	free(n->auth.socket);
	n->auth.socket = xstrdup(cfg->auth.socket);
	free(n->auth.userdb_socket);
	n->auth.userdb_socket = xstrdup(cfg->auth.userdb_socket);
	for (i = 0; i < n->auth.n_listeners && i < cfg->auth.n_listeners; i++) {
		free(n->auth.listeners[i].path);
		n->auth.listeners[i].path = xstrdup(cfg->auth.listeners[i].path);
	}
	free(n->run_dir);
	n->run_dir = xstrdup(cfg->run_dir);
	free(n->state_dir);
	n->state_dir = xstrdup(cfg->state_dir);
	free(n->queue_socket);
	n->queue_socket = xstrdup(cfg->queue_socket);
	free(n->pid_file);
	n->pid_file = xstrdup(cfg->pid_file);

	config_free(cfg);
	cfg = n;
	/* SIGUSR1: stop accepting, let every session end by itself, exit */
	for (i = 0; i < n_children; i++)
		if (children[i].kind == ROLE_SMTP && !children[i].retiring) {
			children[i].retiring = true;
			if (children[i].pid > 0)
				kill(children[i].pid, SIGUSR1);
		}
	if (auth_swap) {
		for (i = 0; i < n_children; i++)
			if (children[i].kind == ROLE_AUTH && !children[i].retiring) {
				children[i].retiring = true;
				if (children[i].pid > 0)
					kill(children[i].pid, SIGTERM);
			}
		add_child(ROLE_AUTH, 0);
		log_info("reload: the auth settings changed: a new auth role applies "
		    "them; the old one stops once its clients have moved over");
	} else
		signal_role(ROLE_AUTH, SIGHUP);
	send_queue_reload(cfd, &cst);
	if (cfd >= 0)
		close(cfd);
	start_smtp_generation();
}

/* wait_kind - reap until no child of `kind` (or any, if kind < 0) is left
 * or the deadline passes. */
static void
wait_children(int kind, time_t deadline)
{
	size_t i;
	bool left = true;

	while (left && time(NULL) < deadline) {
		reap();
		for (i = 0; i < n_children; i++)
			if (children[i].pid == 0)
				children[i--] = children[--n_children];
		left = false;
		for (i = 0; i < n_children; i++)
			if (kind < 0 || (int)children[i].kind == kind)
				left = true;
		if (left)
			usleep(20000);
	}
}

/*
 * shutdown_all - SIGTERM the smtp processes first and let their sessions
 * finish (they still need the queue and auth roles), then stop the auth
 * and queue roles; whatever is left after the deadlines gets SIGKILL.
 */
static void
shutdown_all(void)
{
	size_t i;

	log_info("SIGTERM: stopping");
	/* stop accepting now: with the smtp processes closing theirs, new
	 * connections are refused instead of waiting in the backlog */
	for (i = 0; i < listeners.n; i++) {
		if (listeners.fds[i] >= 0)
			close(listeners.fds[i]);
		listeners.fds[i] = -1;
	}
	for (i = 0; i < n_children; i++)
		if (children[i].kind == ROLE_SMTP && children[i].pid > 0)
			kill(children[i].pid, SIGTERM);
	wait_children(ROLE_SMTP, time(NULL) + 45);
	for (i = 0; i < n_children; i++)
		if (children[i].pid > 0)
			kill(children[i].pid, SIGTERM);
	wait_children(-1, time(NULL) + 10);
	for (i = 0; i < n_children; i++)
		if (children[i].pid > 0) {
			log_warnx("%s role pid %ld did not stop; killing it",
			    role_names[children[i].kind], (long)children[i].pid);
			kill(children[i].pid, SIGKILL);
		}
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

static void
daemonize(void)
{
	pid_t pid = fork();
	int fd;

	if (pid < 0)
		fatal("fork");
	if (pid > 0)
		_exit(0);
	if (setsid() < 0)
		fatal("setsid");
	pid = fork();
	if (pid < 0)
		fatal("fork");
	if (pid > 0)
		_exit(0);
	fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
}

int
main(int argc, char **argv)
{
	const char *file = MSAGATE_DEFAULT_CONFIG;
	bool check_only = false, debug = false;
	struct sigaction sa;
	sigset_t block, old;
	int ch;
	size_t i;

	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};

	while ((ch = getopt_long(argc, argv, "c:fndVh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c': file = optarg; break;
		case 'f': foreground = true; break;
		case 'n': check_only = true; break;
		case 'd': debug = true; break;
		case 'V': printf("msagated %s\n", MSAGATE_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	log_init("msagated", true, debug, NULL);
	if (check_only) {
		cfg = load_checked(file, true);
		if (cfg == NULL)
			return 1;
		printf("%s: configuration OK\n", file);
		config_free(cfg);
		return 0;
	}
	cfg = load_checked(file, false);
	if (cfg == NULL) {
		log_errx("not starting: fix the problems above (msagated -n -c %s)", file);
		return 1;
	}
	log_init("msagated", foreground, debug || cfg->log.debug, cfg->log.facility);
	if (geteuid() != 0)
		log_info("not started as root: every role runs as uid %ld, not as \"%s\"",
		    (long)geteuid(), cfg->user);
	open_sockets();
	if (!foreground)
		daemonize();
	write_pidfile();

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGCHLD, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&block);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGCHLD);
	sigprocmask(SIG_BLOCK, &block, &old);

	log_info("msagated %s starting: %zu listener(s), auth socket %s, state %s",
	    MSAGATE_VERSION, cfg->n_listen, cfg->auth.socket, cfg->state_dir);
	raise_fd_hard_limit();
	add_child(ROLE_QUEUE, 0);
	add_child(ROLE_AUTH, 0);
	start_smtp_generation();

	while (!got_term) {
		time_t now = time(NULL), next = 0;

		if (got_chld) {
			got_chld = 0;
			reap();
		}
		if (got_hup) {
			got_hup = 0;
			reload();
		}
		for (i = 0; i < n_children; i++) {
			struct child *c = &children[i];
			if (c->pid == 0 && c->retiring) {
				/* retired while waiting for a restart: gone */
				children[i--] = children[--n_children];
				continue;
			}
			if (c->pid == 0 && c->restart_at) {
				if (c->restart_at <= now)
					start_child(c);
				else if (next == 0 || c->restart_at < next)
					next = c->restart_at;
			}
		}
		if (got_term || got_chld || got_hup)
			continue;
		if (next) {
			struct timespec ts = { next - now, 0 };
			/* wake for a signal or the next restart, atomically unblocking */
			ppoll(NULL, 0, &ts, &old);
		} else
			sigsuspend(&old);
	}
	shutdown_all();
	close_sockets();
	unlink(cfg->pid_file);
	log_info("stopped");
	config_free(cfg);
	return 0;
}
