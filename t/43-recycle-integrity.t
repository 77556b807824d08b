#!/usr/bin/env python3
# 43-recycle-integrity.t - recycled queue files under load and a crash.
# Messages of sizes on both sides of the 64 KiB recycling limit (qspare.h)
# go out on parallel sessions while every msagate process is killed (-9)
# once and started again.  Every message acknowledged with 250 is
# delivered, and every delivered copy is exactly the message sent: nothing
# of an earlier message that used the same file, nothing cut off.
import hashlib, os, random, re, smtplib, sys, threading, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from msagatetest import *

d = Daemon(start=False)
mail = d.deliver_to_maildirs()
d.start()
box = os.path.join(mail, "example.test", "bob", "Maildir")

THREADS, PER_THREAD = 4, 30
rng = random.Random(43)
plans = {}            # marker -> body sent
for k in range(THREADS):
    for i in range(PER_THREAD):
        marker = "M%d-%d-%s" % (k, i, os.urandom(3).hex())
        # sizes from a few lines to ~90 KB; shrinking and growing reuse
        n = rng.choice([1, 3, 40, 300, 1300, 1500, 1800, 2100])
        plans[marker] = "".join("%s line %05d %s\r\n" % (marker, j, os.urandom(8).hex())
                                for j in range(n))

acked, errors, lock = set(), [], threading.Lock()


def sender(k):
    todo = ["M%d-%d-" % (k, i) for i in range(PER_THREAD)]
    todo = [m for p in todo for m in plans if m.startswith(p)]
    deadline = time.time() + 90
    while todo and time.time() < deadline:
        try:
            s = submission_login(d)
            while todo:
                m = todo[0]
                s.sendmail("alice@example.test", ["bob@example.test"],
                           message(m, body=plans[m]).encode())
                with lock:
                    acked.add(m)
                todo.pop(0)
            s.quit()
        except (OSError, smtplib.SMTPException) as e:
            with lock:
                errors.append(repr(e)[:100])
            time.sleep(0.2)


ts = [threading.Thread(target=sender, args=(k,)) for k in range(THREADS)]
[t.start() for t in ts]
ok(wait_for(lambda: len(acked) >= len(plans) // 3, 60), "a third of the messages acknowledged",
   len(acked))
d.kill9_all()
time.sleep(0.3)
d.start()
[t.join() for t in ts]
is_(len(acked), len(plans), "every message acknowledged in the end (retried after the crash)",
    errors[-5:])


def delivered():
    """marker -> list of bodies delivered for it"""
    out = {}
    for f in maildir_files(box):
        with open(f, "rb") as fh:
            data = fh.read().decode("utf-8", "replace").replace("\r\n", "\n")
        m = re.search(r"^Subject: (\S+)$", data, re.M)
        head, _, body = data.partition("\n\n")
        out.setdefault(m.group(1) if m else "?", []).append(body)
    return out


ok(wait_for(lambda: set(delivered()) >= acked, 60), "every acknowledged message is delivered",
   sorted(acked - set(delivered()))[:5])
got = delivered()
bad = [m for m, bodies in got.items()
       if m not in plans or any(b != plans[m].replace("\r\n", "\n") for b in bodies)]
is_(bad, [], "every delivered copy is exactly the message sent (%d messages, %d copies)"
    % (len(got), sum(len(b) for b in got.values())))
ok(all(len(b) <= 2 for b in got.values()), "at most one extra copy of a message (the crash)",
   {m: len(b) for m, b in got.items() if len(b) > 2})
spares = [n for n in d.incoming_files(empty=True) if n.startswith("spare.")]
ok(spares, "the run recycled queue files (spares in incoming/)", d.incoming_files(empty=True))
done()
