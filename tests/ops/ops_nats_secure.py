#!/usr/bin/env python3
"""tests/ops/ops_nats_secure.py: jetsched on a secured nats-server (issue 19).

Run under tests/harness/with-servers --nats --pg. The test makes a CA, a
server certificate for 127.0.0.1 and a second, untrusted CA with openssl,
restarts the harness's nats-server with TLS required and the users of
deploy/nats/nats-server.conf, each holding the permission set of
deploy/nats/jetsched-permissions.conf (the shipped file, verbatim), then:
  1. admin runs `jetsched init`; schedulerd and agentd (their own users and
     inbox prefixes) become ready; the submit-only user runs a task through
     the API and publishes one straight to the stream; operator adds a
     schedule that fires, cancels, lists and replays dead letters; viewer
     reads tasks, agents, queues and the leader; nats-server logged no
     permission violation through all of it;
  2. viewer cannot add a schedule and submit cannot list tasks: non-zero
     exit and an error naming the subject;
  3. agentd with a wrong password, with a CA that did not sign the server's
     certificate, with a user lacking the JetStream permissions (viewer), and
     with the default _INBOX prefix (a subscription it may not make): each
     exits non-zero with a log line naming the cause (and the subject).
"""
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from opsstack import Stack, check, env, finish, tail  # noqa: E402

USERS = ("agentd", "schedulerd", "submit", "viewer", "operator", "admin")
AGENT_EXTRA = '''exec = { commands = (
  { name = "fail"; argv = ["/bin/sh", "-c", "echo boom >&2; exit 3"]; },
  { name = "slow"; argv = ["/bin/sh", "-c", "sleep 30"]; }
); };
'''


def openssl(*args, cwd):
    p = subprocess.run(["openssl"] + list(args), cwd=cwd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("FATAL: openssl %s: %s" % (" ".join(args), p.stderr))


def make_certs(d):
    os.makedirs(d)
    for ca in ("ca", "rogue-ca"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=jetsched test %s" % ca,
                "-keyout", ca + ".key", "-out", ca + ".crt", cwd=d)
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key",
            "-out", "server.csr", cwd=d)
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "san.ext", "-out", "server.crt", cwd=d)


