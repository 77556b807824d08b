/*
 * deliver-alias.h - delivering to the "|command" and "/file" targets of
 * aliases (relay.allow_alias_commands, relay.allow_alias_files): what a
 * child of the delivery helper (deliver-helper.c) does once it runs as
 * relay.alias_user, never as root.
 *
 * A command gets the message on its standard input, as Postfix's local(8)
 * gives it: a "From sender date" line, Return-Path: and Delivered-To:,
 * then the message with LF line ends.  It runs through /bin/sh -c, in its
 * own session, with a small fixed environment and a time limit.  Exit 0
 * is delivered; other exit codes follow sysexits(3) as in Postfix (75
 * EX_TEMPFAIL and 71 EX_OSERR are retried, the rest bounce); the time
 * limit or a signal defers.
 *
 * A file gets the message appended in mbox format (the same From_ line
 * and headers, body lines starting with "From " quoted as ">From ", an
 * empty line after it), under an fcntl() write lock, fsynced; on a write
 * error the file is cut back to its old size.  Symbolic links, files that
 * are not regular, executable or hard-linked files are refused.
 */
#ifndef MSAGATE_DELIVER_ALIAS_H
#define MSAGATE_DELIVER_ALIAS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "delivery.h"

#define ALIAS_OUTPUT_MAX  1024        /* command output kept for the report */
#define ALIAS_LOCK_SECS   30          /* wait at most this long for a lock */

/* One delivery to a command or a file. */
struct alias_job {
	const char *target;          /* "|command" or "/path" */
	const char *sender;          /* envelope sender ("" = null sender) */
	const char *rcpt;            /* the envelope recipient that led here */
	const char *head;            /* header lines to prepend (each ends LF) */
	size_t hlen;
	const char *user;            /* the account it runs as (USER, LOGNAME) */
	const char *home;            /* its home: HOME and working directory */
	int timeout_s;               /* a command's run time limit */
};

void alias_deliver_command(const struct alias_job *j,
    const struct delivery_msg *msg, struct delivery_rcpt *r);
void alias_deliver_file(const struct alias_job *j,
    const struct delivery_msg *msg, struct delivery_rcpt *r);

/* "From SENDER Www Mmm dd hh:mm:ss yyyy\n" (MAILER-DAEMON for the null
 * sender, white space and control characters in it as '_'). */
void alias_from_line(char *buf, size_t len, const char *sender, time_t t);

/*
 * The verdict for a command that ended with wait status wstatus (or ran
 * out of time): r's status, enhanced code and text; output (what it
 * printed, may be "") is added to the text.
 */
void alias_command_verdict(int wstatus, bool timed_out, int timeout_s,
    const char *output, struct delivery_rcpt *r);

/* mbox "From " quoting of a stream of LF-terminated lines. */
struct mbox_quote {
	int (*out)(void *arg, const char *p, size_t n);
	void *arg;
	bool bol;                    /* at the beginning of a line */
	size_t npend;                /* how much of "From " was seen there */
	size_t len;
	char buf[8192];
};

void mbox_quote_init(struct mbox_quote *q,
    int (*out)(void *arg, const char *p, size_t n), void *arg);
/* Feed n bytes; 0, or -1 when out() failed. */
int mbox_quote_feed(struct mbox_quote *q, const char *p, size_t n);
/* Flush what is held back; 0 or -1. */
int mbox_quote_end(struct mbox_quote *q);

#endif
