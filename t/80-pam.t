#!/usr/bin/env python3
# 80-pam.t - the `pam` backend with a real system account (useradd +
# chpasswd, removed at the end) and the shipped PAM service file
# (conf/pam.d-msagate installed under a private name): submission over 587
# with PLAIN and LOGIN, wrong passwords, expired and locked accounts (with
# the right FAIL codes on the auth socket), `msagatectl auth test`, only
# PLAIN/LOGIN offered, helper processes that die, and a slow PAM stack
# (pam_exec sleeping) that neither stalls passwd-file users nor outlives
# the backend's timeout.
import atexit, os, secrets, smtplib, socket, subprocess, sys, threading, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from msagatetest import *

if os.geteuid() != 0:
    skip_all("needs root (creates a system account and a PAM service file)")
for prog in ("useradd", "userdel", "chpasswd", "chage", "usermod"):
    if not have(prog):
        skip_all(prog + " is missing")
if not os.path.isdir("/etc/pam.d"):
    skip_all("no /etc/pam.d")

tag = secrets.token_hex(4)
PUSER = "msgt" + tag
PPW = "Pam-" + secrets.token_hex(6) + " x:y"
SERVICE = "msagate-test-" + tag
SLOW = "msagate-test-slow-" + tag
UNIX = "msagate-test-unix-" + tag
pam_files = [os.path.join("/etc/pam.d", n) for n in (SERVICE, SLOW, UNIX)]
PAMENV = "/tmp/msagate-test-pamenv-" + tag


def cleanup():
    subprocess.run(["userdel", PUSER], capture_output=True)
    for f in pam_files + [PAMENV]:
        try:
            os.unlink(f)
        except OSError:
            pass


atexit.register(cleanup)
r = subprocess.run(["useradd", "-M", "-d", "/nonexistent", "-s", "/usr/sbin/nologin", PUSER],
                   capture_output=True, text=True)
if r.returncode != 0:
    skip_all("useradd failed: " + r.stderr.strip())
subprocess.run(["chpasswd"], input="%s:%s\n" % (PUSER, PPW), text=True, check=True)
with open(os.path.join(SRCDIR, "conf", "pam.d-msagate")) as f:
    shipped = f.read()
with open(pam_files[0], "w") as f:
    f.write(shipped)
with open(pam_files[1], "w") as f:
    f.write("# slow PAM stack for 80-pam.t\n"
            "auth required pam_exec.so quiet /bin/sleep 4\n" + shipped)
with open(pam_files[2], "w") as f:
    # pam_unix alone answers PAM_USER_UNKNOWN for unknown users (Debian's
    # common-auth turns that into PAM_AUTH_ERR through pam_deny)
    f.write("auth optional pam_exec.so quiet log=%s /usr/bin/env\n"
            "auth required pam_unix.so\naccount required pam_unix.so\n" % PAMENV)

d = Daemon(backends='{ driver = "passwd-file"; path = "%%(passwd)s"; }, '
                    '{ driver = "pam"; service = "%s"; workers = 2; }' % SERVICE,
           mechanisms=("PLAIN", "LOGIN", "CRAM-MD5"))
p587 = d.ports["submission"]
alice, apw = "alice@example.test", d.users["alice@example.test"]


def submit(dm, user, password, mech="PLAIN", send=True):
    """587 + STARTTLS + AUTH; returns (code, reply text, queue id or None)."""
    return auth_submit(dm.ports["submission"], user, password, mech, send, subject="pam")


