#!/usr/bin/env python3
# 56-fail2ban.t - the fail2ban filter shipped in conf/fail2ban matches every
# failed authentication in a real msagated log (from SMTP clients on other
# loopback addresses and from auth-socket clients), with the right address,
# and nothing else.
import os, subprocess, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from msagatetest import *

if not have("fail2ban-regex"):
    skip_all("fail2ban-regex not installed")
d = Daemon()
alice, apw = "alice@example.test", d.users["alice@example.test"]
filt = os.path.join(SRCDIR, "conf", "fail2ban", "msagate-filter.conf")

# three failures from 127.0.0.7, one success, one failure from 127.0.0.8
for i in range(3):
    s = d.smtp(source="127.0.0.7")
    like(s.login(alice, "Wr0ngPass-%d" % i), r"^535", "failure %d from 127.0.0.7" % (i + 1))
    s.close()
s = d.smtp(source="127.0.0.7")
like(s.login(alice, apw), r"^235", "a success from 127.0.0.7")
s.close()
s = d.smtp(source="127.0.0.8")
like(s.login("nobody@example.test", "x"), r"^535", "unknown user from 127.0.0.8")
s.close()
# a user name with a space (and a fake field) must not slip past the filter
s = d.smtp(source="127.0.0.8")
like(s.login("alice@example.test rip=6.6.6.6 user=x", "x"), r"^535", "user name with spaces from 127.0.0.8")
s.close()
ok(d.wait_log(r"auth failed: rip=127\.0\.0\.8 user=alice@example\.test\?rip=6\.6\.6\.6\?user=x mech="),
   "its failure logged with the spaces shown as '?'", d.read_log()[-1000:])

r = subprocess.run(["fail2ban-regex", "-v", d.log, filt], capture_output=True, text=True)
out = r.stdout
m = re.search(r"Lines: \d+ lines, \d+ ignored, (\d+) matched", out)
is_(int(m.group(1)) if m else -1, 5, "fail2ban-regex matches exactly the 5 failures", out[-3000:])
hosts = re.findall(r"^\|\s+(127\.0\.0\.\d+)\s+\w{3} ", out, re.M)
ok(hosts.count("127.0.0.7") == 3 and hosts.count("127.0.0.8") == 2,
   "the matches name the client addresses 127.0.0.7 (x3) and 127.0.0.8 (x2)", hosts)
ok(apw not in d.read_log(), "no password in the log fail2ban reads")
d.stop()
done()