def secure_nats(st, certs, passwords):
    """Restarts the harness's nats-server with TLS and the shipped users and permission sets."""
    ndir = os.path.join(env("JETSCHED_TEST_STATE"), "nats")
    ctl = os.path.join(env("JETSCHED_TEST_HARNESS"), "ctl")
    subprocess.run([ctl, "nats", "stop"], check=True, stdout=subprocess.DEVNULL)
    deploy = os.path.join(st.src, "deploy", "nats")
    with open(os.path.join(deploy, "jetsched-permissions.conf")) as f:
        perms = f.read()
    with open(os.path.join(ndir, "jetsched-permissions.conf"), "w") as f:
        f.write(perms)
    shipped = open(os.path.join(deploy, "nats-server.conf")).read()
    auth = re.search(r"^authorization \{.*?^\}", shipped, re.S | re.M).group(0)  # the shipped users, verbatim
    tls = ('tls {\n  cert_file: "%s/server.crt"\n  key_file: "%s/server.key"\n  ca_file: "%s/ca.crt"\n  timeout: 2\n}\n'
           % (certs, certs, certs))
    with open(os.path.join(ndir, "secure.conf"), "w") as f:
        f.write(tls + "include ./jetsched-permissions.conf\n" + auth + "\n")
    conf = os.path.join(ndir, "nats.conf")
    with open(conf, "a") as f:
        f.write("include ./secure.conf\n")
    e = dict(os.environ)
    for u in USERS:
        e["JETSCHED_%s_PASSWORD" % u.upper()] = passwords[u]
    p = subprocess.run([ctl, "nats", "start"], env=e, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("FATAL: secured nats-server did not start: %s%s\n%s"
                 % (p.stdout, p.stderr, tail(os.path.join(ndir, "nats.log"))))
    return os.path.join(ndir, "nats.log")


def nats_opts(user, password, ca, prefix=None, publish_timeout="5s"):
    return ('user = "%s"; password = "%s"; tls_ca = "%s"; inbox_prefix = "%s"; publish_timeout = "%s";'
            % (user, password, ca, prefix or "_INBOX_" + user, publish_timeout))


def violations(log, since):
    with open(log, errors="replace") as f:
        f.seek(since)
        return [l.rstrip() for l in f if "Violation" in l]


def main():
    passwords = {u: "pw-%s-%d" % (u, os.getpid()) for u in USERS}
    st = Stack("ops_nats_secure")
    certs = st.path("certs")
    make_certs(certs)
    ca, rogue = os.path.join(certs, "ca.crt"), os.path.join(certs, "rogue-ca.crt")
    nats_log = secure_nats(st, certs, passwords)
    st.nats_url = st.nats_url.replace("nats://", "tls://")
    mark = os.path.getsize(nats_log)
    conf = {u: st.cli_conf(nats_opts(u, passwords[u], ca)) for u in USERS}

    with st:
        # 1. The stack under least privilege.
        rc, out, err = st.jetsched("migrate", conf=conf["admin"])
        check(rc == 0, "migrate: %s%s" % (out, err))
        rc, out, err = st.jetsched("init", "--queue", "default", conf=conf["admin"])
        check(rc == 0, "jetsched init as admin: %s%s" % (out, err))
        s1 = st.start("schedulerd", "s1", nats_extra=nats_opts("schedulerd", passwords["schedulerd"], ca))
        a1 = st.start("agentd", "a1", nats_extra=nats_opts("agentd", passwords["agentd"], ca), extra=AGENT_EXTRA)
        if not check(s1 and a1, "schedulerd and agentd did not become ready with their users"):
            for i in ("s1", "a1"):
                print("--- %s\n%s" % (i, tail(st.log(i))))
            finish()
        rc, out, err = st.jetsched("submit", "--wait", "--wait-timeout", "20s", "--id", "sec-1", "echo", "hi",
                                   conf=conf["submit"])
        check(rc == 0 and "succeeded" in out, "submit --wait as submit: exit %d %s%s" % (rc, out, err))
        rc, out, err = st.jetsched("submit", "--max-attempts", "1", "--id", "sec-dead", "fail", "x", conf=conf["submit"])
        check(rc == 0, "submit of a failing task: %s%s" % (out, err))
        rc, out, err = st.jetsched("submit", "--id", "sec-slow", "slow", "x", conf=conf["operator"])
        check(rc == 0, "submit as operator: %s%s" % (out, err))
        rc, out, err = st.jetsched("schedule", "add", "sec-every", "@every 1s", "echo", "{}", conf=conf["operator"])
        check(rc == 0, "schedule add as operator: %s%s" % (out, err))
        rc, out, err = st.jetsched("submit", "--delay", "1s", "--id", "sec-delayed", "echo", "d", conf=conf["operator"])
        check(rc == 0, "delayed submit as operator: %s%s" % (out, err))
        time.sleep(3)
        rc, out, err = st.jetsched("cancel", "sec-slow", conf=conf["operator"])
        check(rc == 0, "cancel as operator: %s%s" % (out, err))
        for args in (["get", "sec-1"], ["list", "-n", "5"], ["agents"], ["queues"], ["leader"], ["dlq", "list"],
                     ["schedule", "list"], ["get", "sec-delayed"]):
            rc, out, err = st.jetsched(*args, conf=conf["viewer"])
            check(rc == 0, "jetsched %s as viewer: exit %d %s%s" % (" ".join(args), rc, out, err))
        rc, out, err = st.jetsched("get", "sec-dead", "--json", conf=conf["viewer"])
        check(rc == 0 and '"dead"' in out, "the failing task is not dead: %s%s" % (out, err))
        rc, out, err = st.jetsched("dlq", "replay", "--all", "-q", "default", conf=conf["operator"])
        check(rc == 0, "dlq replay as operator: %s%s" % (out, err))
        rc, out, err = st.jetsched("schedule", "rm", "sec-every", conf=conf["operator"])
        check(rc == 0, "schedule rm as operator: %s%s" % (out, err))
        time.sleep(1)
        v = violations(nats_log, mark)
        check(not v, "nats-server logged permission violations of the shipped sets:\n  " + "\n  ".join(v[:20]))

        # 2. Users outside their set: a clear refusal naming the subject.
        for user, args, subject in (("viewer", ["schedule", "add", "x", "@every 1m", "echo"], "jetsched.api.schedule.create"),
                                    ("submit", ["list"], "jetsched.api.task.list")):
            rc, out, err = st.jetsched("--request-timeout", "2s", *args, conf=conf[user])
            check(rc != 0 and subject in err and "ermission" in err,
                  "%s running jetsched %s: exit %d, stderr does not name the refused subject %s: %s"
                  % (user, " ".join(args), rc, subject, err.strip()))

        # 3. agentd misconfigured: non-zero exit, the cause (and subject) in its log.
        cases = (
            ("wrong-password", nats_opts("agentd", "not-the-password", ca), [r"Authorization Violation"]),
            ("untrusted-ca", nats_opts("agentd", passwords["agentd"], rogue), [r"(?i)certificate verify failed|SSL"]),
            ("no-permission", nats_opts("viewer", passwords["viewer"], ca, "_INBOX_viewer", "2s"),
             [r'Permissions Violation for Publish to "\$JS\.API\.[A-Z.]+JETSCHED_TASKS', r"NATS user lacks that permission"]),
            ("wrong-inbox", nats_opts("agentd", passwords["agentd"], ca, "_INBOX", "2s"),
             [r'Permissions Violation for Subscription to "_INBOX\.']),
        )
        for name, opts, patterns in cases:
            p = st.start("agentd", "bad-" + name, nats_extra=opts, wait=False)
            try:
                code = p.wait(40)
            except subprocess.TimeoutExpired:
                code = None
                st.stop("bad-" + name)
            log = open(st.log("bad-" + name), errors="replace").read()
            check(code not in (0, None), "agentd %s: exit %r, expected a failure" % (name, code))
            for pat in patterns:
                check(re.search(pat, log), "agentd %s: no /%s/ in its log:\n%s" % (name, pat, tail(st.log("bad-" + name), 15)))
            print("agentd %s: exit %s; %s" % (name, code, [l for l in log.splitlines() if "error" in l][-1:]), flush=True)
        codes = {i: st.stop(i) for i in ("a1", "s1")}
        check(codes == {"a1": 0, "s1": 0}, "daemons did not stop cleanly: %r" % codes)
    finish("secured NATS OK")


if __name__ == "__main__":
    main()
