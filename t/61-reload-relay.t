#!/usr/bin/env python3
# 61-reload-relay.t - SIGHUP applies the relay settings in the queue role
# too, not only in the SMTP processes: after a reload that adds a local
# domain, an aliases file and a relayhost (Postfix's smtp-sink on
# loopback), mail is delivered by the new settings - a message deferred
# before the reload goes to the new relayhost on `queue flush`, an alias
# added by the reload is expanded, the new local domain gets Maildir
# delivery - with the configuration file readable by root only when we
# are root (the queue role runs as `user`: the parent hands it the file).
# Keys of the delivery helper keep their start values, with a log line; a
# reload that breaks the delivery settings keeps the running ones.
import os, re, sys, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from msagatetest import *
from smtpsink import SINK, Sink

if not os.access(SINK, os.X_OK):
    skip_all("no %s (postfix package)" % SINK)

users = dict(Daemon.USERS)
users["dave@new.test"] = "dave-secret-1"
users["carol@new.test"] = "carol-secret-1"
d = Daemon(start=False, users=users)
mail = d.deliver_to_maildirs()
base_relay = d.relay_extra
d.start()
if os.geteuid() == 0:
    os.chown(d.conf, 0, 0)
    os.chmod(d.conf, 0o600)
sink = Sink(d, free_port())
sink.start()
import atexit
atexit.register(sink.stop)


def maildir_msgs(domain, user):
    new = os.path.join(mail, domain, user, "Maildir", "new")
    out = []
    try:
        for n in sorted(os.listdir(new)):
            with open(os.path.join(new, n), "rb") as f:
                out.append(f.read().decode("utf-8", "replace"))
    except OSError:
        pass
    return out


def send(rcpt, subject):
    """From inside mynetworks on the relay port; returns the queue id."""
    s = d.smtp("relay")
    s.cmd("EHLO client.example.test")
    like(s.cmd("MAIL FROM:<sender@example.test>"), r"^250", "MAIL for %s" % rcpt)
    like(s.cmd("RCPT TO:<%s>" % rcpt), r"^250", "RCPT %s accepted" % rcpt)
    s.cmd("DATA")
    r = s.cmd("Subject: %s\r\n\r\nbody of %s\r\n." % (subject, subject))
    like(r, r"^250 2\.0\.0", "message to %s queued" % rcpt)
    s.cmd("QUIT")
    s.close()
    m = re.search(r"queued as ([0-9A-F]+)", r)
    return m.group(1) if m else "none"


def write_conf(relay_extra, domains='"example.test", "new.test"'):
    d.relay_extra = base_relay + "\n  " + relay_extra
    d.write_conf()      # the mode and owner of the file stay as they are
    with open(d.conf) as f:
        text = f.read()
    with open(d.conf, "w") as f:
        f.write(text.replace('local_domains = [ "example.test" ];',
                             "local_domains = [ %s ];" % domains))


