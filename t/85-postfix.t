#!/usr/bin/env python3
# 85-postfix.t - a real Postfix 3.7 smtpd with smtpd_sasl_type = dovecot and
# smtpd_sasl_path pointing at msagate's auth socket authenticates swaks
# users with PLAIN and LOGIN and refuses wrong passwords; and the same
# Postfix, as an MTA, delivers mail for example.test to msagate's relay
# listener (opportunistic STARTTLS from Postfix's smtp client), where it
# lands in the recipient's Maildir, and relays other mail through msagate's
# submission port with STARTTLS + AUTH as a satellite would; and Postfix
# as msagate's smarthost (relayhost with STARTTLS required and AUTH)
# (root only: runs a private Postfix instance).
import os, pwd, grp, shutil, socket, subprocess, sys, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from msagatetest import *

if os.geteuid() != 0:
    skip_all("needs root to run a private Postfix instance")
if not (have("postfix") and have("swaks")):
    skip_all("postfix or swaks not installed")
try:
    grp.getgrnam("postfix")
except KeyError:
    skip_all("no postfix group")

# the main auth socket is reachable by Postfix's smtpd through its group;
# a second listener (auth.listeners) sits inside the Postfix instance's
# private/ directory, owned by postfix, as it would in /var/spool/postfix
d = Daemon(auth_extra='socket_group = "postfix";', start=False)
pf = os.path.join(d.dir, "pf")
os.makedirs(os.path.join(pf, "private"))
pf_auth = os.path.join(pf, "private", "auth")
d.auth_extra += ('\n  listeners = ( { path = "%s"; mode = 0600; user = "postfix"; '
                 'group = "postfix"; } );' % pf_auth)
mail = d.deliver_to_maildirs()
d.start()
alice, apw = "alice@example.test", d.users["alice@example.test"]
st = os.stat(d.auth_socket)
is_(grp.getgrgid(st.st_gid).gr_name, "postfix", "auth.socket_group sets the socket's group")
is_(oct(st.st_mode & 0o777), "0o660", "auth.socket_mode sets its mode")

st = os.stat(pf_auth)
is_((pwd.getpwuid(st.st_uid).pw_name, oct(st.st_mode & 0o777)), ("postfix", "0o600"),
    "auth.listeners: second socket with its own owner and mode")
for sub in ("conf", "queue", "data"):
    os.makedirs(os.path.join(pf, sub))
os.chown(os.path.join(pf, "data"), pwd.getpwnam("postfix").pw_uid, -1)
port = free_port()
with open(os.path.join(pf, "conf", "main.cf"), "w") as f:
    f.write("""compatibility_level = 3.6
queue_directory = {pf}/queue
data_directory = {pf}/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
mail_owner = postfix
myhostname = pf.example.test
mydomain = example.test
myorigin = $myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
mynetworks = 127.0.0.2/32
maillog_file_prefixes = /tmp
maillog_file = {pf}/postfix.log
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = {sock}
smtpd_tls_security_level = may
smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
smtpd_tls_loglevel = 1
smtpd_relay_restrictions = permit_sasl_authenticated, reject
default_transport = discard
transport_maps = inline:{{example.test=smtp:[127.0.0.1]:{p25}, remote.test=smtp:[127.0.0.1]:{p587}}}
smtp_tls_security_level = may
smtp_tls_loglevel = 1
smtp_sasl_auth_enable = yes
smtp_sasl_password_maps = inline:{{[127.0.0.1]:{p587}={user}:{pw}}}
smtp_sasl_security_options = noanonymous
smtp_sasl_tls_security_options = noanonymous
""".format(pf=pf, sock=pf_auth, p25=d.ports["relay"], p587=d.ports["submission"],
           cert=d.cert, key=d.key,
           user="alice@example.test", pw=d.users["alice@example.test"]))
