#!/usr/bin/env python3
# 70-limits.t - connection limits (per client address outside mynetworks,
# and in total), the idle timeout, and that one slow client does not stall
# the others.
import os, socket, sys, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from msagatetest import *

d = Daemon(smtp_extra="max_connections_per_client = 3; max_connections = 8; idle_timeout = 2;")
alice, apw = "alice@example.test", d.users["alice@example.test"]

# 127.0.0.5 is outside mynetworks (127.0.0.1/32): at most 3 at once
held = [d.smtp(source="127.0.0.5") for _ in range(3)]
ok(all(s.greeting.startswith("220") for s in held), "3 sessions from 127.0.0.5 accepted")
extra = socket.create_connection(("127.0.0.1", d.ports["submission"]), 5,
                                 source_address=("127.0.0.5", 0))
extra.settimeout(5)
r = extra.recv(512).decode()
like(r, r"^421 4\.7\.0", "4th session from the same address: 421 4.7.0")
extra.close()
ok(d.wait_log(r"too many connections from \[127\.0\.0\.5\] \(limit 3\)"), "and logged")

# inside mynetworks the per-client limit does not apply (as in Postfix)
mine = [d.smtp() for _ in range(4)]
ok(all(s.greeting.startswith("220") for s in mine),
   "4 sessions from 127.0.0.1 (mynetworks) accepted: exempt from the per-client limit")

# other loopback addresses play other clients: still served
others = [d.smtp(source="127.0.0.2")]
ok(all(s.greeting.startswith("220") for s in others), "clients from other addresses are served")
over = socket.create_connection(("127.0.0.1", d.ports["submission"]), 5, source_address=("127.0.0.9", 0))
over.settimeout(5)
like(over.recv(512).decode(), r"^421 4\.7\.0", "past max_connections in total: 421 4.7.0")
over.close()
for s in held + mine + others:
    s.close()
time.sleep(0.3)

# idle timeout: 421 then close
s = d.smtp()
s.cmd("EHLO c.example")
t0 = time.time()
r = s.reply()
like(r, r"^421 4\.4\.2", "idle session gets 421 4.4.2 after idle_timeout")
ok(1.5 <= time.time() - t0 <= 6, "after about idle_timeout seconds (%.1fs)" % (time.time() - t0))
ok(s.closed(), "and is closed")

# a client that stalls in the middle of a command line does not stall others
slow = socket.create_connection(("127.0.0.1", d.ports["submission"]), 5)
slow.recv(512)
slow.sendall(b"EHLO half-a-li")
s = d.smtp()
t0 = time.time()
like(s.login(alice, apw), r"^235", "another client authenticates while one stalls")
ok(time.time() - t0 < 2, "without waiting for the stalled client")
s.close()
slow.close()
d.stop()
done()
