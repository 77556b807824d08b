/*
 * maildir.h - storing one message in a Maildir: the directories created
 * on first delivery (mode 0700, parents fsynced), the message written to
 * tmp/ under a unique name, fsynced, renamed into new/, new/ fsynced.
 *
 * Shared by the "maildir" delivery method (deliver-maildir.c, in the
 * queue role, as `user`) and the privileged delivery helper's children
 * (deliver-helper.c), which call it after switching to the recipient's
 * uid and gid, so that whatever it creates belongs to the recipient.
 */
#ifndef MSAGATE_MAILDIR_H
#define MSAGATE_MAILDIR_H

#include <stddef.h>

#include "delivery.h"

#define MAILDIR_PATH_MAX 4096
#define MAILDIR_HOST_MAX 256

/*
 * The host part of unique file names: hostname with '/' and ':' encoded
 * as \057 and \072 (the Maildir convention), truncated to fit out.
 */
void maildir_host(const char *hostname, char *out, size_t len);

/*
 * maildir_store - deliver msg (CRLF -> LF) into the Maildir dir, head
 * (header lines ending in LF, e.g. Return-Path/Delivered-To) first.
 * Creates dir and dir/{tmp,new,cur} when missing.  No symlink on the path
 * is followed, every directory on it must belong to root or to the
 * effective uid and not be writable by others unless sticky, and the
 * Maildir and its subdirectories must belong to the effective uid
 * (EPERM otherwise).  Returns 0, or -1 with errno and *step naming what
 * failed ("open or create the Maildir", "write"...); a failed delivery
 * leaves nothing in tmp/ or new/.
 */
int maildir_store(const char *dir, const char *host, const char *head,
    size_t hlen, const struct delivery_msg *msg, const char **step);

/*
 * maildir_verdict - r's verdict after maildir_store(): err 0 is delivered;
 * otherwise a temporary failure (4.2.2 for a full disk or quota, else
 * 4.3.0: the administrator can fix a path or its permissions) naming the
 * step and the directory.
 */
void maildir_verdict(struct delivery_rcpt *r, int err, const char *step,
    const char *dir);

#endif