with open(os.path.join(pf, "conf", "master.cf"), "w") as f:
    f.write("127.0.0.1:%d inet n - n - - smtpd\n" % port)
    for line in ("pickup unix n - n 60 1 pickup", "cleanup unix n - n - 0 cleanup",
                 "qmgr unix n - n 300 1 qmgr", "rewrite unix - - n - - trivial-rewrite",
                 "bounce unix - - n - 0 bounce", "defer unix - - n - 0 bounce",
                 "trace unix - - n - 0 bounce", "verify unix - - n - 1 verify",
                 "proxymap unix - - n - - proxymap", "showq unix n - n - - showq",
                 "error unix - - n - - error", "retry unix - - n - - error",
                 "discard unix - - n - - discard", "anvil unix - - n - 1 anvil",
                 "smtp unix - - n - - smtp", "tlsmgr unix - - n 1000? 1 tlsmgr",
                 "scache unix - - n - 1 scache", "postlog unix-dgram n - n - 1 postlogd"):
        f.write(line + "\n")
os.chmod(pf, 0o755)
r = subprocess.run(["postfix", "-c", os.path.join(pf, "conf"), "start"], capture_output=True, text=True)
ok(r.returncode == 0, "private Postfix instance started", r.stdout + r.stderr)


def pflog():
    try:
        return open(os.path.join(pf, "postfix.log")).read()
    except OSError:
        return ""


