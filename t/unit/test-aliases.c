/*
 * test-aliases.c - unit tests of src/aliases.c: the aliases(5) parser
 * (comments, continuation lines, quotes, bounds, errors with FILE:LINE),
 * lookup (case-insensitive), expansion (nesting, depth limit, loops,
 * self-reference, recipient delimiter, refused target kinds - as errors
 * or handed back with keep_refused -, result kinds, :include: with
 * comments, loops, nesting and unsafe permissions, deduplication) and
 * refresh.
 */
#include <sys/stat.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aliases.h"
#include "tap.h"

static char dir[] = "/tmp/msagate-aliases-XXXXXX";

static const char *
write_file(const char *name, const char *text)
{
	static char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
	return path;
}

/* Load text; NULL and the error in *err when it fails. */
static struct aliases *
load(const char *text, char **err)
{
	return aliases_load(write_file("aliases", text), err);
}

/* The kinds of the last expansion, one letter each (A C F I). */
static char last_kinds[64];

/* Expansion as one comma-separated string, or "ERR: ..." */
static const char *
expand(const struct aliases *a, const struct aliases_policy *p, const char *addr)
{
	static char out[2048];
	char **list, *err;
	enum alias_kind *kinds;
	size_t n, o = 0;

	last_kinds[0] = '\0';
	if (aliases_expand(a, p, addr, &list, &kinds, &n, &err) != 0) {
		snprintf(out, sizeof(out), "ERR: %s", err);
		free(err);
		return out;
	}
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		o += (size_t)snprintf(out + o, sizeof(out) - o, "%s%s", i ? "," : "", list[i]);
		if (i + 1 < sizeof(last_kinds)) {
			last_kinds[i] = "ACFI"[kinds[i]];
			last_kinds[i + 1] = '\0';
		}
	}
	aliases_free_list(list, n);
	free(kinds);
	return out;
}

