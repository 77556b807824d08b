#!/usr/bin/env python3
# 13-ipv6.t - listeners on ::1 with real clients over IPv6: swaks submits
# over STARTTLS + AUTH on a submission listener bound to ::1 and msmtp on
# an implicit-TLS one; the log names the client as [::1]; on a relay
# listener on ::1 the client ::1 is inside the default-style mynetworks
# (::1/128) and relays, and an IPv6 listener does not take IPv4
# connections (IPV6_V6ONLY).
import os, re, socket, subprocess, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from msagatetest import *

try:
    with socket.socket(socket.AF_INET6) as s:
        s.bind(("::1", 0))
except OSError as e:
    skip_all("no IPv6 loopback here: %s" % e)

p_sub, p_tls, p_rel = free_port("::1"), free_port("::1"), free_port("::1")
d = Daemon(listen_extra=(
    '{ address = "::1"; port = %d; role = "submission"; tls = "starttls"; }' % p_sub,
    '{ address = "::1"; port = %d; role = "submission"; tls = "implicit"; }' % p_tls,
    '{ address = "::1"; port = %d; role = "relay"; tls = "starttls"; }' % p_rel))
alice, apw = "alice@example.test", d.users["alice@example.test"]
ok(d.wait_log(r"listening on ::1 port %d \(submission, STARTTLS\)" % p_sub),
   "listening on ::1 (STARTTLS)", d.read_log()[-1500:])

# swaks over IPv6 (needs IO::Socket::INET6, installed by scripts/install-deps)
if have("swaks"):
    r = subprocess.run(["swaks", "-6", "--server", "::1", "--port", str(p_sub), "--tls",
                        "--auth", "PLAIN", "--auth-user", alice, "--auth-password", apw,
                        "--from", alice, "--to", "someone@example.org",
                        "--h-Subject", "over IPv6", "--timeout", "20"],
                       capture_output=True, text=True, timeout=60)
    m = re.search(r"250 2\.0\.0 Ok: queued as ([0-9A-F]{16})", r.stdout)
    ok(m is not None, "swaks over ::1: STARTTLS, AUTH PLAIN, queued", r.stdout[-1500:] + r.stderr[-500:])
    ok(d.wait_log(r"connect from \[::1\]:\d+ to submission port %d" % p_sub),
       "the log names the client [::1]", d.read_log()[-1500:])
else:
    ok(True, "# SKIP swaks not installed")
    ok(True, "# SKIP swaks not installed")

# msmtp over IPv6, implicit TLS
if have("msmtp"):
    r = subprocess.run(["msmtp", "--host=::1", "--port=%d" % p_tls, "--tls=on",
                        "--tls-starttls=off", "--tls-certcheck=off", "--auth=login",
                        "--user=" + alice, "--passwordeval=echo '%s'" % apw,
                        "--from=" + alice, "someone@example.org"],
                       input="Subject: msmtp over IPv6\n\nhello\n", capture_output=True,
                       text=True, timeout=60)
    is_(r.returncode, 0, "msmtp over ::1, implicit TLS + AUTH LOGIN: exit 0", r.stderr[-800:])
else:
    ok(True, "# SKIP msmtp not installed")

# relay listener on ::1: the client ::1 is in mynetworks (::1/128)
s6 = socket.create_connection(("::1", p_rel), timeout=10)
f = s6.makefile("rb")


def cmd(line):
    if line is not None:
        s6.sendall(line.encode() + b"\r\n")
    r = f.readline().decode()
    while r[3:4] == "-":
        r = f.readline().decode()
    return r


like(cmd(None), r"^220 ", "relay listener on ::1 greets")
like(cmd("EHLO v6.example"), r"^250 ", "EHLO")
like(cmd("MAIL FROM:<app@example.test>"), r"^250 ", "MAIL from ::1")
like(cmd("RCPT TO:<user@foreign.test>"), r"^250 ", "::1 is in mynetworks: a foreign recipient is relayed")
cmd("QUIT")
s6.close()

# an IPv6 listener takes no IPv4 connection
refused = False
try:
    socket.create_connection(("127.0.0.1", p_rel), timeout=5).close()
except OSError:
    refused = True
ok(refused, "no IPv4 connection on the ::1 listener's port")
d.stop()
done()
