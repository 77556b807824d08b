#!/usr/bin/env python3
# 57-bruteforce.t - password guessing: every failure is answered late
# without holding up others, repeated failures from one address grow a
# delay, a threshold blocks the address (421 4.7.0 at connect or AUTH) for
# block_time (IPv6 per /48), exempt addresses and no-penalty requests are
# spared, and one session is cut after smtp.max_auth_failures failed AUTH
# commands.
import os, re, socket, sys, threading, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from msagatetest import *

d = Daemon(penalty=True, failure_delay=0.5,
           auth_extra='penalty = { block_after = 5; window = 60; block_time = 4; '
                      'max_delay = 2; exempt = [ "127.0.0.3/32" ]; };',
           smtp_extra="max_auth_failures = 3;")
alice, apw = "alice@example.test", d.users["alice@example.test"]


def attempt(src, password):
    """One session, one AUTH; returns (reply or 'EOF', seconds for AUTH)."""
    try:
        s = d.smtp(source=src)
    except (OSError, EOFError) as e:
        return ("EOF", 0.0)
    if s.greeting.startswith("421"):
        return (s.greeting, 0.0)
    s.cmd("EHLO guesser.example")
    s.starttls()
    s.cmd("EHLO guesser.example")
    t0 = time.time()
    try:
        r = s.auth_plain(alice, password)
    except EOFError:
        r = "EOF"
    dt = time.time() - t0
    s.close()
    return (r, dt)


# a legitimate client keeps being served quickly while the guesser works
fast = []
stop = threading.Event()


def legit():
    while not stop.is_set():
        r, dt = attempt("127.0.0.21", apw)
        fast.append((r[:3], dt))
        time.sleep(0.2)


t = threading.Thread(target=legit)
t.start()
times = []
for i in range(5):
    r, dt = attempt("127.0.0.20", "guess-%d" % i)
    times.append(dt)
    like(r, r"^535 5\.7\.8", "guess %d from 127.0.0.20: 535" % (i + 1))
ok(all(x >= 0.45 for x in times), "every failure answered after the failure delay", times)
ok(times[3] > times[0] + 0.8 and times[4] > times[0] + 1.5,
   "repeated failures from one address wait longer and longer", times)
# now blocked: refused at connect or at AUTH, even with the right password
r, dt = attempt("127.0.0.20", apw)
like(r, r"^421 4\.7\.0", "blocked address: 421 4.7.0 even with the right password")
stop.set()
t.join()
ok(len(fast) >= 3 and all(c == "235" for c, _ in fast), "the legitimate client always succeeded", fast)
ok(all(dt < 0.5 for _, dt in fast), "and was never slowed down (max %.2fs)" % max(dt for _, dt in fast))
ok(d.wait_log(r"auth blocked: rip=127\.0\.0\.20"), "the block is logged with the address")
# the block ends after block_time
time.sleep(4.5)
r, dt = attempt("127.0.0.20", apw)
like(r, r"^235", "after block_time the address may log in again")

# an exempt address is never delayed or blocked
exempt_times = []
for i in range(7):
    r, dt = attempt("127.0.0.3", "guess-%d" % i)
    exempt_times.append(dt)
like(r, r"^535", "exempt address: still 535 after 7 failures (not blocked)")
ok(max(exempt_times) < 1.2, "exempt address: no growing delay", exempt_times)

# no-penalty requests on the auth socket do not count
s = socket.socket(socket.AF_UNIX)
s.settimeout(15)
s.connect(d.auth_socket)
s.sendall(b"VERSION\t1\t0\nCPID\t77\n")
buf = b""
while b"DONE\n" not in buf:
    buf += s.recv(4096)
for i in range(7):
    s.sendall(("AUTH\t%d\tPLAIN\tservice=smtp\trip=127.0.0.30\tno-penalty\tresp=%s\n"
               % (i + 1, plain_b64(alice, "nope"))).encode())
s.sendall(("AUTH\t8\tPLAIN\tservice=smtp\trip=127.0.0.30\tresp=%s\n" % plain_b64(alice, apw)).encode())
lines = []
while len(lines) < 8:
    buf2 = s.recv(65536)
    if not buf2:
        break
    lines += buf2.decode().splitlines()
ok(any(l.startswith("OK\t8\t") for l in lines), "no-penalty failures do not block the address", lines)

# blocked address over the auth socket (as Postfix would see it): FAIL at once
for i in range(5):
    s.sendall(("AUTH\t%d\tPLAIN\tservice=smtp\trip=127.0.0.31\tresp=%s\n"
               % (100 + i, plain_b64(alice, "nope"))).encode())
got = []
while len(got) < 5:
    got += [l for l in s.recv(65536).decode().splitlines() if l]
t0 = time.time()
s.sendall(("AUTH\t200\tPLAIN\tservice=smtp\trip=127.0.0.31\tresp=%s\n" % plain_b64(alice, apw)).encode())
line = s.recv(65536).decode()
like(line, r"^FAIL\t200\t.*blocked=\d+", "auth socket: a blocked address gets FAIL with blocked=")
ok(time.time() - t0 < 0.4, "and at once")

# IPv6 counts per /48 (as Dovecot's anvil): failures from five /64s of one
# /48 block all of it, and another /48 is not touched
for i in range(5):
    s.sendall(("AUTH\t%d\tPLAIN\tservice=smtp\trip=2001:db8:7:%x::9\tresp=%s\n"
               % (300 + i, i + 1, plain_b64(alice, "nope"))).encode())
got = []
while len(got) < 5:
    got += [l for l in s.recv(65536).decode().splitlines() if l]
s.sendall(("AUTH\t400\tPLAIN\tservice=smtp\trip=2001:db8:7:ffff::1\tresp=%s\n" % plain_b64(alice, apw)).encode())
like(s.recv(65536).decode(), r"^FAIL\t400\t.*blocked=\d+",
     "IPv6: five failures from different /64s of one /48 block another /64 of it")
s.sendall(("AUTH\t401\tPLAIN\tservice=smtp\trip=2001:db8:8::1\tresp=%s\n" % plain_b64(alice, apw)).encode())
like(s.recv(65536).decode(), r"^OK\t401\t", "IPv6: another /48 logs in")
s.close()

# one session is cut after max_auth_failures failed AUTH commands
s = d.smtp(source="127.0.0.40")
s.login(alice, "bad-1")
like(s.auth_plain(alice, "bad-2"), r"^535", "2nd failure in the session: 535")
r = s.auth_plain(alice, "bad-3")
like(r, r"^535 5\.7\.8", "3rd failure: still 535 5.7.8 for the AUTH (spec: wrong credentials)")
like(s.reply(), r"^421 4\.7\.0 .*too many failed authentications", "then 421 4.7.0")
ok(s.closed(), "connection closed")
log = d.read_log()
ok(re.search(r"auth failed: rip=127\.0\.0\.40 user=alice@example\.test mech=PLAIN", log),
   "the SMTP role logs the failure with user=")

# a user name with spaces cannot add fields to the SMTP role's log line
s = d.smtp(source="127.0.0.41")
like(s.login("x rip=192.0.2.99 user=y", "bad"), r"^535", "a name with spaces: 535")
s.close()
ok(d.wait_log(r"msagated/smtp\[\d+\]: \w+: auth failed: rip=127\.0\.0\.41 "
              r"user=x\?rip=192\.0\.2\.99\?user=y mech="),
   "the SMTP role logs its spaces as '?'", d.read_log()[-800:])
ok("user=x rip=" not in d.read_log(), "no log line carries the forged field")
d.stop()
done()
