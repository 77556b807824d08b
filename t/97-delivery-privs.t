#!/usr/bin/env python3
# 97-delivery-privs.t - local delivery as other users, through the
# delivery helper (`user` with only CAP_SETUID/CAP_SETGID), with real
# system accounts (useradd, removed at the end):
#   - a passwd-file user with uid/gid fields gets a Maildir (directories and
#     files) owned by that uid/gid; uid given by name without gid takes the
#     account's group; a PAM/system user gets its own uid; a user without
#     uid stays with `user`; uid 0 and uids below relay.delivery.min_uid are
#     deferred and nothing is written; a mailbox path through another
#     user's directory (or a symlink) is deferred, nothing written;
#   - alias commands run as relay.alias_user with the message on stdin
#     (uid, gid, environment checked), exit 75 defers, exit 67 bounces with
#     the command's output, the time limit defers and kills the command;
#     file aliases append mbox (From_ line, >From quoting) as alias_user;
#     :include: lists (comments, a command inside) are expanded, a
#     group-writable one is refused;
#   - with the defaults, commands, files and includes are refused: RCPT is
#     accepted (the alias exists) and the refused target alone bounces
#     with 5.7.1 (the other members of the alias are delivered);
#   - relay.delay_warning: a message to a smarthost that is down gets one
#     RFC 3464 "delayed" report in the sender's Maildir, and only one;
#   - `msagated -n` reports bad values of the new keys with FILE:LINE.
import os, pwd, grp, re, secrets, shutil, smtplib, stat, subprocess, sys, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from msagatetest import *

if os.geteuid() != 0:
    skip_all("needs root (system accounts, delivery as other users)")
for prog in ("useradd", "userdel"):
    if not have(prog):
        skip_all(prog + " is missing")

tag = secrets.token_hex(3)
UA, UB, UN = "m97a" + tag, "m97b" + tag, "m97n" + tag
created = []


def cleanup():
    for u in created:
        subprocess.run(["userdel", u], capture_output=True)


atexit.register(cleanup)
for name, system in ((UA, False), (UB, False), (UN, True)):
    r = subprocess.run(["useradd", "-M", "-d", "/nonexistent", "-s", "/usr/sbin/nologin"] +
                       (["--system"] if system else []) + [name],
                       capture_output=True, text=True)
    if r.returncode != 0:
        skip_all("useradd failed: " + r.stderr.strip())
    created.append(name)
pa, pb, pn = pwd.getpwnam(UA), pwd.getpwnam(UB), pwd.getpwnam(UN)
if pa.pw_uid < 1000 or pb.pw_uid < 1000:
    skip_all("useradd gave uids below 1000 (login.defs UID_MIN?)")


def owner(path):
    st = os.lstat(path)
    return (st.st_uid, st.st_gid)


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


PAM = os.path.exists("/etc/pam.d/login")
backends = '{ driver = "passwd-file"; path = "%(passwd)s"; }'
if PAM:
    # lookups only (no login): the pam backend answers for system accounts
    backends += ', { driver = "pam"; service = "login"; workers = 1; }'

# ------------------------------------------------------------ daemon 1: everything on
d = Daemon(start=False, backends=backends, passwd_lines=[
    "carl@example.test:{PLAIN}pw-carl:%d:%d::::" % (pa.pw_uid, pa.pw_gid),
    "erin@example.test:{PLAIN}pw-erin:%s:::::" % UB,
    "root0@example.test:{PLAIN}pw-root:0:0::::",
    "low@example.test:{PLAIN}pw-low:1:1::::",
    "frank@example.test:{PLAIN}pw-frank:%d:%d::::" % (pa.pw_uid, pa.pw_gid),
])
T = d.dir
mail = os.path.join(T, "mail")
os.makedirs(os.path.join(mail, "example.test"))
os.chmod(mail, 0o755)
# shared by the recipients, like /tmp: each creates its own directory
os.chmod(os.path.join(mail, "example.test"), 0o1777)
bindir, out, mbox, inc = (os.path.join(T, x) for x in ("bin", "out", "mbox", "inc"))
for p in (bindir, out, mbox, inc):
    os.mkdir(p, 0o755)
