/*
 * test-qspare.c - the pool of recycled queue files (src/qspare.c): a put
 * moves a file into incoming/ as a spare (a small one keeps its content,
 * a large one or one of unknown size is emptied), a take renames a spare
 * to a new name - the oldest, and only once a sync of queue/ that started
 * after its put is done - the pool never holds more than its size (also
 * with a take that gives its spare back), a name that exists is never
 * replaced, an idle pool is noticed, and a clean stop unlinks what is left.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"
#include "../../src/qspare.h"

/* one fsync of queue/ (as the commit does it) */
static void
synced(struct qspare *sp)
{
	qspare_sync_start(sp);
	qspare_sync_done(sp);
}

static char tmpdir[] = "/tmp/test-qspare.XXXXXX";
static int in_dfd, q_dfd;

static void
write_file(int dfd, const char *name, const char *text)
{
	int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		printf("# cannot write %s: %s\n", name, strerror(errno));
	if (fd >= 0)
		close(fd);
}

/* size of dfd/name, or -1 if it is not there */
static long long
file_size(int dfd, const char *name)
{
	struct stat st;

	return fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 ?
	    (long long)st.st_size : -1;
}

static int
count_spares(void)
{
	DIR *d;
	struct dirent *de;
	int n = 0, fd = dup(in_dfd);

	if (fd < 0 || (d = fdopendir(fd)) == NULL)
		return -1;
	rewinddir(d);            /* the dup shares in_dfd's offset */
	while ((de = readdir(d)) != NULL)
		if (qspare_is_spare(de->d_name))
			n++;
	closedir(d);
	return n;
}