def wait_for(pred, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


# before: no relayhost, so a foreign recipient waits in the queue
qid_far = send("someone@far.test", "before the reload")
ok(d.wait_log(r"%s: to=<someone@far\.test>.*status=deferred" % qid_far),
   "without a relayhost the foreign recipient is deferred", d.read_log()[-1500:])

aliases = os.path.join(d.dir, "aliases")
with open(aliases, "w") as f:
    f.write("team: alice, carol@new.test\nfiler: /tmp/msagate-t-should-not-exist\n")
os.chmod(aliases, 0o644)
write_conf('aliases = "%s";\n'
           '  relayhost = "[127.0.0.1]:%d";\n'
           '  retry_min = 300;' % (aliases, sink.port))
r = d.ctl("reload")
is_(r.returncode, 0, "msagatectl reload exits 0", r.stderr)
ok(d.wait_log(r"queue: reloaded: delivery to local domains by maildir, other domains "
              r"by smtp:\[127\.0\.0\.1\]:%d, \d+ workers, retries 300\.\." % sink.port),
   "the queue role logs its new delivery settings", d.read_log()[-2000:])
ok("changes only on a restart" not in d.read_log(),
   "nothing is said to need a restart for these keys")

# the deferred message goes to the new relayhost
r = d.ctl("queue", "flush")
is_(r.returncode, 0, "queue flush")
ok(wait_for(lambda: any("before the reload" in m for m in sink.messages())),
   "the message deferred before the reload reached the new relayhost",
   d.read_log()[-2000:])
ok(d.wait_log(r"%s: to=<someone@far\.test> relay=smtp:\[127\.0\.0\.1\]:%d.*status=sent"
              % (qid_far, sink.port)), "and was logged as sent there")

# the alias from the new aliases file, to the old and the new local domain
send("team@example.test", "to the team")
ok(wait_for(lambda: any("to the team" in m for m in maildir_msgs("example.test", "alice"))),
   "an alias added by the reload is expanded (alice@example.test)", d.read_log()[-2000:])
ok(wait_for(lambda: any("to the team" in m for m in maildir_msgs("new.test", "carol"))),
   "... and its target in the new local domain gets Maildir delivery")
ok(not os.path.exists(os.path.join(mail, "example.test", "team")),
   "no Maildir named after the alias itself")

# a new local domain directly
send("dave@new.test", "new domain")
ok(wait_for(lambda: any("new domain" in m for m in maildir_msgs("new.test", "dave"))),
   "mail to the local domain added by the reload is delivered locally")
ok(not any("new domain" in m for m in sink.messages()),
   "and not relayed to the relayhost")

# a key of the delivery helper keeps its start value, and says so
write_conf('aliases = "%s";\n'
           '  relayhost = "[127.0.0.1]:%d";\n'
           '  allow_alias_files = true;' % (aliases, sink.port))
d.ctl("reload")
ok(d.wait_log(r"queue: reload: relay\.allow_alias_commands, allow_alias_files, "
              r"alias_user, alias_command_timeout and delivery\.min_uid change only on a "
              r"restart"), "a helper key changed by a reload: the log says it needs a restart")
send("filer@example.test", "to a file")
ok(d.wait_log(r"to=<filer@example\.test>.*status=bounced.*allow_alias_files"),
   "mail to a file alias is still refused (the helper's start value)",
   d.read_log()[-2000:])
ok(not os.path.exists("/tmp/msagate-t-should-not-exist"), "nothing written to the file")

# a configuration with an error: msagated keeps the running one everywhere
write_conf('relayhost = "[127.0.0.1]:%d";\n  retry_min = "soon";' % sink.port,
           domains='"example.test"')
before = d.read_log().count("queue: reloaded:")
import signal
os.kill(d.proc.pid, signal.SIGHUP)      # msagatectl would refuse the file itself
ok(d.wait_log(r"configuration has errors; keeping the running one"), "msagated says so")
time.sleep(1)
log = d.read_log()
is_(log.count("queue: reloaded:"), before,
    "a configuration msagated refuses does not reach the queue role")
send("dave@new.test", "after a refused reload")
ok(wait_for(lambda: any("after a refused reload" in m for m in maildir_msgs("new.test", "dave"))),
   "the running settings stay in force")

# a changed run_dir waits for a restart everywhere: lookups and deliveries
# keep using the running sockets
write_conf('relayhost = "[127.0.0.1]:%d";' % sink.port)
with open(d.conf) as f:
    text = f.read()
newrun = os.path.join(d.dir, "run2")
os.mkdir(newrun)
with open(d.conf, "w") as f:
    f.write(text.replace('run_dir = "%s";' % d.run_dir, 'run_dir = "%s";' % newrun))
os.kill(d.proc.pid, signal.SIGHUP)      # msagatectl would look for the pid in run2
ok(d.wait_log(r"listeners, sockets and directories change only on restart"),
   "a changed run_dir: msagated says it needs a restart")
time.sleep(1)
send("dave@new.test", "after a run_dir change")
ok(wait_for(lambda: any("after a run_dir change" in m for m in maildir_msgs("new.test", "dave"))),
   "local mail is still accepted and delivered (the running sockets stay)",
   d.read_log()[-2000:])

is_(d.stop(), 0, "msagated stops cleanly")
ok(not re.search(r"AddressSanitizer|runtime error", d.read_log()), "no sanitizer reports")
done()