for p in (out, mbox):
    os.chown(p, pn.pw_uid, pn.pw_gid)
    os.chmod(p, 0o700)
record = os.path.join(bindir, "record")
with open(record, "w") as f:
    f.write("#!/bin/sh\nd=%s\nid -u > $d/$1.uid\nid -g > $d/$1.gid\nid -G > $d/$1.groups\n"
            "env > $d/$1.env\ncat > $d/$1.stdin\n" % out)
os.chmod(record, 0o755)
with open(os.path.join(inc, "list"), "w") as f:
    f.write("# the members\n\ncarl\n\"|%s inc\"\n" % record)
with open(os.path.join(inc, "gw"), "w") as f:
    f.write("carl\n")
os.chmod(os.path.join(inc, "list"), 0o644)
os.chmod(os.path.join(inc, "gw"), 0o664)
box = os.path.join(mbox, "box")
aliases = os.path.join(T, "aliases")
with open(aliases, "w") as f:
    f.write('pipe: "|%s pipe"\n' % record +
            'tempfail: "|exit 75"\n'
            'nouser: "|echo no such mailbox here; exit 67"\n'
            'slow: "|sleep 60"\n'
            'filebox: %s\n' % box +
            'inclist: :include:%s/list\n' % inc +
            'badinc: :include:%s/gw\n' % inc +
            'mixed: carl, "|%s mixed"\n' % record)
os.chmod(aliases, 0o644)
d.relay_extra = ('aliases = "%s";\n'
                 '  allow_alias_include = true; allow_alias_commands = true;\n'
                 '  allow_alias_files = true; alias_user = "%s"; alias_command_timeout = 3;\n'
                 '  delivery = { method = "maildir"; path = "%s/%%d/%%n/Maildir"; };'
                 % (aliases, UN, mail))
d.write_conf()
r = subprocess.run([MSAGATED, "-n", "-c", d.conf], capture_output=True, text=True)
is_(r.returncode, 0, "msagated -n accepts the configuration", r.stdout + r.stderr)
d.start()
md = lambda u: os.path.join(mail, "example.test", u, "Maildir")
log = d.read_log


