#!/usr/bin/env python3
"""tests/deploy/check_units.py: deploy/systemd/{agentd,schedulerd}.service are
what issue 8 and docs/OPERATIONS.md promise, and systemd accepts them.

    check_units.py SOURCE_DIR BUILD_DIR

1. Structure: Type=notify, NotifyAccess=main, WatchdogSec, Restart=on-failure,
   ExecReload = kill -HUP $MAINPID, EnvironmentFile under /etc/jetsched, the
   jetsched user, the hardening list (NoNewPrivileges, ProtectSystem=strict,
   ProtectHome, PrivateTmp, an empty CapabilityBoundingSet and
   AmbientCapabilities), ReadWritePaths only the allowed ones, ExecStart the
   packaged binary and config; agentd: TimeoutStopSec above the default
   shutdown.grace (from agentd --print-schema) and KillMode=mixed (the drain
   owns the exec plugin's children).
2. `systemd-analyze verify` on each unit with ExecStart pointed at the build
   tree's binary (verify insists the binary exists; nothing else changes):
   exit 0 and no diagnostics at all (verify exits 0 on unknown keys).
3. `systemd-analyze security --offline=yes`: overall exposure <= 2.0.
"""
import os
import re
import subprocess
import sys
import tempfile

from deploytest import check, finish, seconds



def parse_unit(path):
    """{section: {key: [values in order]}}; continuation lines joined."""
    units, section, pending = {}, None, ""
    with open(path) as f:
        for raw in f:
            line = pending + raw.rstrip("\n")
            pending = ""
            if line.endswith("\\"):
                pending = line[:-1] + " "
                continue
            s = line.strip()
            if not s or s[0] in "#;":
                continue
            if s.startswith("[") and s.endswith("]"):
                section = s[1:-1]
                units.setdefault(section, {})
                continue
            key, _, value = s.partition("=")
            units[section].setdefault(key.strip(), []).append(value.strip())
    return units




def effective(values):
    """systemd list semantics: an empty assignment resets the list."""
    out = []
    for v in values:
        out = [] if v == "" else out + v.split()
    return out


def check_unit(src, build, daemon, bindir):
    path = os.path.join(src, "deploy", "systemd", daemon + ".service")
    u = parse_unit(path)
    svc = u.get("Service", {})
    name = daemon + ".service"

    def one(key):
        v = svc.get(key)
        return v[-1] if v else None

    want = {
        "Type": "notify", "NotifyAccess": "main", "Restart": "on-failure", "User": "jetsched",
        "Group": "jetsched", "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
        "PrivateTmp": "yes", "ExecReload": "/bin/kill -HUP $MAINPID",
        "ExecStart": "/usr/bin/%s -c /etc/jetsched/%s.conf" % (daemon, daemon),
    }
    for k, v in want.items():
        check(one(k) == v, "%s: %s=%s, want %s" % (name, k, one(k), v))
    wd = seconds(one("WatchdogSec") or "")
    check(wd is not None and wd >= 1, "%s: WatchdogSec=%s, want >= 1s" % (name, one("WatchdogSec")))
    for k in ("CapabilityBoundingSet", "AmbientCapabilities"):
        check(k in svc and effective(svc[k]) == [], "%s: %s must be present and empty, is %r" % (name, k, svc.get(k)))
    envf = svc.get("EnvironmentFile", [])
    check(envf == ["-/etc/jetsched/%s.env" % daemon],
          "%s: EnvironmentFile=%r, want -/etc/jetsched/%s.env" % (name, envf, daemon))
    check(not any(re.search(r"(?i)password|token|secret|nkey", v) for v in svc.get("Environment", [])),
          "%s: a secret in Environment= (secrets belong in the EnvironmentFile)" % name)
    rw = effective(svc.get("ReadWritePaths", []))
    check(rw == [], "%s: ReadWritePaths=%r: neither daemon writes outside its StateDirectory" % (name, rw))
    check("WantedBy" in u.get("Install", {}), "%s: no [Install] WantedBy" % name)
    if daemon == "agentd":
        schema = subprocess.run([os.path.join(build, "agentd", "agentd"), "--print-schema"], capture_output=True,
                                text=True, check=True).stdout
        m = re.search(r"^shutdown\.grace \(duration, default (\w+)", schema, re.M)
        grace = seconds(m.group(1)) if m else None
        stop = seconds(one("TimeoutStopSec") or "")
        if check(grace is not None, "agentd --print-schema: no shutdown.grace default"):
            check(stop is not None and stop >= grace + 30,
                  "%s: TimeoutStopSec=%s must exceed shutdown.grace (%s s) by 30 s (flush, hand-back)"
                  % (name, one("TimeoutStopSec"), grace))
        check(one("KillMode") == "mixed", "%s: KillMode=%s, want mixed" % (name, one("KillMode")))
        check(effective(svc.get("StateDirectory", [])) == ["jetsched/agentd"],
              "%s: StateDirectory=%r" % (name, svc.get("StateDirectory")))

    # systemd-analyze verify, the binary path pointed at the build tree.
    with open(path) as f:
        text = f.read()
    binary = os.path.join(build, bindir, daemon)
    start = "ExecStart=/usr/bin/%s " % daemon
    check(text.count(start) == 1, "%s: expected one %r line" % (name, start))
    with tempfile.TemporaryDirectory() as tmp:
        copy = os.path.join(tmp, name)
        with open(copy, "w") as f:
            f.write(text.replace(start, "ExecStart=%s " % binary))
        r = subprocess.run(["systemd-analyze", "verify", copy], capture_output=True, text=True)
        diag = (r.stdout + r.stderr).strip()
        check(r.returncode == 0 and diag == "", "%s: systemd-analyze verify: rc %d\n%s" % (name, r.returncode, diag))
    r = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--threshold=20", path], capture_output=True,
                       text=True)
    m = re.search(r"Overall exposure level for \S+: ([\d.]+)", r.stdout + r.stderr)
    level = float(m.group(1)) if m else None
    check(r.returncode == 0 and level is not None and level <= 2.0,
          "%s: systemd-analyze security exposure %s (rc %d), want <= 2.0" % (name, level, r.returncode))
    print("%s: checked (exposure %s)" % (name, level), flush=True)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: check_units.py SOURCE_DIR BUILD_DIR")
    src, build = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    check_unit(src, build, "agentd", "agentd")
    check_unit(src, build, "schedulerd", "scheduler")
    finish("OK")


if __name__ == "__main__":
    main()