int
main(void)
{
	static const char *const locals[] = { "example.test", "local.test" };
	struct aliases_policy pol = {
		.local_domains = locals, .n_local_domains = 2,
		.recipient_delimiter = "+",
	};
	struct aliases *a;
	const char *const *t;
	char *err = NULL, big[20000], inc[300];
	size_t n;

	if (mkdtemp(dir) == NULL)
		return 2;
	a = load("# comment\n"
	         "postmaster: root\n"
	         "root: alice@example.test\n"
	         "\n"
	         "Info : alice, bob@example.test,\n"
	         "\tcarol@foreign.test\n"
	         "  # a comment inside an entry\n"
	         "  , dave\n"
	         "\"quoted name\": alice\n"
	         "pipe: \"|/usr/bin/prog --arg, with comma\"\n"
	         "file: /var/log/mail-copy\n"
	         "inc: :include:" "/nonexistent\n"
	         "self: self, self@elsewhere.test\n"
	         "loopa: loopb\n"
	         "loopb: loopc\n"
	         "loopc: loopa\n"
	         "d1: d2\nd2: d3\nd3: d4\nd4: d5\nd5: d6\nd6: d7\nd7: d8\nd8: d9\n"
	         "d9: d10\nd10: d11\nd11: d12\nd12: end\n"
	         "e1: e2\ne2: e3\ne3: end\n"
	         "dup1: alice, ALICE@example.test, alice\n"
	         "sales: info, alice\n", &err);
	ok(a != NULL, "load: %s", err ? err : "ok");
	free(err);
	err = NULL;

	t = aliases_lookup(a, "INFO", &n);
	ok(t != NULL && n == 4, "lookup is case-insensitive, continuation lines joined (%zu)", n);
	if (t && n == 4) {
		is_str(t[0], "alice", "target 1");
		is_str(t[2], "carol@foreign.test", "target 3 (continuation)");
		is_str(t[3], "dave", "target 4 after a comment line");
	}
	ok(aliases_lookup(a, "quoted name", &n) != NULL, "quoted name");
	t = aliases_lookup(a, "pipe", &n);
	ok(t && n == 1 && strcmp(t[0], "|/usr/bin/prog --arg, with comma") == 0,
	   "quoted target keeps its comma");
	ok(aliases_lookup(a, "nobody", &n) == NULL && n == 0, "unknown name");
	ok(aliases_lookup(a, "", &n) == NULL, "empty name");

	is_str(expand(a, &pol, "postmaster@example.test"), "alice@example.test",
	       "nested: postmaster -> root -> alice");
	is_str(expand(a, &pol, "Postmaster@EXAMPLE.TEST"), "alice@example.test",
	       "case-insensitive name and domain");
	is_str(expand(a, &pol, "postmaster"), "alice@example.test", "bare name");
	is_str(expand(a, &pol, "info@local.test"),
	       "alice@local.test,bob@example.test,carol@foreign.test,dave@local.test",
	       "bare targets take the domain expanded");
	is_str(expand(a, &pol, "info+tag@example.test"),
	       "alice@example.test,bob@example.test,carol@foreign.test,dave@example.test",
	       "user+tag expands alias user");
	is_str(expand(a, &pol, "info@foreign.test"), "info@foreign.test",
	       "foreign addresses are not expanded");
	is_str(expand(a, &pol, "nobody+x@example.test"), "nobody+x@example.test",
	       "non-aliases come back as they are");
	is_str(expand(a, &pol, "sales@example.test"),
	       "alice@example.test,bob@example.test,carol@foreign.test,dave@example.test",
	       "deduplicated");
	is_str(expand(a, &pol, "dup1@example.test"), "alice@example.test",
	       "duplicates removed case-insensitively");
	is_str(expand(a, &pol, "self@example.test"), "self@example.test,self@elsewhere.test",
	       "self-reference is the mailbox");
	ok(strncmp(expand(a, &pol, "loopa@example.test"), "ERR: alias loop", 15) == 0,
	   "loop detected: %s", expand(a, &pol, "loopa@example.test"));
	ok(strncmp(expand(a, &pol, "d1@example.test"), "ERR: aliases nested too deeply", 30) == 0,
	   "depth limit: %s", expand(a, &pol, "d1@example.test"));
	is_str(expand(a, &pol, "e1@example.test"), "end@example.test", "shallow nesting fine");
	ok(strncmp(expand(a, &pol, "pipe@example.test"), "ERR: pipe", 9) == 0,
	   "pipes refused by default");
	ok(strncmp(expand(a, &pol, "file@example.test"), "ERR: file", 9) == 0,
	   "files refused by default");
	ok(strncmp(expand(a, &pol, "inc@example.test"), "ERR: \":include:\"", 16) == 0,
	   "include refused by default");
	/* keep_refused: the refused targets come back, with their kinds */
	pol.keep_refused = true;
	is_str(expand(a, &pol, "pipe@example.test"), "|/usr/bin/prog --arg, with comma",
	       "keep_refused: the refused pipe is returned");
	is_str(last_kinds, "C", "... as a command");
	is_str(expand(a, &pol, "file@example.test"), "/var/log/mail-copy",
	       "keep_refused: the refused file is returned");
	is_str(last_kinds, "F", "... as a file");
	is_str(expand(a, &pol, "inc@example.test"), ":include:/nonexistent",
	       "keep_refused: the include is returned, not read");
	is_str(last_kinds, "I", "... as an include");
	is_str(expand(a, &pol, "info@example.test"),
	       "alice@example.test,bob@example.test,carol@foreign.test,dave@example.test",
	       "addresses unchanged with keep_refused");
	is_str(last_kinds, "AAAA", "... all addresses");
	ok(strncmp(expand(a, &pol, "loopa@example.test"), "ERR: alias loop", 15) == 0,
	   "a loop is still an error with keep_refused");
	pol.keep_refused = false;
	is_str(expand(a, &pol, "|cmd@example.test"), "|cmd@example.test",
	       "an envelope address that looks like a pipe is an address");
	is_str(last_kinds, "A", "... of kind address");
	is_int(aliases_target_kind(":INCLUDE:/x"), ALIAS_INCLUDE, "kind: include");
	is_int(aliases_target_kind("|x"), ALIAS_COMMAND, "kind: command");
	is_int(aliases_target_kind("/x"), ALIAS_FILE, "kind: file");
	is_int(aliases_target_kind("x@y"), ALIAS_ADDRESS, "kind: address");
	pol.allow_pipe = pol.allow_file = true;
	is_str(expand(a, &pol, "pipe@example.test"), "|/usr/bin/prog --arg, with comma",
	       "pipes when allowed");
	is_str(last_kinds, "C", "... of kind command");
	is_str(expand(a, &pol, "file@example.test"), "/var/log/mail-copy", "files when allowed");
	pol.allow_include = true;
	ok(strncmp(expand(a, &pol, "inc@example.test"), "ERR: /nonexistent", 17) == 0,
	   "missing include file is an error");
	aliases_free(a);

	/* include files */
	snprintf(inc, sizeof(inc), "%s", write_file("inc", "alice\nbob@foreign.test, carol\n"));
	{
		char text[400];

		snprintf(text, sizeof(text), "list: :include:%s\n", inc);
		a = load(text, &err);
		ok(a != NULL, "load with include");
		is_str(expand(a, &pol, "list@example.test"),
		       "alice@example.test,bob@foreign.test,carol@example.test", "include expanded");
		aliases_free(a);
	}
	{
		char text[2000], inc2[300], inc3[300], self[300], deep[300], sub[300];

		/* comments, a pipe and a file inside an include */
		snprintf(inc2, sizeof(inc2), "%s", write_file("inc2",
		    "# the list\n\n  alice, \"|/bin/cat\"\n# more\n/tmp/x\n"));
		snprintf(inc3, sizeof(inc3), "%s", write_file("inc3", "bob\n"));
		chmod(inc3, 0664);
		snprintf(self, sizeof(self), "%s/self", dir);
		snprintf(text, sizeof(text), ":include:%s\n", self);
		write_file("self", text);
		snprintf(deep, sizeof(deep), "%s", write_file("deep", "d1\n"));
		snprintf(sub, sizeof(sub), "%s/sub", dir);
		mkdir(sub, 0777);
		chmod(sub, 0777);
		snprintf(text, sizeof(text), "%s/sub/inc4", dir);
		{
			FILE *f = fopen(text, "w");

			if (f != NULL) {
				fputs("carol\n", f);
				fclose(f);
			}
		}
		snprintf(text, sizeof(text),
		    "l2: :include:%s\nl3: :include:%s\nl4: :include:%s\n"
		    "l5: :include:%s\nl6: :include:%s/sub/inc4\n"
		    "l7: :include:relative\n"
		    "d1: d2\nd2: d3\nd3: d4\nd4: d5\nd5: d6\nd6: d7\nd7: d8\nd8: d9\n"
		    "d9: end\n", inc2, inc3, self, deep, dir);
		a = load(text, &err);
		ok(a != NULL, "load with more includes: %s", err ? err : "ok");
		pol.allow_pipe = pol.allow_file = true;
		is_str(expand(a, &pol, "l2@example.test"), "alice@example.test,|/bin/cat,/tmp/x",
		       "include: comment lines skipped, pipe and file inside");
		is_str(last_kinds, "ACF", "... with their kinds");
		pol.allow_pipe = false;
		pol.keep_refused = true;
		is_str(expand(a, &pol, "l2@example.test"), "alice@example.test,|/bin/cat,/tmp/x",
		       "include: a pipe refused there comes back with keep_refused");
		pol.keep_refused = false;
		ok(strncmp(expand(a, &pol, "l2@example.test"), "ERR: pipe", 9) == 0,
		   "include: a pipe refused there fails the expansion otherwise");
		ok(strstr(expand(a, &pol, "l3@example.test"), "writable by group or others") != NULL,
		   "group-writable include file refused: %s", expand(a, &pol, "l3@example.test"));
		ok(strstr(expand(a, &pol, "l4@example.test"), "include loop") != NULL,
		   "include file including itself: %s", expand(a, &pol, "l4@example.test"));
		ok(strstr(expand(a, &pol, "l5@example.test"), "nested too deeply") != NULL,
		   "include counts as a nesting level: %s", expand(a, &pol, "l5@example.test"));
		ok(strstr(expand(a, &pol, "l6@example.test"), "directory is writable") != NULL,
		   "include in a world-writable directory refused: %s",
		   expand(a, &pol, "l6@example.test"));
		ok(strstr(expand(a, &pol, "l7@example.test"), "absolute path") != NULL,
		   "relative include path refused: %s", expand(a, &pol, "l7@example.test"));
		chmod(sub, 01777);
		is_str(expand(a, &pol, "l6@example.test"), "carol@example.test",
		       "... unless the directory is sticky");
		if (geteuid() == 0) {
			/* a list of another user: its commands would run as alias_user */
			snprintf(text, sizeof(text), "%s/sub/inc4", dir);
			ok(chown(text, 65534, 65534) == 0, "include file given to nobody");
			ok(strstr(expand(a, &pol, "l6@example.test"), "owned by another user") != NULL,
			   "include file of another user than root or us refused: %s",
			   expand(a, &pol, "l6@example.test"));
		}
		aliases_free(a);
		unlink(inc2);
		unlink(inc3);
		unlink(self);
		unlink(deep);
		snprintf(text, sizeof(text), "%s/sub/inc4", dir);
		unlink(text);
		rmdir(sub);
	}

	/* syntax errors, with FILE:LINE */
	a = load("a: b\n  \nno colon here\n", &err);
	ok(a == NULL && err && strstr(err, ":3: missing ':'"), "missing colon: %s", err);
	free(err);
	a = load("  b, c\n", &err);
	ok(a == NULL && err && strstr(err, ":1: continuation"), "leading continuation: %s", err);
	free(err);
	a = load("a:\n", &err);
	ok(a == NULL && err && strstr(err, "without targets"), "empty alias: %s", err);
	free(err);
	a = load("a: b\nA: c\n", &err);
	ok(a == NULL && err && strstr(err, "defined twice"), "duplicate: %s", err);
	free(err);
	a = load("a: \"b\n", &err);
	ok(a == NULL && err && strstr(err, "unterminated"), "unterminated quote: %s", err);
	free(err);
	memset(big, 'x', sizeof(big) - 1);
	big[0] = 'a';
	big[1] = ':';
	big[sizeof(big) - 1] = '\0';
	a = load(big, &err);
	ok(a == NULL && err && strstr(err, "too long"), "line too long: %s", err);
	free(err);
	a = aliases_load("/nonexistent/aliases", &err);
	ok(a == NULL && err != NULL, "missing file is an error: %s", err);
	free(err);

	/* refresh */
	a = load("a: b\n", &err);
	ok(aliases_refresh(&a, &err) == 0, "refresh, unchanged");
	sleep(1);
	write_file("aliases", "a: c\nnew: d\n");
	ok(aliases_refresh(&a, &err) == 0 && aliases_lookup(a, "new", &n) != NULL,
	   "refresh picks up a change");
	write_file("aliases", "broken\n");
	ok(aliases_refresh(&a, &err) == -1 && aliases_lookup(a, "new", &n) != NULL,
	   "a broken file keeps the old table: %s", err);
	free(err);
	aliases_free(a);

	unlink(write_file("aliases", ""));
	unlink(inc);
	rmdir(dir);
	return done_testing();
}
