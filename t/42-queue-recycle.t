#!/usr/bin/env python3
# 42-queue-recycle.t - a delivered message's queue file is kept in
# incoming/ as a spare ("spare.N"; emptied when over 64 KiB), and a later
# message is written into it: nothing of the old message reaches the new
# one, which ends where it ends, and `msagatectl queue` shows the right
# messages.  A recycled file opened ahead of DATA and never written is not
# counted as an unfinished message.  Spares are removed at a
# clean stop and after a kill -9 at start-up.  A queue file name a crash
# brought back (empty, or holding another message) is removed, not
# delivered.  The queue role's delivery threads run at a lower priority
# (nice 10) than its loop and commit thread.
import os, re, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from msagatetest import *

d = Daemon(start=False)
mail = d.deliver_to_maildirs()
d.start()
box = os.path.join(mail, "example.test", "bob", "Maildir")
incoming = os.path.join(d.state_dir, "incoming")


def spares():
    """name -> (inode, size) of the spares in incoming/"""
    out = {}
    for n in d.incoming_files(empty=True):
        if n.startswith("spare."):
            try:
                st = os.stat(os.path.join(incoming, n))
                out[n] = (st.st_ino, st.st_size)
            except OSError:
                pass
    return out


# --- a delivered message's file becomes a spare (up to 64 KiB: as it is)
first = "".join("FIRSTMSG line %05d of the first message\r\n" % i for i in range(600))
send_mail(d, ["bob@example.test"], "first", body=first)
ok(wait_for(lambda: len(maildir_msgs(box)) == 1 and d.queue_files() == []),
   "the first message is delivered and leaves queue/", d.read_log()[-3000:])
sp = spares()
is_(len(sp), 1, "its file is kept in incoming/ as one spare", sp)
ok(all(20000 < size <= 65536 for _, size in sp.values()),
   "a spare of up to 64 KiB keeps its blocks (the writer of the next message cuts it)", sp)
spare_inodes = {ino for ino, _ in sp.values()}
ok(d.wait_log(r"[0-9A-F]{16}: removed"), "the message is logged as removed as before")

# --- new messages are written into it; foreign recipients stay in queue/
# (no relayhost, MX lookups off), so their files can be looked at
ids = []
for i in range(3):
    r = d.smtp()
    r.login("alice@example.test", d.users["alice@example.test"])
    is_(r.code("MAIL FROM:<alice@example.test>"), "250", "MAIL %d" % i)
    is_(r.code("RCPT TO:<someone@elsewhere.example>"), "250", "RCPT (relayed) %d" % i)
    is_(r.code("DATA"), "354", "DATA %d" % i)
    r.send(message("reuse %d" % i, body="short body %d\r\nbye\r\n" % i).encode() + b".\r\n")
    text = r.reply()
    is_(text[:3], "250", "message %d queued" % i, text)
    ids.append(queued_id(text))
    r.cmd("QUIT")
    r.close()
ok(wait_for(lambda: sorted(d.queue_files()) == sorted(ids)), "the three messages are in queue/",
   d.queue_files())
inodes = {}
for qid in ids:
    inodes[qid] = os.stat(os.path.join(d.state_dir, "queue", qid)).st_ino
ok(spare_inodes & set(inodes.values()),
   "the spare's file holds one of the new messages (no inode created for it)",
   (spare_inodes, inodes))
for i, qid in enumerate(ids):
    data = d.queue_file(qid)
    ok(b"FIRSTMSG" not in data, "%s: nothing of the delivered message in it" % qid)
    ok(data.startswith(b"MSAGATE-QUEUE 1\n") and (b"\nid=%s\n" % qid.encode()) in data,
       "%s: its own header" % qid, data[:200])
    ok(data.endswith(b"short body %d\r\nbye\r\n" % i), "%s: ends where its message ends" % qid,
       data[-80:])
out = d.ctl("queue", "list")
is_(out.returncode, 0, "msagatectl queue list", out.stderr)
ok(all(qid in out.stdout for qid in ids) and "FIRSTMSG" not in out.stdout,
   "it lists the three messages", out.stdout)

# --- a message over 64 KiB leaves an empty spare
big = "".join("BIGMSG line %05d of a long message, over 64 KiB\r\n" % i for i in range(2000))
send_mail(d, ["bob@example.test"], "big", body=big)
ok(wait_for(lambda: len(maildir_msgs(box)) == 2 and len(spares()) == 1),
   "the big message is delivered and leaves a spare", spares())
ok(all(size == 0 for _, size in spares().values()), "that spare is empty", spares())

# --- a recycled file opened ahead of DATA and never written is not an
# unfinished message.  The SMTP role keeps a few queue files opened ahead;
# the one it asks for while a non-empty spare waits is that spare.  Then
# its connection to the queue role is cut (kill -9) while it holds them.
send_mail(d, ["bob@example.test"], "small", body="small\r\n")
ok(wait_for(lambda: len(maildir_msgs(box)) == 3 and any(size > 0 for _, size in spares().values())),
   "a small delivered message leaves a non-empty spare", spares())