def sock_auth(dm, user, password):
    """One AUTH PLAIN on the auth socket; returns the final reply line."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(30)
        s.connect(dm.auth_socket)
        buf = auth_handshake(s, cpid=77)
        if buf is None:
            return None
        s.sendall(("AUTH\t1\tPLAIN\tservice=smtp\tnologin\trip=127.0.0.1\tresp=%s\n"
                   % plain_b64(user, password)).encode())
        while b"\n" not in buf:
            x = s.recv(4096)
            if not x:
                return None
            buf += x
        return buf.split(b"\n", 1)[0].decode()


def helpers(dm):
    """The PAM helper processes: root children of the (unprivileged) auth role."""
    pids = set(dm.pids())
    out = []
    for p in pids:
        try:
            with open("/proc/%d/status" % p) as f:
                st = f.read()
        except OSError:
            continue
        ppid = int(re.search(r"(?m)^PPid:\s*(\d+)", st).group(1))
        uid = int(re.search(r"(?m)^Uid:\s*(\d+)", st).group(1))
        if uid != 0 or ppid not in pids or ppid == dm.proc.pid:
            continue
        try:
            with open("/proc/%d/status" % ppid) as f:
                puid = int(re.search(r"(?m)^Uid:\s*(\d+)", f.read()).group(1))
        except OSError:
            continue
        if puid != 0:
            out.append(p)
    return sorted(out)


# --- mechanisms: PAM hands out no passwords
auth = ehlo_auth(p587, ehlo="x.test")
like(auth, r"\bPLAIN\b.*\bLOGIN\b|\bLOGIN\b.*\bPLAIN\b", "EHLO offers PLAIN and LOGIN")
ok("CRAM-MD5" not in auth, "no CRAM-MD5 with a pam backend in the chain", auth)

# --- the system account
code, resp, qid = submit(d, PUSER, PPW, "PLAIN")
is_(code, 235, "PAM user, AUTH PLAIN: 235")
ok(qid is not None, "message queued for the PAM user")
code, resp, qid = submit(d, PUSER, PPW, "LOGIN")
is_(code, 235, "PAM user, AUTH LOGIN: 235")
ok(qid is not None, "message queued after LOGIN")
code, resp, _ = submit(d, PUSER, PPW + "x", "PLAIN")
is_(code, 535, "PAM user, wrong password: 535")
code, resp, _ = submit(d, "msgt-no-such-" + tag, "whatever", "PLAIN")
is_(code, 535, "unknown user: 535")
code, resp, _ = submit(d, alice, apw, "PLAIN", send=False)
is_(code, 235, "passwd-file user before PAM in the chain: 235")
is_(sock_auth(d, PUSER, PPW), "OK\t1\tuser=" + PUSER, "auth socket: OK for the PAM user")
like(sock_auth(d, PUSER, "bad"), r"^FAIL\t1\tuser=%s$" % PUSER, "auth socket: plain FAIL for a wrong password")

r = d.ctl("auth", "test", PUSER, PPW)
is_(r.returncode, 0, "msagatectl auth test PAM user: exit 0")
like(r.stdout, r"succeeded", "msagatectl auth test: succeeded")
r = d.ctl("auth", "test", PUSER, "bad")
is_(r.returncode, 1, "msagatectl auth test, wrong password: exit 1")

# --- expired account: refused even with the right password
subprocess.run(["chage", "-E", "0", PUSER], check=True)
code, resp, _ = submit(d, PUSER, PPW, "PLAIN", send=False)
is_(code, 535, "expired account (chage -E 0): 535")
like(sock_auth(d, PUSER, PPW), r"^FAIL\t1\tuser=[^\t]+\tcode=user_disabled$",
     "expired account: FAIL code=user_disabled")
like(sock_auth(d, PUSER, "bad"), r"^FAIL\t1\tuser=[^\t]+$",
     "expired account, wrong password: no code (nothing revealed)")
subprocess.run(["chage", "-E", "-1", PUSER], check=True)

# --- password expired (must be changed)
subprocess.run(["chage", "-d", "0", PUSER], check=True)
like(sock_auth(d, PUSER, PPW), r"^FAIL\t1\tuser=[^\t]+\tcode=pass_expired$",
     "password expired (chage -d 0): FAIL code=pass_expired")
code, resp, _ = submit(d, PUSER, PPW, "PLAIN", send=False)
is_(code, 535, "password expired: 535")
subprocess.run(["chage", "-d", time.strftime("%Y-%m-%d"), PUSER], check=True)

# --- locked account
subprocess.run(["usermod", "-L", PUSER], check=True)
code, resp, _ = submit(d, PUSER, PPW, "PLAIN", send=False)
is_(code, 535, "locked account (usermod -L): 535")
subprocess.run(["usermod", "-U", PUSER], check=True)
code, resp, _ = submit(d, PUSER, PPW, "PLAIN", send=False)
is_(code, 235, "unlocked again: 235")

ok(PPW not in d.read_log(), "the PAM password never reaches our log")

# --- helper processes
hs = helpers(d)
is_(len(hs), 2, "two privileged PAM helper processes (workers = 2)")
if hs:
    os.kill(hs[0], signal.SIGKILL)
    time.sleep(0.2)
    code1, _, _ = submit(d, PUSER, PPW, "PLAIN", send=False)
    code2, _, _ = submit(d, PUSER, PPW, "PLAIN", send=False)
    ok(code1 in (235, 454) and code2 == 235,
       "one helper killed: PAM logins go on (%s, %s)" % (code1, code2))
    ok(d.wait_log(r"pam: helper process \d+ (has gone away|died)"), "the lost helper is logged")
    for p in helpers(d):
        os.kill(p, signal.SIGKILL)
    time.sleep(0.2)
    code, resp, _ = submit(d, PUSER, PPW, "PLAIN", send=False)
    is_(code, 454, "every helper killed: 454 (temporary)")
    ok(d.wait_log(r"every PAM helper process is gone"), "logged loudly")
    ok(d.wait_log(r"auth role .* exited with status 0; restarting", timeout=15),
       "the auth role stops and is restarted")
    deadline = time.time() + 20
    code = None
    while time.time() < deadline:
        try:
            code, _, _ = submit(d, PUSER, PPW, "PLAIN", send=False)
        except (OSError, smtplib.SMTPException):
            code = None
        if code == 235:
            break
        time.sleep(0.5)
    is_(code, 235, "PAM works again after the restart, with fresh helpers")
    is_(len(helpers(d)), 2, "two helpers again")
is_(d.stop(), 0, "SIGTERM: msagated exits 0")
time.sleep(0.3)
is_(helpers(d), [], "no helper left behind")

# --- PAM first in the chain: users PAM does not know go on to the next backend
first = Daemon(backends='{ driver = "pam"; service = "%s"; workers = 1; }, '
                        '{ driver = "passwd-file"; path = "%%(passwd)s"; }' % UNIX)
code, _, _ = submit(first, alice, apw, "PLAIN", send=False)
is_(code, 235, "pam (pam_unix only) first: a passwd-file user gets past it (user unknown to PAM)")
code, _, _ = submit(first, PUSER, PPW, "LOGIN", send=False)
is_(code, 235, "pam first: the PAM user logs in")
try:
    with open(PAMENV) as f:
        env = f.read()
except OSError:
    env = ""
like(env, r"(?m)^PAM_RHOST=127\.0\.0\.1$", "PAM_RHOST is the client's address")
like(env, r"(?m)^PAM_SERVICE=%s$" % UNIX, "PAM_SERVICE is the configured service")
code, _, _ = submit(first, PUSER, "wrong", "PLAIN", send=False)
is_(code, 535, "pam first: the PAM user's wrong password: 535")
is_(first.stop(), 0, "SIGTERM: msagated exits 0")

# --- slow PAM: passwd-file users are not stalled; PAM's timeout holds
slow = Daemon(backends='{ driver = "passwd-file"; path = "%%(passwd)s"; }, '
                       '{ driver = "pam"; service = "%s"; workers = 2; timeout = 2; }' % SLOW,
              auth_extra="workers = 1;")
results = []


def slow_login():
    t0 = time.time()
    try:
        code, _, _ = submit(slow, PUSER, PPW, "PLAIN", send=False)
    except Exception as e:
        code = str(e)
    results.append((code, time.time() - t0))


threads = [threading.Thread(target=slow_login) for _ in range(4)]
for t in threads:
    t.start()
time.sleep(0.8)          # the slow ones are inside PAM (or waiting for a helper)
t0 = time.time()
code, _, _ = submit(slow, alice, apw, "PLAIN", send=False)
fast = time.time() - t0
is_(code, 235, "passwd-file user while PAM is slow: 235")
ok(fast < 1.5, "passwd-file login not stalled by 4 slow PAM logins (%.2f s)" % fast)
for t in threads:
    t.join(30)
codes = sorted(c for c, _ in results)
ok(len(codes) == 4 and all(c == 454 for c in codes),
   "PAM slower than its timeout (2 s): 454 for each", results)
ok(all(e < 7 for _, e in results), "and within the timeout (+ waiting for a helper)", results)
ok(slow.wait_log(r"no answer from PAM within"), "the PAM timeout is logged")
is_(slow.stop(), 0, "SIGTERM: second msagated exits 0")
done()
