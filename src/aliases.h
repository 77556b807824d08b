/*
 * aliases.h - aliases(5) files: parsing ("name: target, target, ..." with
 * '#' comments and continuation lines that start with white space), lookup
 * and recursive expansion of local recipients (depth limit, loop detection;
 * ":include:", "|pipe" and "/file" targets refused unless enabled, or
 * handed back for the caller to refuse one by one).
 *
 * Used by the SMTP role (does a local recipient exist?) and by local
 * delivery (where does it go?).  Pure: no logging, no global state.
 */
#ifndef MSAGATE_ALIASES_H
#define MSAGATE_ALIASES_H

#include <stdbool.h>
#include <stddef.h>

struct aliases;

#define ALIASES_MAX_DEPTH 10

/*
 * aliases_load - read path; NULL with *error (malloc'd "PATH:LINE: msg")
 * on a problem.  A missing file is an error too (the caller decides
 * whether it matters).
 */
struct aliases *aliases_load(const char *path, char **error);
void aliases_free(struct aliases *a);
/* Re-read when path's mtime/size/inode changed; 0 unchanged or reloaded,
 * -1 with *error (the old table is kept). */
int aliases_refresh(struct aliases **a, char **error);

/* The targets of one alias name (compared case-insensitively), or NULL. */
const char *const *aliases_lookup(const struct aliases *a, const char *name,
    size_t *n_targets);

/* What expansion may produce besides addresses. */
struct aliases_policy {
	bool allow_include;      /* ":include:/path" */
	bool allow_pipe;         /* "|command" */
	bool allow_file;         /* "/path/to/file" */
	/*
	 * false: a target kind that is not allowed fails the whole expansion;
	 * true: it is returned as it is (kind ALIAS_COMMAND, ALIAS_FILE or
	 * ALIAS_INCLUDE) so that the caller can refuse just that target.
	 */
	bool keep_refused;
	const char *const *local_domains;  /* bare names and these domains are local */
	size_t n_local_domains;
	const char *recipient_delimiter;   /* "+" or "" */
};

/* What one expansion result is. */
enum alias_kind {
	ALIAS_ADDRESS,           /* a mail address (or bare local name) */
	ALIAS_COMMAND,           /* "|command" */
	ALIAS_FILE,              /* "/path" */
	ALIAS_INCLUDE            /* ":include:/path" not read (keep_refused only) */
};

/*
 * aliases_expand - expand one recipient address.  Local addresses whose
 * local part (without +tag) is an alias are replaced by its targets,
 * recursively; everything else is returned as it is.  The result is a
 * malloc'd array of malloc'd strings (deduplicated) and, when kinds is not
 * NULL, a malloc'd array of their kinds.  Only a target of the aliases (or
 * include) files is ever a command, file or include, never the address
 * being expanded.  Returns 0, -2 with *error for what no retry can mend
 * (an alias loop, nesting too deep), or -1 with *error (refused target kind
 * without keep_refused, unreadable or unsafe include file).
 *
 * Include files are read when allowed: the aliases' target syntax (comma
 * or newline separated, '#' comment lines), at most ALIASES_MAX_DEPTH
 * levels with aliases, an include loop is an error, and so is a file (or
 * its directory, unless sticky) that group or others may write.
 */
int aliases_expand(const struct aliases *a, const struct aliases_policy *pol,
    const char *address, char ***out, enum alias_kind **kinds, size_t *n_out,
    char **error);
void aliases_free_list(char **list, size_t n);

/* The kind a target string of an aliases file stands for. */
enum alias_kind aliases_target_kind(const char *target);

#endif
