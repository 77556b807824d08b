#!/usr/bin/env python3
# 12-tls-ecdsa.t - an ECDSA (P-256) certificate works as tls.cert/tls.key:
# msagated -n accepts it (and refuses it with an RSA key), real clients
# (python ssl, openssl s_client, swaks) get the ECDSA certificate and can
# authenticate and submit over STARTTLS and implicit TLS.
import os, re, smtplib, ssl, subprocess, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from msagatetest import *

d = Daemon(start=False)
subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-keyout", d.key, "-out", d.cert, "-days", "2",
                "-subj", "/CN=mail.example.test"], check=True, capture_output=True)
if os.geteuid() == 0:
    os.chmod(d.key, 0o600)
r = subprocess.run([MSAGATED, "-n", "-c", d.conf], capture_output=True, text=True)
is_(r.returncode, 0, "msagated -n accepts an ECDSA certificate and key", r.stdout + r.stderr)

# a mismatched pair (ECDSA certificate, RSA key) is refused
rsa_key = os.path.join(d.dir, "rsa-key.pem")
subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-out", rsa_key], check=True, capture_output=True)
bad = open(d.conf).read().replace(d.key, rsa_key)
bad_conf = os.path.join(d.dir, "bad.conf")
open(bad_conf, "w").write(bad)
r = subprocess.run([MSAGATED, "-n", "-c", bad_conf], capture_output=True, text=True)
is_(r.returncode, 1, "an ECDSA certificate with an RSA key is refused by -n")
like(r.stdout, r"does not match", "the mismatch is named")

d.start()
alice, apw = "alice@example.test", d.users["alice@example.test"]

# python ssl over STARTTLS: the peer certificate is the ECDSA one
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP("127.0.0.1", d.ports["submission"], timeout=10)
s.starttls(context=ctx)
der = s.sock.getpeercert(binary_form=True)
cipher = s.sock.cipher()
p = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-text"], input=der,
                   capture_output=True)
like(p.stdout.decode(), r"Public Key Algorithm: id-ecPublicKey", "STARTTLS presents the ECDSA certificate")
s.login(alice, apw)
code, resp = s.docmd("MAIL FROM:<%s>" % alice)
is_(code, 250, "AUTH over an ECDSA STARTTLS session, then MAIL accepted")
s.rcpt("someone@example.org")
code, resp = s.data(b"Subject: ecdsa\r\n\r\nhello\r\n")
is_(code, 250, "message queued over the ECDSA session (%s)" % (cipher,))
s.quit()

# openssl s_client on the implicit-TLS port
r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % d.ports["smtps"],
                    "-brief"], input=b"QUIT\r\n", capture_output=True, timeout=20)
out = (r.stdout + r.stderr).decode(errors="replace")
like(out, r"(?i)Peer signature type: ecdsa|ECDSA", "s_client on the implicit-TLS port sees an ECDSA signature", out[-600:])

# swaks end to end
if have("swaks"):
    r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(d.ports["submission"]), "--tls",
                        "--auth", "PLAIN", "--auth-user", alice, "--auth-password", apw,
                        "--from", alice, "--to", "friend@example.org", "--silent", "2"],
                       capture_output=True, text=True, timeout=30)
    is_(r.returncode, 0, "swaks STARTTLS + AUTH with the ECDSA certificate", r.stdout + r.stderr)
else:
    ok(False, "swaks is installed (scripts/install-deps)")
d.stop()
done()