def proc_status(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            return dict(l.rstrip("\n").split(":\t", 1) for l in f if ":\t" in l)
    except OSError:
        return {}


# -- the delivery helper: `user` with only CAP_SETUID and CAP_SETGID
ru = pwd.getpwnam(d.user)


def capable_now():
    """Processes of the daemon with capabilities that do not run as root
    (the pam backend's helpers in the auth role are root: not ours)."""
    st = {p: proc_status(p) for p in d.pids() if p != d.proc.pid}
    return {p: s for p, s in st.items() if int(s.get("CapEff", "0"), 16) != 0
            and s.get("Uid", "0").split()[0] != "0"}


# the helper may still be dropping to `user` just after start-up (slower
# under the sanitizers): give it a moment
wait_for(lambda: len(capable_now()) == 1, 10)
capable = capable_now()
is_(len(capable), 1, "one process not running as root has capabilities",
    {p: (st.get("Uid"), st.get("CapEff")) for p, st in capable.items()})
for p, st in capable.items():
    is_(st.get("CapEff"), "00000000000000c0", "the helper: CAP_SETUID and CAP_SETGID only")
    is_(st.get("CapPrm"), "00000000000000c0", "nothing more in its permitted set")
    is_(st.get("Uid", "").split(), [str(ru.pw_uid)] * 4, "it runs as `user`", st.get("Uid"))
    like(proc_status(int(st.get("PPid", "0"))).get("Name", ""), r"msagated",
         "a child of the queue role")

# -- Maildir owned by the passwd-file uid/gid
send_mail(d, ["carl@example.test"], "to carl")
ok(wait_for(lambda: len(maildir_files(md("carl"))) == 1), "carl's message delivered",
   log()[-3000:])
f = (maildir_files(md("carl")) or ["/nonexistent"])[0]
is_(owner(f) if os.path.exists(f) else None, (pa.pw_uid, pa.pw_gid),
    "the message file belongs to carl's passwd-file uid/gid")
for p in (os.path.dirname(md("carl")), md("carl")) + tuple(
        os.path.join(md("carl"), s) for s in ("tmp", "new", "cur")):
    ok(os.path.isdir(p) and owner(p) == (pa.pw_uid, pa.pw_gid) and
       stat.S_IMODE(os.lstat(p).st_mode) == 0o700,
       "%s created by carl, mode 0700" % p[len(mail) + 1:])
like((maildir_msgs(md("carl")) or [""])[0],
     r"^Return-Path: <alice@example\.test>\nDelivered-To: carl@example\.test\n.*Subject: to carl",
     "Return-Path, Delivered-To and the message")
like(log(), r"to=<carl@example\.test> relay=maildir delay=\d+ status=sent", "logged as sent")

# -- uid by name without gid: the account's primary group
send_mail(d, ["erin@example.test"], "to erin")
ok(wait_for(lambda: len(maildir_files(md("erin"))) == 1), "erin's message delivered",
   log()[-3000:])
f = (maildir_files(md("erin")) or ["/nonexistent"])[0]
is_(owner(f) if os.path.exists(f) else None, (pb.pw_uid, pb.pw_gid),
    "uid given by name, no gid: the account's uid and primary group")

# -- no uid in the userdb: written as `user`, as before
send_mail(d, ["bob@example.test"], "to bob")
ok(wait_for(lambda: len(maildir_files(md("bob"))) == 1), "bob's message delivered",
   log()[-3000:])
f = (maildir_files(md("bob")) or ["/nonexistent"])[0]
is_(owner(f) if os.path.exists(f) else None, (ru.pw_uid, ru.pw_gid),
    "no uid in the userdb: owned by the daemon's user")

# -- PAM: a system account
if PAM:
    send_mail(d, ["%s@example.test" % UB], "to the system account")
    ok(wait_for(lambda: len(maildir_files(md(UB))) == 1), "system account's message delivered",
       log()[-3000:])
    f = (maildir_files(md(UB)) or ["/nonexistent"])[0]
    is_(owner(f) if os.path.exists(f) else None, (pb.pw_uid, pb.pw_gid),
        "PAM backend: owned by the system account (getpwnam)")
else:
    ok(True, "# SKIP no /etc/pam.d/login for the pam backend")

# -- refused uids
send_mail(d, ["root0@example.test", "low@example.test"], "refused uids")
ok(d.wait_log(r"to=<root0@example\.test> relay=maildir delay=\d+ status=deferred "
              r"\(4\.3\.5 refusing to deliver as uid 0 \(root\)\)", 15),
   "uid 0: deferred, refused", log()[-3000:])
ok(d.wait_log(r"to=<low@example\.test> relay=maildir delay=\d+ status=deferred "
              r"\(4\.3\.5 uid 1 is below relay\.delivery\.min_uid \(1000\)\)", 15),
   "uid 1: below min_uid, deferred", log()[-3000:])
ok(not os.path.exists(os.path.dirname(md("root0"))) and
   not os.path.exists(os.path.dirname(md("low"))), "nothing written for them")
like(d.ctl("queue", "list").stdout, r"root0@example\.test\s+\(deferred.*uid 0",
     "queue list shows why")

# -- another user got there first: in the shared (sticky) directory, a
# directory for frank made beforehand by erin's account, holding a symlink
# as Maildir: frank's mail is deferred, nothing is written through it
squat = os.path.dirname(md("frank"))
os.mkdir(squat, 0o777)
os.chmod(squat, 0o777)
os.chown(squat, pb.pw_uid, pb.pw_gid)
os.symlink(os.path.join(T, "out"), md("frank"))
send_mail(d, ["frank@example.test"], "to frank")
ok(d.wait_log(r"to=<frank@example\.test> relay=maildir delay=\d+ status=deferred "
              r"\(4\.3\.0 cannot open or create the Maildir in .*belongs to another user"),
   "a mailbox path through another user's directory is refused (deferred 4.3.0)",
   log()[-1500:])
ok(not os.path.exists(os.path.join(T, "out", "new")),
   "nothing was written through the other user's directory or its link")

# -- a command, as alias_user, message on stdin
send_mail(d, ["pipe@example.test"], "to a pipe")
ok(wait_for(lambda: os.path.exists(os.path.join(out, "pipe.stdin")) and
            "Subject: to a pipe" in read(os.path.join(out, "pipe.stdin"))),
   "the command ran", log()[-3000:])
is_(read(os.path.join(out, "pipe.uid")).strip(), str(pn.pw_uid), "it ran as alias_user's uid")
is_(read(os.path.join(out, "pipe.gid")).strip(), str(pn.pw_gid), "with alias_user's gid")
is_(read(os.path.join(out, "pipe.groups")).strip(), str(pn.pw_gid), "and no other group")
stdin = read(os.path.join(out, "pipe.stdin"))
like(stdin, r"^From alice@example\.test  \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}\n"
     r"Return-Path: <alice@example\.test>\nDelivered-To: pipe@example\.test\n",
     "stdin: From_ line, Return-Path, Delivered-To")
like(stdin, r"\nSubject: to a pipe\n[^\r]*\n\nhello\n$", "then the message with LF line ends")
env = read(os.path.join(out, "pipe.env"))
like(env, r"(?m)^SENDER=alice@example\.test$", "SENDER in the environment")
like(env, r"(?m)^RECIPIENT=pipe@example\.test$", "RECIPIENT in the environment")
like(env, r"(?m)^USER=%s$" % UN, "USER is alias_user")
ok(d.wait_log(r"to=<\|%s pipe> orig_to=<pipe@example\.test> relay=command delay=\d+ "
              r"status=sent \(2\.0\.0 delivered to command\)" % re.escape(record), 10),
   "logged: relay=command, status=sent", log()[-2000:])

# -- exit 75: retried; exit 67: bounced with the output
send_mail(d, ["tempfail@example.test"], "tempfail")
ok(d.wait_log(r"orig_to=<tempfail@example\.test> relay=command delay=\d+ status=deferred "
              r"\(4\.3\.0 command exited with status 75 \(temporary failure\)\)", 15),
   "exit 75: deferred", log()[-2000:])
like(d.ctl("queue", "list").stdout, r"tempfail@example\.test\s+\(deferred", "still queued")
send_mail(d, ["nouser@example.test"], "exit 67")
ok(d.wait_log(r"orig_to=<nouser@example\.test> relay=command delay=\d+ status=bounced "
              r"\(5\.1\.1 command exited with status 67 \(user unknown\): no such mailbox here\)",
              15), "exit 67: bounced", log()[-2000:])
bounce = lambda: [m for m in maildir_msgs(md("alice")) if "Subject: exit 67" in m
                  and "multipart/report" in m]
ok(wait_for(lambda: bounce() != []), "the bounce reaches the sender", log()[-2000:])
b = (bounce() or [""])[0]
like(b, r"Final-Recipient: rfc822; nouser@example\.test\r?\nAction: failed\r?\nStatus: 5\.1\.1",
     "the report names the alias, not the command")
ok(record not in b and "exit 67" not in b.split("Subject: exit 67")[0],
   "the command itself is not told to the sender")

# -- time limit
t0 = time.time()
send_mail(d, ["slow@example.test"], "slow")
ok(d.wait_log(r"orig_to=<slow@example\.test> relay=command delay=\d+ status=deferred "
              r"\(4\.3\.0 command time limit exceeded \(3 s\)\)", 20),
   "the time limit defers", log()[-2000:])
ok(time.time() - t0 < 15, "after about 3 s (%.1f s)" % (time.time() - t0))
time.sleep(0.5)
r = subprocess.run(["pgrep", "-u", UN, "-f", "sleep 60"], capture_output=True, text=True)
is_(r.stdout.strip(), "", "the command was killed")

# -- a file: mbox, as alias_user
send_mail(d, ["filebox@example.test"], "first in the box")
send_mail(d, ["filebox@example.test"], "second in the box", body="From the start\r\nend\r\n")
# the log line follows the whole append (the file may be read mid-write before it)
ok(wait_for(lambda: len(re.findall(r"orig_to=<filebox@example\.test> relay=file delay=\d+ "
                                   r"status=sent", log())) == 2),
   "two deliveries to the file logged", log()[-2000:])
is_(read(box).count("\nDelivered-To: filebox@example.test\n"), 2,
    "two messages appended to the file")
if os.path.exists(box):
    is_(owner(box), (pn.pw_uid, pn.pw_gid), "the file belongs to alias_user")
    is_(oct(stat.S_IMODE(os.lstat(box).st_mode)), "0o600", "created with mode 0600")
mb = read(box)
is_(len(re.findall(r"(?m)^From alice@example\.test  ", mb)), 2, "two From_ lines")
like(mb, r"\n>From the start\nend\n\n", "From quoted, an empty line after the message")
ok(mb.startswith("From alice@example.test  "), "the file starts with a From_ line")

# -- :include:
send_mail(d, ["inclist@example.test"], "to the include list")
ok(wait_for(lambda: any("to the include list" in m for m in maildir_msgs(md("carl")))),
   "include: carl is on the list", log()[-2000:])
ok(wait_for(lambda: "to the include list" in read(os.path.join(out, "inc.stdin"))),
   "include: the command in it ran", log()[-2000:])
send_mail(d, ["badinc@example.test"], "bad include")
ok(d.wait_log(r"to=<badinc@example\.test> relay=none delay=\d+ status=deferred \(4\.3\.5 "
              r"alias expansion failed: \S+/gw: include file refused: writable by group", 15),
   "a group-writable include file is refused (deferred)", log()[-2000:])
send_mail(d, ["mixed@example.test"], "mixed list")
ok(wait_for(lambda: any("mixed list" in m for m in maildir_msgs(md("carl"))) and
            "mixed list" in read(os.path.join(out, "mixed.stdin"))),
   "an alias with a user and a command: both delivered", log()[-2000:])
d.stop()

# ------------------------------------------------------------ daemon 2: the defaults
closed = free_port()
d2 = Daemon(start=False)
mail2 = os.path.join(d2.dir, "mail")
os.makedirs(os.path.join(mail2, "example.test"))
os.chmod(mail2, 0o755)
os.chmod(os.path.join(mail2, "example.test"), 0o1777)
aliases2 = os.path.join(d2.dir, "aliases")
with open(aliases2, "w") as f:
    f.write('pipe2: "|%s refused"\n' % record +
            'file2: %s/refused\n' % mbox +
            'inc2: :include:%s/list\n' % inc +
            'mixed2: bob, "|%s refused2"\n' % record)
os.chmod(aliases2, 0o644)
d2.relay_extra = ('aliases = "%s";\n'
                  '  delivery = { method = "maildir"; path = "%s/%%d/%%n/Maildir"; };\n'
                  '  relayhost = "[127.0.0.1]:%d"; relayhost_tls = "none";\n'
                  '  retry_min = 1; retry_max = 1; delay_warning = 3;'
                  % (aliases2, mail2, closed))
d2.write_conf()
d2.start()
md2 = lambda u: os.path.join(mail2, "example.test", u, "Maildir")
log2 = d2.read_log

refused = send_mail(d2, ["pipe2@example.test", "file2@example.test", "inc2@example.test",
                    "mixed2@example.test"], "refused targets")
is_(refused, {}, "RCPT accepted for every alias (the names exist): the refusal is a bounce")
for name, what in (("pipe2", r"mail to commands is restricted \(relay\.allow_alias_commands\)"),
                   ("file2", r"mail to files is restricted \(relay\.allow_alias_files\)"),
                   ("inc2", r"mail to :include: lists is restricted \(relay\.allow_alias_include\)"),
                   ("mixed2", r"mail to commands is restricted")):
    ok(d2.wait_log(r"orig_to=<%s@example\.test> relay=\w+ delay=\d+ status=bounced \(5\.7\.1 %s"
                   % (name, what), 15), "%s: bounced 5.7.1" % name, log2()[-2000:])
ok(wait_for(lambda: any("Subject: refused targets" in m for m in maildir_msgs(md2("bob")))),
   "mixed2: bob still gets the message", log2()[-2000:])
bounces = lambda: [m for m in maildir_msgs(md2("alice")) if "Subject: refused targets" in m
                   and "Action: failed" in m]
ok(wait_for(lambda: bounces() != []), "one bounce to the sender", log2()[-2000:])
b = (bounces() or [""])[0]
for name in ("pipe2", "file2", "inc2", "mixed2"):
    like(b, r"Final-Recipient: rfc822; %s@example\.test\r?\nAction: failed\r?\nStatus: 5\.7\.1"
         % name, "the bounce lists %s with 5.7.1" % name)
ok(not any(os.path.exists(os.path.join(out, "refused%s.stdin" % s)) for s in ("", "2")) and
   not os.path.exists(os.path.join(mbox, "refused")), "nothing was run or written")

# -- the delay warning: once
t0 = time.time()
send_mail(d2, ["someone@example.org"], "waiting for the smarthost")
delayed = lambda: [m for m in maildir_msgs(md2("alice"))
                   if "Subject: waiting for the smarthost" in m and "Action: delayed" in m]
ok(d2.wait_log(r"to=<someone@example\.org> relay=smtp:\[127\.0\.0\.1\]:%d delay=\d+ "
               r"status=deferred" % closed, 10), "the smarthost is down: deferred",
   log2()[-2000:])
ok(wait_for(lambda: delayed() != [], 20), "a delay warning reaches the sender", log2()[-2000:])
ok(time.time() - t0 >= 2.5, "not before relay.delay_warning (%.1f s)" % (time.time() - t0))
w = (delayed() or [""])[0]
like(w, r"(?m)^Return-Path: <>", "from the null sender")
like(w, r"report-type=delivery-status", "an RFC 3464 report")
like(w, r"Final-Recipient: rfc822; someone@example\.org\r?\nAction: delayed\r?\nStatus: 4\.",
     "Action: delayed with a 4.x.x status")
like(w, r"Will-Retry-Until: ", "Will-Retry-Until")
n_before = len(re.findall(r"to=<someone@example\.org> \S+ delay=\d+ status=deferred", log2()))
ok(wait_for(lambda: len(re.findall(r"to=<someone@example\.org> \S+ delay=\d+ status=deferred",
                                   log2())) >= n_before + 3, 20),
   "retried several times after the warning", log2()[-2000:])
time.sleep(1)
is_(len(delayed()), 1, "still exactly one delay warning")
is_(len(re.findall(r"sender delay notification", log2())), 1, "logged once")
d2.stop()
d2.start()
time.sleep(3)
is_(len(delayed()), 1, "and none more after a restart")
d2.stop()

# ------------------------------------------------------------ msagated -n
bad = os.path.join(d2.dir, "bad.conf")
with open(d2.conf) as f:
    conf = f.read()
conf = conf.replace("relay = {", 'relay = {\n  alias_user = "root";\n'
                    '  allow_alias_commands = true;\n  alias_command_timeout = 0.5;', 1)
conf = conf.replace('method = "maildir";', 'method = "maildir"; min_uid = 0;', 1)
with open(bad, "w") as f:
    f.write(conf)
r = subprocess.run([MSAGATED, "-n", "-c", bad], capture_output=True, text=True)
is_(r.returncode, 1, "msagated -n refuses bad values")
like(r.stdout, r"%s:\d+: relay\.alias_user must name an unprivileged account" % re.escape(bad),
     "alias_user root: FILE:LINE", r.stdout)
like(r.stdout, r"%s:\d+: relay\.alias_command_timeout must be at least 1 second" % re.escape(bad),
     "alias_command_timeout below 1 s: FILE:LINE", r.stdout)
like(r.stdout, r"%s:\d+: \"min_uid\" = 0 is out of range" % re.escape(bad),
     "min_uid 0: FILE:LINE", r.stdout)
conf2 = conf.replace('alias_user = "root";', 'alias_user = "no-such-user-%s";' % tag)
with open(bad, "w") as f:
    f.write(conf2)
r = subprocess.run([MSAGATED, "-n", "-c", bad], capture_output=True, text=True)
like(r.stdout, r"%s:\d+: relay\.alias_user \"no-such-user-%s\" does not exist"
     % (re.escape(bad), tag), "an unknown alias_user: FILE:LINE", r.stdout)
done()
