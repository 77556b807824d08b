#!/usr/bin/env python3
# 50-authsocket.t - the auth socket speaks the Dovecot auth protocol as
# Dovecot 2.3 does (../shared/spec/dovecot-auth-protocol.md): handshake,
# AUTH PLAIN/LOGIN with and without initial response, FAIL without telling
# unknown users from wrong passwords, bad base64, several requests in flight,
# protocol errors disconnect, and the failure delay.
import os, socket, subprocess, sys, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from msagatetest import *

# a user whose hash is slow (a million SHA512-CRYPT rounds): its failures
# must not take longer than an unknown user's (the timing would tell them apart)
SLOW_HASH = subprocess.run(["perl", "-e", 'print crypt("Slow-Passw0rd", q($6$rounds=1000000$abcdefgh$))'],
                           capture_output=True, text=True, check=True).stdout
d = Daemon(failure_delay=1, passwd_lines=["slow@example.test:{SHA512-CRYPT}%s::::::" % SLOW_HASH])
alice, apw = "alice@example.test", d.users["alice@example.test"]


class Auth(LineClient):
    def __init__(self, version=b"VERSION\t1\t0\n", cpid=b"CPID\t4242\n"):
        LineClient.__init__(self, d.auth_socket, 10)
        # the server may hang up at once on a bad VERSION: that is the point
        try:
            if version:
                self.s.sendall(version)
            if cpid:
                self.s.sendall(cpid)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def handshake(self):
        lines = []
        while True:
            lines.append(self.line())
            if lines[-1] == "DONE":
                return lines

    def send(self, text):
        try:
            self.s.sendall(text.encode() + b"\n")
        except (BrokenPipeError, ConnectionResetError):
            pass


a = Auth()
hs = a.handshake()
is_(hs[0], "VERSION\t1\t2", "handshake starts VERSION 1 2")
ok("MECH\tPLAIN\tplaintext" in hs, "MECH PLAIN plaintext", hs)
ok("MECH\tLOGIN\tplaintext" in hs, "MECH LOGIN plaintext", hs)
ok(any(l.startswith("SPID\t") for l in hs), "SPID line")
ok(any(re.fullmatch(r"CUID\t\d+", l) for l in hs), "CUID line")
ok(any(re.fullmatch(r"COOKIE\t[0-9a-f]{32}", l) for l in hs), "COOKIE with 32 hex digits")
order = [l.split("\t")[0] for l in hs]
ok(order.index("MECH") < order.index("SPID") < order.index("CUID") < order.index("COOKIE") < order.index("DONE"),
   "lines in Dovecot's code order: VERSION MECH SPID CUID COOKIE DONE", order)

# Postfix-style successful PLAIN
a.send("AUTH\t1\tPLAIN\tservice=smtp\tnologin\tlip=127.0.0.1\trip=127.0.0.1\tsecured\tresp=" + plain_b64(alice, apw))
is_(a.line(), "OK\t1\tuser=" + alice, "PLAIN with initial response: OK user=")

# PLAIN without initial response: empty CONT, then the response
a.send("AUTH\t2\tPLAIN\tservice=smtp\tnologin\tlip=\trip=")
is_(a.line(), "CONT\t2\t", "PLAIN without resp: empty CONT")
a.send("CONT\t2\t" + plain_b64("bob", d.users["bob"]))
is_(a.line(), "OK\t2\tuser=bob", "CONT with the PLAIN response: OK")

# LOGIN
a.send("AUTH\t3\tLOGIN\tservice=smtp\trip=127.0.0.1")
is_(a.line(), "CONT\t3\tVXNlcm5hbWU6", "LOGIN asks Username:")
a.send("CONT\t3\t" + base64.b64encode(alice.encode()).decode())
is_(a.line(), "CONT\t3\tUGFzc3dvcmQ6", "LOGIN asks Password:")
a.send("CONT\t3\t" + base64.b64encode(apw.encode()).decode())
is_(a.line(), "OK\t3\tuser=" + alice, "LOGIN: OK")



def timed_plain(n, user, password, params):
    """AUTH PLAIN n for user/password with params; (reply line, seconds)."""
    t0 = time.time()
    a.send("AUTH\t%d\tPLAIN\tservice=smtp\t%s\tresp=%s" % (n, params, plain_b64(user, password)))
    return a.line(), time.time() - t0


# wrong password and unknown user look the same, and are delayed
r4, t_wrong = timed_plain(4, alice, "Wr0ngPass-x", "rip=127.0.0.1")
r5, t_unknown = timed_plain(5, "nosuchuser@example.test", "Wr0ngPass-x", "rip=127.0.0.1")
like(r4, r"^FAIL\t4(\t|$)", "wrong password: FAIL")
like(r5, r"^FAIL\t5(\t|$)", "unknown user: FAIL")
is_(re.sub(r"\tuser=[^\t]*", "", r4.replace("\t4", "\tN")),
    re.sub(r"\tuser=[^\t]*", "", r5.replace("\t5", "\tN")),
    "unknown user and wrong password get the same FAIL (apart from the echoed user)")
ok("reason=" not in r4 or ("unknown" not in r4.lower() and "password" not in r4.lower()),
   "FAIL reason does not reveal the cause", r4)
