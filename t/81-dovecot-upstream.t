#!/usr/bin/env python3
# 81-dovecot-upstream.t - the `dovecot` backend against a real, private
# Dovecot 2.3 auth server (passwd-file passdb): submission over 587 as a
# Dovecot user with PLAIN and LOGIN, wrong passwords and unknown users get
# 535; with only this backend the mechanisms are passed through: CRAM-MD5
# (enabled in that Dovecot, for a {PLAIN} user there) works over 587, a
# wrong CRAM-MD5 answer gets 535 and a stopped Dovecot 454; a
# stopped Dovecot gives a quick 454 4.7.0 and `msagatectl auth test` exit 75
# (the backend error reaches the client as code=temp_fail), a restarted
# Dovecot is used again (kept connections replaced), and Dovecot's default
# 2 s failure delay stays within our timeout.
import os, sys, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from msagatetest import *
from dovecotauth import start_upstream

if not have("dovecot"):
    skip_all("dovecot (dovecot-core) is not installed")


DAVE, DPW = "dave", "dove-secret 1:x"
ERIN, EPW = "erin@example.test", "erin-pw-2"
CRAMU, CRAMPW = "fay@example.test", "fay-cram-3"
up, why = start_upstream({DAVE: DPW, ERIN: EPW}, ["%s:{PLAIN}%s::::::" % (CRAMU, CRAMPW)])
if up is None:
    skip_all(why)

d = Daemon(backends='{ driver = "dovecot"; socket = "%s"; timeout = 10; workers = 2; }'
           % up.socket, mechanisms=("PLAIN", "LOGIN", "CRAM-MD5"))
p587 = d.ports["submission"]


def submit(user, password, mech="PLAIN", send=True):
    """587 + STARTTLS + AUTH <mech>; returns (auth code, reply, queue id or None)."""
    return auth_submit(p587, user, password, mech, send, subject="dovecot upstream")


# --- mechanisms: only a dovecot backend, so they are passed through
auth = ehlo_auth(p587)
like(auth, r"\bPLAIN\b", "EHLO offers PLAIN")
like(auth, r"\bLOGIN\b", "EHLO offers LOGIN")
like(auth, r"\bCRAM-MD5\b", "EHLO offers CRAM-MD5 (passed through to Dovecot)")
ok(d.wait_log(r"passed through to the upstream Dovecot"), "log says mechanisms are passed through")

# --- CRAM-MD5 runs in the upstream Dovecot
code, resp, qid = submit(CRAMU, CRAMPW, "CRAM-MD5")
is_(code, 235, "AUTH CRAM-MD5 through the upstream: 235")
ok(qid is not None, "message queued after CRAM-MD5")
code, resp, _ = submit(CRAMU, "wrong-cram", "CRAM-MD5")
is_(code, 535, "CRAM-MD5 with a wrong password: 535")
code, resp, _ = submit(DAVE, DPW, "CRAM-MD5")
is_(code, 535, "CRAM-MD5 for a Dovecot user with only a hash: 535")

# --- a Dovecot user logs in and submits
code, resp, qid = submit(DAVE, DPW, "PLAIN")
is_(code, 235, "AUTH PLAIN as a Dovecot user: 235")
ok(qid is not None, "message queued after PLAIN")
code, resp, qid = submit(ERIN, EPW, "LOGIN")
is_(code, 235, "AUTH LOGIN as a Dovecot user (user@domain): 235")
ok(qid is not None, "message queued after LOGIN")
code, resp, _ = submit(DAVE, "wrong", "PLAIN")
is_(code, 535, "wrong password: 535")
time.sleep(0.3)
like(up.log(), r"passwd-file\(dave,127\.0\.0\.1[,)]", "Dovecot saw the real client address (rip=)")
code, resp, _ = submit("nobody-here", "x", "PLAIN")
is_(code, 535, "unknown user: 535")
code, resp, _ = submit("da\tve", DPW, "PLAIN")
is_(code, 535, "user name with a TAB: 535")

r = d.ctl("auth", "test", DAVE, DPW)
is_(r.returncode, 0, "msagatectl auth test: exit 0")
like(r.stdout, r"succeeded", "msagatectl auth test: succeeded")
r = d.ctl("auth", "test", DAVE, "nope")
is_(r.returncode, 1, "msagatectl auth test, wrong password: exit 1")

# --- upstream down: 454 4.7.0, quickly
up.stop()
t0 = time.time()
code, resp, _ = submit(DAVE, DPW, "PLAIN")
elapsed = time.time() - t0
is_(code, 454, "Dovecot stopped: AUTH gets 454")
like(resp, r"4\.7\.0", "454 with 4.7.0")
ok(elapsed < 5, "454 comes quickly (%.1f s)" % elapsed)
code, resp, _ = submit(CRAMU, CRAMPW, "CRAM-MD5")
is_(code, 454, "Dovecot stopped: AUTH CRAM-MD5 gets 454")
r = d.ctl("auth", "test", DAVE, DPW)
is_(r.returncode, 75, "msagatectl auth test while upstream is down: exit 75 (temporary)")
ok(d.wait_log(r"cannot connect to \S*auth-client"), "log names the unreachable upstream")

# --- upstream back: reconnect
ok(up.start(), "Dovecot started again")
code, resp, qid = submit(DAVE, DPW, "PLAIN")
is_(code, 235, "after Dovecot is back: 235")

# --- a restart behind our back: the kept connection is dead, replaced once
code, resp, _ = submit(DAVE, DPW, "PLAIN", send=False)
is_(code, 235, "login before the restart")
up.stop()
ok(up.start(), "Dovecot restarted")
code, resp, _ = submit(DAVE, DPW, "PLAIN", send=False)
is_(code, 235, "first login after a restart succeeds (stale connection replaced)")

# --- Dovecot's default auth_failure_delay (2 s) stays within our timeout
up.stop()
ok(up.start(failure_delay=None), "Dovecot with the default failure delay")
t0 = time.time()
code, resp, _ = submit(DAVE, "wrong", "PLAIN")
elapsed = time.time() - t0
is_(code, 535, "wrong password with Dovecot's 2 s delay: 535, not 454")
ok(0.9 <= elapsed < 8, "answered after Dovecot's delay (%.1f s)" % elapsed)
code, resp, _ = submit(DAVE, DPW, "LOGIN", send=False)
is_(code, 235, "right password with the delay configured: 235")

ok(DPW not in d.read_log() and EPW not in d.read_log(), "no password in the log")

is_(d.stop(), 0, "SIGTERM: msagated exits 0")
up.stop()
done()