try:
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            break
        except OSError:
            time.sleep(0.1)
    s = Session("127.0.0.1", port)
    r = s.cmd("EHLO c.example")
    like(r, r"250-AUTH PLAIN LOGIN", "Postfix advertises the mechanisms it read from our socket", pflog()[-2000:])
    s.close()
    for mech in ("PLAIN", "LOGIN"):
        r = subprocess.run(["swaks", "-4", "--server", "127.0.0.1:%d" % port, "--auth", mech,
                            "--auth-user", alice, "--auth-password", apw, "--from", alice,
                            "--to", "x@example.org", "--timeout", "20"],
                           capture_output=True, text=True, timeout=60)
        like(r.stdout, r"<-  235 ", "Postfix + msagate socket: AUTH %s succeeds" % mech, r.stdout[-1500:])
        like(r.stdout, r"<-  250 2\.0\.0 Ok: queued", "and Postfix relays for the authenticated user (%s)" % mech)
    r = subprocess.run(["swaks", "-4", "--server", "127.0.0.1:%d" % port, "--auth", "PLAIN",
                        "--auth-user", alice, "--auth-password", "Wr0ngPass-x", "--from", alice,
                        "--to", "x@example.org", "--timeout", "20"],
                       capture_output=True, text=True, timeout=60)
    like(r.stdout, r"<\*\* 535 5\.7\.8", "wrong password through Postfix: 535 5.7.8")
    r = subprocess.run(["swaks", "-4", "--server", "127.0.0.1:%d" % port, "--from", alice,
                        "--to", "x@example.org", "--timeout", "20"],
                       capture_output=True, text=True, timeout=60)
    like(r.stdout, r"<\*\* 554 5\.7\.1", "without AUTH Postfix refuses to relay")
    ok(d.wait_log(r"auth ok: rip=127\.0\.0\.1 user=alice@example\.test mech=PLAIN service=smtp"),
       "msagate logged Postfix's PLAIN login with the client address")
    ok(re.search(r"sasl_method=LOGIN, sasl_username=alice@example\.test", pflog()),
       "Postfix logged the LOGIN user it got from msagate")

    # Postfix as the sending MTA: mail for example.test goes to our relay listener
    r = subprocess.run(["swaks", "-4", "--server", "127.0.0.1:%d" % port, "--auth", "PLAIN",
                        "--auth-user", alice, "--auth-password", apw, "--from", alice,
                        "--to", "bob@example.test", "--h-Subject", "via postfix",
                        "--timeout", "20"], capture_output=True, text=True, timeout=60)
    like(r.stdout, r"<-  250 2\.0\.0 Ok: queued", "Postfix takes a message for bob@example.test")
    bob_box = os.path.join(mail, "example.test", "bob", "Maildir")
    ok(wait_for(lambda: len(maildir_msgs(bob_box)) == 1, 30),
       "Postfix delivered it to msagate's relay port, and it is in bob's Maildir",
       pflog()[-2000:] + d.read_log()[-2000:])
    m = (maildir_msgs(bob_box) or [""])[0]
    like(m, r"Subject: via postfix", "the message itself")
    like(m, r"Received: from pf\.example\.test \(\[127\.0\.0\.1\]\)\s+by mail\.example\.test \(msagate\) "
            r"with ESMTPS", "msagate's Received: line: from Postfix, over TLS (ESMTPS)")
    ok(re.search(r"TLS connection established to 127\.0\.0\.1\[127\.0\.0\.1\]:%d" % d.ports["relay"], pflog()),
       "Postfix's smtp client used STARTTLS to msagate", pflog()[-2000:])
    ok(re.search(r"to=<bob@example\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d, .*status=sent" % d.ports["relay"], pflog()),
       "Postfix logged status=sent to msagate", pflog()[-2000:])

    # Postfix as a satellite relaying through our submission port: STARTTLS,
    # AUTH (its Cyrus SASL client) as alice, then pipelined MAIL/RCPT/DATA
    r = subprocess.run(["swaks", "-4", "--server", "127.0.0.1:%d" % port, "--auth", "PLAIN",
                        "--auth-user", alice, "--auth-password", apw, "--from", alice,
                        "--to", "someone@remote.test", "--h-Subject", "satellite",
                        "--timeout", "20"], capture_output=True, text=True, timeout=60)
    like(r.stdout, r"<-  250 2\.0\.0 Ok: queued", "Postfix takes a message for someone@remote.test")
    ok(wait_for(lambda: re.search(r"to=<someone@remote\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d, "
                                  r".*status=sent \(250 2\.0\.0 Ok: queued as" % d.ports["submission"],
                                  pflog()), 30),
       "Postfix relayed it through msagate's submission port (status=sent)", pflog()[-2000:])
    ok(d.wait_log(r"queued: qid=[0-9A-F]+ from=<alice@example\.test> nrcpt=1 size=\d+ "
                  r"user=alice@example\.test"),
       "msagate queued it for the authenticated user alice", d.read_log()[-2000:])

    # Postfix as msagate's smarthost: msagate's onward client with STARTTLS
    # required and AUTH (alice, checked by Postfix through our own socket)
    # (the satellite's message for remote.test is still queued here, with no
    # route: it would loop through Postfix back to us; take it out first)
    for q in d.queue_files():
        d.ctl("queue", "delete", q)
    plain_login = r"sasl_method=PLAIN, sasl_username=alice@example\.test"
    n_plain = len(re.findall(plain_login, pflog()))
    cred = os.path.join(d.dir, "relay-credentials")
    with open(cred, "w") as f:
        f.write("%s:%s\n" % (alice, apw))
    chown_run_user(cred, d.user)
    os.chmod(cred, 0o600)
    d.stop()
    d.relay_extra += ('\n  relayhost = "[127.0.0.1]:%d";\n  relayhost_tls = "required";'
                      '\n  relayhost_credentials = "%s";' % (port, cred))
    d.write_conf()
    d.start()
    send_mail(d, ["far@far.test"], "to the smarthost")
    ok(d.wait_log(r"to=<far@far\.test> relay=smtp:\[127\.0\.0\.1\]:%d delay=\d+ status=sent "
                  r"\(2\.0\.0 250 2\.0\.0 Ok: queued as" % port, 30),
       "msagate relayed through Postfix as its smarthost (STARTTLS, AUTH)", d.read_log()[-2000:])
    ok(re.search(r"Anonymous TLS connection established from localhost\[127\.0\.0\.1\]", pflog()),
       "over TLS", pflog()[-2000:])
    ok(len(re.findall(plain_login, pflog())) == n_plain + 1,
       "Postfix saw msagate's AUTH PLAIN as alice", pflog()[-2000:])
    ok(wait_for(lambda: re.search(r"to=<far@far\.test>, relay=none, .*status=sent",
                                  pflog()), 20),
       "and Postfix took it (discarded there)", pflog()[-2000:])
finally:
    subprocess.run(["postfix", "-c", os.path.join(pf, "conf"), "stop"], capture_output=True)
    time.sleep(0.5)
d.stop()
done()
