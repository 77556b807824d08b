/*
 * msagatectl.c - the administrator's tool: option parsing, configuration
 * loading and dispatch to the command groups in ctl-*.c; `reload` lives
 * here.  Exit status: 0 success, 1 negative result, 2 usage or
 * configuration error, 75 temporary failure (daemon not reachable).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "ctl.h"
#include "log.h"
#include "util.h"
#include "version.h"

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: msagatectl [-c FILE] COMMAND\n"
	    "  queue list              one line per queued message (as mailq)\n"
	    "  queue show ID           envelope and headers of one message\n"
	    "  queue flush             retry every deferred message now\n"
	    "  queue delete ID|ALL     remove messages from the queue\n"
	    "  auth test USER [PASS]   authenticate through the auth socket (PLAIN)\n"
	    "  pw [-s SCHEME]          hash a password read from the terminal or stdin\n"
	    "  reload                  make the running daemon re-read its configuration\n"
	    "options:\n"
	    "  -c FILE        configuration file (default %s)\n"
	    "  -V, --version  print the version\n"
	    "  -h, --help     this help\n"
	    "exit status: 0 ok, 1 negative result, 2 usage/configuration error,\n"
	    "75 temporary failure (daemon or socket not reachable)\n",
	    MSAGATE_DEFAULT_CONFIG);
}

static struct msagate_config *
load(const char *file)
{
	struct config_errors errs = { 0 };
	struct msagate_config *cfg = config_load(file, &errs);
	size_t i;

	for (i = 0; i < errs.n; i++)
		fprintf(stderr, "msagatectl: %s\n", errs.msg[i]);
	if (errs.n) {
		config_errors_free(&errs);
		config_free(cfg);
		return NULL;
	}
	return cfg;
}

/* reload - SIGHUP to the msagated whose pid is in run_dir/msagated.pid. */
static int
do_reload(const struct msagate_config *cfg)
{
	long pid = msagated_pid_from(cfg->pid_file);

	if (pid == 0) {
		fprintf(stderr, "msagatectl: msagated is not running (no live msagated "
		    "process named in %s)\n", cfg->pid_file);
		return CTL_TEMPFAIL;
	}
	if (kill((pid_t)pid, SIGHUP) != 0) {
		fprintf(stderr, "msagatectl: cannot signal msagated (pid %ld): %s\n",
		    pid, strerror(errno));
		return errno == EPERM ? CTL_USAGE : CTL_TEMPFAIL;
	}
	printf("msagated (pid %ld): reload requested\n", pid);
	return CTL_OK;
}

int
main(int argc, char **argv)
{
	const char *file = MSAGATE_DEFAULT_CONFIG;
	struct msagate_config *cfg;
	int ch, rc;

	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};

	log_init("msagatectl", true, false, NULL);
	while ((ch = getopt_long(argc, argv, "+c:Vh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c': file = optarg; break;
		case 'V': printf("msagatectl %s\n", MSAGATE_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return CTL_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1) {
		usage(stderr);
		return CTL_USAGE;
	}
	if (strcmp(argv[0], "pw") == 0) {
		optind = 1;
		return ctl_pw(argc, argv);
	}
	if (strcmp(argv[0], "queue") != 0 && strcmp(argv[0], "auth") != 0 &&
	    strcmp(argv[0], "reload") != 0) {
		fprintf(stderr, "msagatectl: unknown command \"%s\"\n", argv[0]);
		usage(stderr);
		return CTL_USAGE;
	}
	cfg = load(file);
	if (cfg == NULL)
		return CTL_USAGE;
	optind = 1;
	if (strcmp(argv[0], "queue") == 0)
		rc = argc < 2 ? (usage(stderr), CTL_USAGE) : ctl_queue(cfg, argc - 1, argv + 1);
	else if (strcmp(argv[0], "auth") == 0)
		rc = argc < 2 ? (usage(stderr), CTL_USAGE) : ctl_auth(cfg, argc - 1, argv + 1);
	else
		rc = argc != 1 ? (usage(stderr), CTL_USAGE) : do_reload(cfg);
	config_free(cfg);
	return rc;
}
