#!/usr/bin/env python3
# 41-queue-sync.t - both ways of making a batch durable (queue_sync =
# "filesystem", the default, and "file") acknowledge every message of
# parallel pipelining sessions, use the system call they name (seen with
# strace), and lose nothing to a kill -9 right after the 250s.
import os, re, shutil, subprocess, sys, threading, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from msagatetest import *


def burst(d, sessions=6, per=8):
    """Send sessions x per messages on parallel sessions; return the ids."""
    acked, lock = [], threading.Lock()
    alice, apw = "alice@example.test", d.users["alice@example.test"]

    def sender(k):
        s = d.smtp()
        s.login(alice, apw)
        for i in range(per):
            # the envelope in one write (PIPELINING), so commits come together
            s.send("MAIL FROM:<%s>\r\nRCPT TO:<r%d-%d@example.org>\r\nDATA\r\n" % (alice, k, i))
            s.reply(); s.reply(); s.reply()
            r = s.cmd("Subject: sync %d-%d\r\n\r\nbody\r\n." % (k, i))
            q = queued_id(r)
            if q:
                with lock:
                    acked.append(q)
        s.close()

    ts = [threading.Thread(target=sender, args=(k,)) for k in range(sessions)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    return acked


for mode in ("filesystem", "file"):
    d = Daemon(extra_conf='queue_sync = "%s";' % mode)
    m = re.search(r"msagated/queue\[(\d+)\]", d.read_log())
    st = None
    if have("strace") and m:
        out = os.path.join(d.dir, "strace.out")
        st = subprocess.Popen(["strace", "-f", "-qq", "-e", "trace=syncfs,fdatasync",
                               "-o", out, "-p", m.group(1)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
    acked = burst(d)
    is_(len(acked), 48, "queue_sync = %s: 48 messages acknowledged on 6 parallel sessions" % mode)
    if st:
        st.terminate()
        st.wait()
        text = open(out).read()
        n_syncfs = len(re.findall(r"syncfs\(", text))
        n_fdatasync = len(re.findall(r"fdatasync\(", text))
        if mode == "filesystem":
            ok(n_syncfs >= 1 and n_syncfs < 48,
               "filesystem: batches made durable with syncfs (%d calls for 48 messages)" % n_syncfs, text[-800:])
        else:
            ok(n_syncfs == 0 and n_fdatasync >= 48,
               "file: one fdatasync per message (%d), no syncfs" % n_fdatasync, text[-800:])
    else:
        ok(True, "# SKIP strace not available to watch the system calls")
    killed = d.kill9_all()
    ok(len(killed) >= 4, "queue_sync = %s: kill -9 of every process right after" % mode)
    files = set(d.queue_files())
    ok(acked and all(q in files for q in acked),
       "queue_sync = %s: every acknowledged message is in queue/" % mode,
       sorted(set(acked) - files))
    d.cleanup()

done()
