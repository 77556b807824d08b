/*
 * ctl.h - the subcommands of msagatectl, one function per command group.
 * Each returns the process exit status: 0 success, 1 negative result,
 * 2 usage/configuration error, 75 temporary failure.
 */
#ifndef MSAGATE_CTL_H
#define MSAGATE_CTL_H

#include "config.h"

#define CTL_OK 0
#define CTL_NEGATIVE 1
#define CTL_USAGE 2
#define CTL_TEMPFAIL 75

/* queue list | show ID | flush | delete ID|ALL   (argv[0] is "list" etc.) */
int ctl_queue(const struct msagate_config *cfg, int argc, char **argv);
/* auth test USER [PASSWORD] */
int ctl_auth(const struct msagate_config *cfg, int argc, char **argv);
/* pw [-s SCHEME]  (needs no configuration) */
int ctl_pw(int argc, char **argv);

#endif