ok(t_wrong >= 0.9, "failure answered after auth.failure_delay (1 s here): %.2fs" % t_wrong)
ok(t_unknown >= 0.9, "unknown user also delayed: %.2fs" % t_unknown)

# failure_delay counts from the attempt, not from the end of the hash
r, t_slow_ok = timed_plain(50, "slow@example.test", "Slow-Passw0rd", "no-penalty")
like(r, r"^OK\t50\t", "the slow-hash user logs in", r)
r, t_slow_fail = timed_plain(51, "slow@example.test", "Wr0ngPass-x", "no-penalty")
r2, t_unknown2 = timed_plain(52, "nosuch@example.test", "Wr0ngPass-x", "no-penalty")
like(r, r"^FAIL\t51", "slow-hash user, wrong password: FAIL")
ok(t_slow_ok > 0.15, "its hash takes a while (%.2fs for a success)" % t_slow_ok)
ok(abs(t_slow_fail - t_unknown2) < min(0.15, t_slow_ok * 0.6),
   "its failure takes as long as an unknown user's: %.2fs and %.2fs (the hash: %.2fs)"
   % (t_slow_fail, t_unknown2, t_slow_ok))

# several requests in flight: failure held, success not held behind it
t0 = time.time()
a.send("AUTH\t6\tPLAIN\tservice=smtp\tresp=" + plain_b64(alice, "bad"))
a.send("AUTH\t7\tPLAIN\tservice=smtp\tresp=" + plain_b64(alice, apw))
first = a.line()
t_first = time.time() - t0
second = a.line()
is_(first, "OK\t7\tuser=" + alice, "success answered before the delayed failure")
ok(t_first < 0.8, "success not delayed by a failure in flight (%.2fs)" % t_first)
like(second, r"^FAIL\t6", "then the failure")

# bad base64: immediate FAIL code=invalid_base64
a.send("AUTH\t8\tPLAIN\tservice=smtp\tresp=!!!")
like(a.line(), r"^FAIL\t8\tcode=invalid_base64", "bad base64 in resp: FAIL code=invalid_base64")
# CONT for an unknown id
a.send("CONT\t99\tAAAA")
like(a.line(), r"^FAIL\t99\t.*timed out", "CONT for an unknown id: FAIL timed out")
# authzid different from the user is refused
a.send("AUTH\t9\tPLAIN\tservice=smtp\tresp=" + plain_b64(alice, apw, authzid="bob"))
like(a.line(), r"^FAIL\t9", "PLAIN with a foreign authorization identity: FAIL")
# tab-escaped service value and unknown parameters are fine
a.send("AUTH\t10\tPLAIN\tservice=sm\x01ttp\tfoo=bar\tflag\tresp=" + plain_b64(alice, apw))
is_(a.line(), "OK\t10\tuser=" + alice, "escaped fields and unknown parameters accepted")
# however many unknown parameters (Dovecot ignores them; the line limit is 16384)
a.send("AUTH\t11\tPLAIN\tservice=smtp\t" + "\t".join("x%d=1" % i for i in range(2000)) +
       "\tresp=" + plain_b64(alice, apw))
is_(a.line(), "OK\t11\tuser=" + alice, "2000 unknown parameters: still OK")
# a line ended by CRLF (a hand-written client): the CR is dropped, as Dovecot does
a.send("AUTH\t12\tPLAIN\tservice=smtp\tresp=" + plain_b64(alice, apw) + "\r")
is_(a.line(), "OK\t12\tuser=" + alice, "AUTH ended by CRLF: OK")
# protocol errors disconnect
a.send("AUTH\t0\tPLAIN\tservice=smtp")
ok(a.closed(), "request id 0: disconnected")

b = Auth()
b.handshake()
b.send("AUTH\t1\tNOSUCHMECH\tservice=smtp")
ok(b.closed(), "unknown mechanism: disconnected")
b = Auth()
b.handshake()
b.send("AUTH\t1\tPLAIN\trip=127.0.0.1")
ok(b.closed(), "missing service=: disconnected")
b = Auth()
b.handshake()
b.send("AUTH\t1\tPLAIN\tservice=smtp\tresp=AAAA\tfoo")
ok(b.closed(), "parameter after resp=: disconnected")
b = Auth(version=b"VERSION\t2\t0\n")
ok(b.closed(), "major version 2: disconnected")
b = Auth()
b.handshake()
try:
    b.s.sendall(b"X" * 20000)
except (BrokenPipeError, ConnectionResetError):
    pass
ok(b.closed(), "line over 16384 bytes: disconnected")

# many clients at once
clients = [Auth(version=b"VERSION\t1\t2\n", cpid=b"CPID\t%d\n" % (1000 + i)) for i in range(20)]
for i, c in enumerate(clients):
    c.handshake()
    c.send("AUTH\t%d\tPLAIN\tservice=smtp\tresp=%s" % (i + 1, plain_b64(alice, apw)))
ok(all(c.line() == "OK\t%d\tuser=%s" % (i + 1, alice) for i, c in enumerate(clients)),
   "20 concurrent clients authenticated")
ok(apw not in d.read_log() and "Wr0ngPass-x" not in d.read_log(), "no password in the log")
d.stop()
done()