spare_inodes = {ino for ino, size in spares().values() if size > 0}
# the first commit after the delivery makes its spare usable (its name is
# durably out of queue/); the next message's DATA opens a file ahead
send_mail(d, ["bob@example.test"], "refill 1", body="refill\r\n")
send_mail(d, ["bob@example.test"], "refill 2", body="refill\r\n")
ok(wait_for(lambda: len(maildir_msgs(box)) == 5), "two more messages (files opened ahead in their place)")
ahead = {}
for n in d.incoming_files(empty=True):
    if not n.startswith("spare."):
        try:
            ahead[n] = os.stat(os.path.join(incoming, n)).st_ino
        except OSError:
            pass
ok(spare_inodes & set(ahead.values()), "the non-empty spare is now a file opened ahead",
   (spare_inodes, ahead))
mark = len(d.read_log())
smtp_pid = [int(p) for p in re.findall(r"msagated/smtp\[(\d+)\]", d.read_log())[-1:]
            if int(p) in d.pids()]
ok(len(smtp_pid) == 1, "the smtp role's pid (from the log)", smtp_pid)

def incoming_fd_modes(pid):
    """open(2) access modes of pid's descriptors for files in incoming/"""
    modes = []
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            if os.path.dirname(target) != os.path.realpath(incoming):
                continue
            with open("/proc/%d/fdinfo/%s" % (pid, fd)) as f:
                flags = int(re.search(r"^flags:\s+(\d+)", f.read(), re.M).group(1), 8)
            modes.append(flags & 3)
        except (OSError, AttributeError):
            pass
    return modes


if smtp_pid:
    modes = incoming_fd_modes(smtp_pid[0])
    ok(modes and all(m == os.O_WRONLY for m in modes),
       "the smtp role holds its queue files write-only (it cannot read what a recycled one held)",
       modes)
    os.kill(smtp_pid[0], 9)
ok(wait_for(lambda: re.search(r"queue: connection \d+ closed with \d+ empty file",
                              d.read_log()[mark:]) is not None),
   "the queue role removes the files it had handed out", d.read_log()[mark:][-2000:])
ok(not re.search(r"unfinished file", d.read_log()[mark:]),
   "the never-written recycled file is not called unfinished", d.read_log()[mark:][-2000:])
ok(wait_for(lambda: d.ready()), "the smtp role is back")

# --- a clean stop removes the spares; so does a start after kill -9
send_mail(d, ["bob@example.test"], "second")
ok(wait_for(lambda: len(maildir_msgs(box)) == 6 and len(spares()) >= 1),
   "another delivery leaves a spare", spares())
d.stop()
is_(spares(), {}, "no spare left in incoming/ after a clean stop")
d.start()
send_mail(d, ["bob@example.test"], "third")
ok(wait_for(lambda: len(maildir_msgs(box)) == 7 and len(spares()) >= 1),
   "a delivery after the restart leaves a spare", spares())
before = set(spares())
d.kill9_all()
ok(before and set(spares()) == before, "kill -9 leaves the spares behind", spares())
d.start()
ok(not (set(spares()) & before), "the start-up removes them", spares())
is_(sorted(d.queue_files()), sorted(ids), "the queued messages are untouched")

# --- a name a crash brought back: on ext4 without a journal a power loss
# can keep queue/ID of a delivered message whose file was then reused.
# Such a file is empty or holds another message: only the name goes.
d.stop()
qdir = os.path.join(d.state_dir, "queue")
stale_empty, stale_other = "6B0000000000E001", "6B0000000000E002"
open(os.path.join(qdir, stale_empty), "wb").close()
with open(os.path.join(qdir, stale_other), "wb") as f:
    f.write(d.queue_file(ids[0]))           # header says id=ids[0]
for n in (stale_empty, stale_other):
    chown_run_user(os.path.join(qdir, n), d.user)
d.start()
ok(wait_for(lambda: stale_empty not in d.queue_files() and stale_other not in d.queue_files()),
   "the stale names are removed", d.queue_files())
like(d.read_log(), r"%s: the queue file is empty \(a name left by a crash\); name removed" % stale_empty,
     "the empty one is logged")
like(d.read_log(), r"%s: the queue file holds message %s \(a name left by a crash\); name removed"
     % (stale_other, ids[0]), "the one holding another message is logged")
is_(sorted(d.queue_files()), sorted(ids), "the messages under their own names stay")
ok(not re.search(r"%s: to=" % stale_other, d.read_log()), "nothing was delivered under the stale name")

# --- priorities of the queue role's threads (Linux: per-thread nice)
def threads(pid):
    out = []
    try:
        for t in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/comm" % (pid, t)) as f:
                comm = f.read().strip()
            with open("/proc/%d/task/%s/stat" % (pid, t)) as f:
                nice = int(f.read().rsplit(")", 1)[1].split()[16])
            out.append((comm, nice))
    except OSError:
        pass
    return out


qthreads = []
for p in d.pids():
    th = threads(p)
    if any(c == "queue-commit" for c, _ in th):
        qthreads = th
ok(qthreads, "the queue role's commit thread is named queue-commit", [threads(p) for p in d.pids()])
deliver = [n for c, n in qthreads if c == "queue-deliver"]
ok(len(deliver) >= 1 and all(n == 10 for n in deliver), "delivery threads run at nice 10", qthreads)
ok(all(n == 0 for c, n in qthreads if c != "queue-deliver"),
   "the loop and the commit thread at nice 0", qthreads)

d.stop()
done()
