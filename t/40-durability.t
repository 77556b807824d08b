#!/usr/bin/env python3
# 40-durability.t - an acknowledged message survives kill -9 of every
# msagate process and a restart; msagatectl queue list/show/delete see it;
# a full disk answers 452 4.3.1 and leaves nothing half-written.
import os, signal, subprocess, sys, threading, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from msagatetest import *

d = Daemon()
alice, apw = "alice@example.test", d.users["alice@example.test"]

# role processes: network-facing code must not run as root
pids = d.pids()
ok(len(pids) >= 4, "parent plus queue, auth and smtp roles are running", pids)
if os.geteuid() == 0:
    uids = {}
    for p in pids:
        if p == d.proc.pid:
            continue
        with open("/proc/%d/status" % p) as f:
            uids[p] = [l for l in f if l.startswith("Uid:")][0].split()[1:]
    ok(uids and all(u != "0" for us in uids.values() for u in us),
       "started as root, every role runs without root (real, effective, saved uid)", uids)

# send N messages on parallel sessions, recording each acknowledged id
acked, lock = [], threading.Lock()


def sender(k):
    s = d.smtp()
    s.login(alice, apw)
    for i in range(5):
        s.cmd("MAIL FROM:<%s>" % alice)
        s.cmd("RCPT TO:<r%d-%d@example.org>" % (k, i))
        s.cmd("DATA")
        r = s.cmd("Subject: durable %d-%d\r\n\r\nbody %d-%d\r\n." % (k, i, k, i))
        q = queued_id(r)
        if q:
            with lock:
                acked.append(q)
    s.close()


ts = [threading.Thread(target=sender, args=(k,)) for k in range(4)]
[t.start() for t in ts]
[t.join() for t in ts]
is_(len(acked), 20, "20 messages acknowledged on 4 parallel sessions")
killed = d.kill9_all()
ok(len(killed) >= 4, "kill -9 of every msagate process")
files = set(d.queue_files())
ok(all(q in files for q in acked), "every acknowledged message is in the queue after kill -9",
   sorted(set(acked) - files))

# restart on the same state: the queue is intact and listed
d.start()
r = d.ctl("queue", "list")
is_(r.returncode, 0, "queue list after restart exits 0")
ok(all(q in r.stdout for q in acked), "queue list shows every acknowledged message", r.stdout[-2000:])
q = acked[0]
r = d.ctl("queue", "show", q)
is_(r.returncode, 0, "queue show ID exits 0")
like(r.stdout, r"Subject: durable", "queue show prints the headers")
like(r.stdout, r"alice@example\.test", "queue show prints the envelope sender")
r = d.ctl("queue", "show", "0123456789ABCDEF")
is_(r.returncode, 1, "queue show of an unknown id exits 1")
r = d.ctl("queue", "delete", q)
is_(r.returncode, 0, "queue delete ID exits 0")
ok(q not in d.queue_files(), "deleted message is gone")
r = d.ctl("queue", "delete", q)
is_(r.returncode, 1, "deleting it again exits 1")

# a crash while a message is being written leaves no acknowledged message
# behind and the leftover is cleaned at start-up
s = d.smtp()
s.login(alice, apw)
s.cmd("MAIL FROM:<%s>" % alice)
s.cmd("RCPT TO:<partial@example.org>")
like(s.cmd("DATA"), r"^354", "DATA started")
s.send("Subject: partial\r\n\r\nhalf a message\r\n")
time.sleep(0.3)
ok(len(d.incoming_files(empty=True)) >= 1, "an incoming file exists while DATA is in progress",
   d.incoming_files(empty=True))
before = set(d.queue_files())
d.kill9_all()
s.close()
d.start()
ok(d.wait_log(r"removed|leftover|stale", 5) or d.incoming_files() == [], "restart cleans incoming/")
is_(d.incoming_files(empty=True), [], "incoming/ empty after restart")
is_(set(d.queue_files()), before, "the unacknowledged message was not queued")

# disk full: 452 4.3.1 and nothing half-written (root only: needs a small tmpfs)
if os.geteuid() == 0:
    d.stop()
    qdir = d.state_dir
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", qdir], check=True)
    try:
        import pwd
        pw = pwd.getpwnam(d.user)
        os.chown(qdir, pw.pw_uid, pw.pw_gid)
        d.start()
        s = d.smtp()
        s.login(alice, apw)
        s.cmd("MAIL FROM:<%s>" % alice)
        s.cmd("RCPT TO:<full@example.org>")
        s.cmd("DATA")
        s.send(b"Subject: too big for the disk\r\n\r\n" + (b"y" * 998 + b"\r\n") * 600 + b".\r\n")
        like(s.reply(), r"^452 4\.3\.1", "disk full: 452 4.3.1")
        s.close()
        is_(d.queue_files(), [], "disk full: nothing in queue/")
        time.sleep(0.3)
        is_(d.incoming_files(), [], "disk full: nothing left in incoming/")
        s = d.smtp()
        s.login(alice, apw)
        s.cmd("MAIL FROM:<%s>" % alice)
        s.cmd("RCPT TO:<small@example.org>")
        s.cmd("DATA")
        like(s.cmd("Subject: small\r\n\r\nfits\r\n."), r"^250 2\.0\.0", "a small message still fits afterwards")
        s.close()
        d.stop()
    finally:
        subprocess.run(["umount", "-l", qdir])
else:
    diag("not root: skipping the disk-full test (needs a tmpfs mount)")
d.stop()
done()