int
main(void)
{
	struct qspare *sp;
	char path[256], name[32];
	struct stat st;
	ino_t ino;
	int i;

	if (mkdtemp(tmpdir) == NULL)
		return 1;
	snprintf(path, sizeof(path), "%s/incoming", tmpdir);
	mkdir(path, 0700);
	in_dfd = open(path, O_RDONLY | O_DIRECTORY);
	snprintf(path, sizeof(path), "%s/queue", tmpdir);
	mkdir(path, 0700);
	q_dfd = open(path, O_RDONLY | O_DIRECTORY);

	sp = qspare_new(in_dfd, 3);
	ok(qspare_take(sp, "NEW1") < 0 && errno == ENOENT, "an empty pool has nothing to give");

	qspare_sync_start(sp);       /* a sync of queue/ already running at the put */
	/* put: out of queue/, into incoming/, emptied (size not known) */
	write_file(q_dfd, "MSG1", "MSAGATE-QUEUE 1\nid=MSG1\n\na delivered message\n");
	fstatat(q_dfd, "MSG1", &st, 0);
	ino = st.st_ino;
	is_int(qspare_put(sp, q_dfd, "MSG1", -1), 0, "a delivered file is taken");
	is_int(file_size(q_dfd, "MSG1"), -1, "it is no longer in queue/");
	is_int(count_spares(), 1, "it is a spare in incoming/");
	is_int((long long)qspare_count(sp), 1, "the pool counts it");
	ok(qspare_put(sp, q_dfd, "GONE", 10) < 0 && errno == ENOENT,
	    "a name that is gone: ENOENT (deleted meanwhile)");
	is_int((long long)qspare_count(sp), 1, "and the pool is unchanged");

	/* not handed out before a sync of queue/ that started after the put */
	ok(qspare_take(sp, "NEW1") < 0 && errno == ENOENT, "not before a sync of queue/");
	qspare_sync_done(sp);        /* the one running at the put does not count */
	ok(qspare_take(sp, "NEW1") < 0 && errno == ENOENT,
	    "nor after one that started before the put");
	synced(sp);

	/* take: renamed to the new name, empty, the same inode */
	is_int(qspare_take(sp, "NEW1"), 0, "a take renames the spare after the next sync");
	ok(fstatat(in_dfd, "NEW1", &st, 0) == 0 && st.st_ino == ino,
	    "incoming/NEW1 is the delivered message's file");
	is_int((long long)st.st_size, 0, "and it is empty: nothing of the old message");
	is_int(count_spares(), 0, "no spare left");

	/* a small file keeps its blocks (and content) for the next message */
	write_file(q_dfd, "SMALL", "0123456789");
	is_int(qspare_put(sp, q_dfd, "SMALL", 10), 0, "a small delivered file is taken");
	synced(sp);
	is_int(qspare_take(sp, "NEW2"), 0, "and given out again");
	is_int(file_size(in_dfd, "NEW2"), 10, "with its 10 bytes: the writer cuts it (qspare.h)");
	unlinkat(in_dfd, "NEW2", 0);

	/* one over QSPARE_KEEP_MAX is emptied */
	{
		static char big[QSPARE_KEEP_MAX + 2];

		memset(big, 'b', sizeof(big) - 1);
		write_file(q_dfd, "BIG", big);
	}
	is_int(file_size(q_dfd, "BIG"), QSPARE_KEEP_MAX + 1, "a file one byte over the limit");
	is_int(qspare_put(sp, q_dfd, "BIG", QSPARE_KEEP_MAX + 1), 0, "is taken");
	synced(sp);
	is_int(qspare_take(sp, "NEW3"), 0, "and given out again");
	is_int(file_size(in_dfd, "NEW3"), 0, "empty");
	unlinkat(in_dfd, "NEW3", 0);

	/* a take never replaces an existing name; the spare stays in the pool */
	write_file(q_dfd, "MSG2", "old");
	qspare_put(sp, q_dfd, "MSG2", 3);
	synced(sp);
	write_file(in_dfd, "TAKEN", "someone else's file");
	ok(qspare_take(sp, "TAKEN") < 0 && errno == EEXIST, "a take onto an existing name: EEXIST");
	is_int(file_size(in_dfd, "TAKEN"), 19, "the existing file is untouched");
	is_int((long long)qspare_count(sp), 1, "the spare is kept for the next take");

	/* the pool is bounded: past its size the caller unlinks as before */
	for (i = 0; i < 3; i++) {
		snprintf(name, sizeof(name), "FILL%d", i);
		write_file(q_dfd, name, "x");
	}
	is_int(qspare_put(sp, q_dfd, "FILL0", 1), 0, "second spare");
	is_int(qspare_put(sp, q_dfd, "FILL1", 1), 0, "third spare");
	is_int(qspare_put(sp, q_dfd, "FILL2", 1), 1, "a full pool refuses (1)");
	is_int(file_size(q_dfd, "FILL2"), 1, "and leaves the file where it was");
	is_int((long long)qspare_count(sp), 3, "3 spares, the pool's size");
	is_int(count_spares(), 3, "3 spare files in incoming/");

	/* a take that gives its spare back does not overfill the pool */
	ok(qspare_take(sp, "TAKEN") < 0 && errno == EEXIST, "a take that fails on a full pool");
	is_int((long long)qspare_count(sp), 3, "gives its spare back: still 3");
	is_int(count_spares(), 3, "still 3 spare files");

	/* oldest first; an idle pool */
	(void)qspare_idle(sp);       /* sets the mark for the checks below */
	synced(sp);
	is_int(qspare_take(sp, "OLDEST"), 0, "a take ...");
	ok(fstatat(in_dfd, "OLDEST", &st, 0) == 0 && st.st_size == 3,
	    "... gets the oldest spare (MSG2's 3 bytes)");
	unlinkat(in_dfd, "OLDEST", 0);
	ok(!qspare_idle(sp), "a pool taken from is not idle");
	ok(qspare_idle(sp), "one nobody took from since the last check is");

	qspare_clear(sp);
	is_int((long long)qspare_count(sp), 0, "a clean stop empties the pool");
	ok(!qspare_idle(sp), "an empty pool is not idle (nothing to clear)");
	is_int(count_spares(), 0, "and unlinks the spare files");
	ok(qspare_is_spare("spare.12") && !qspare_is_spare("6B04D7A156DEE09F"),
	    "spare names are not queue ids");
	qspare_free(sp);

	snprintf(path, sizeof(path), "rm -rf %s", tmpdir);
	if (system(path) != 0)
		printf("# cannot remove %s\n", tmpdir);
	return done_testing();
}
