#!/usr/bin/env python3
"""tests/deploy/check_deb.py: the Debian package from cmake/packaging.cmake.

    check_deb.py SOURCE_DIR BUILD_DIR

First `cmake --install --prefix P`: bin/, etc/jetsched/, include/jetsched/,
lib/jetsched/plugins/, lib/systemd/system/, share/jetsched/{sql,lua,web} under P
and nothing outside it. Then runs cpack -G DEB on the build directory (its binaries, sanitized or not: a
layout test), into a temporary directory, then unpacks the .deb with
dpkg-deb -x / -e into a temporary root and checks:
  - the layout: usr/bin/{agentd,schedulerd,jetsched}, etc/jetsched/*.conf,
    usr/include/jetsched/plugin.h, usr/lib/jetsched/plugins/*.so (every
    built-in plugin), usr/lib/systemd/system/*.service (identical to
    deploy/systemd), usr/share/jetsched/sql (every migration of sql/),
    usr/share/jetsched/lua (every script of scripts/lua), usr/share/jetsched/web
    (every file of web/, the console), the man page when
    docs/jetsched.1 exists; nothing outside etc/jetsched and usr/, no usr/etc;
  - the daemons' built-in default paths (plugin_dir, lua_dir, the migrations
    directory, /etc/jetsched/<daemon>.conf) and the units' ExecStart exist in
    the package, and the packaged configuration files pass --check-config;
  - control: Package jetsched, the project's version, a Depends entry for the
    package of every shared library the packaged ELF files need (dpkg -S),
    adduser; conffiles = the two configuration files;
  - the maintainer scripts, run against stub commands with /etc/jetsched and
    /var/lib/jetsched redirected into the temporary root: postinst configure
    creates the jetsched system group and user (adduser, or useradd when
    adduser is absent) with no login shell, and root:jetsched 0640 env files;
    a second run creates nothing and keeps edited env files; neither enables
    nor starts a service; postrm purge removes the env files and keeps the
    user unless JETSCHED_REMOVE_USER=yes.
"""
import glob
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile

from deploytest import check, finish

STUB = r"""#!/bin/sh
# stub: records its call; getent answers from the recorded adduser/useradd calls.
echo "$(basename "$0") $*" >> "$STUB_LOG"
if [ "$(basename "$0")" = getent ]; then
  case $1 in
    passwd) add='adduser|useradd' del='deluser|userdel' ;;
    *) add='addgroup|groupadd' del='delgroup|groupdel' ;;
  esac
  n_add=$(grep -c -E "^($add)( .*)? $2\$" "$STUB_LOG")
  n_del=$(grep -c -E "^($del)( .*)? $2\$" "$STUB_LOG")
  [ "$n_add" -gt "$n_del" ]
  exit
fi
exit 0
"""


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def needed_libs(path):
    r = run(["readelf", "-d", path])
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", r.stdout) if r.returncode == 0 else None


def lib_package(lib):
    r = run(["dpkg", "-S", "*/" + lib])
    pkgs = {line.split(":")[0] for line in r.stdout.splitlines() if ":" in line}
    return pkgs


def check_layout(src, root, version):
    expect = ["usr/bin/agentd", "usr/bin/schedulerd", "usr/bin/jetsched", "etc/jetsched/agentd.conf",
              "etc/jetsched/schedulerd.conf", "usr/include/jetsched/plugin.h",
              "usr/lib/systemd/system/agentd.service", "usr/lib/systemd/system/schedulerd.service"]
    expect += ["usr/lib/jetsched/plugins/%s.so" % p for p in ("noop", "echo", "exec", "http")]
    expect += ["usr/share/jetsched/sql/" + os.path.basename(f) for f in glob.glob(os.path.join(src, "sql", "*.sql"))]
    expect += ["usr/share/jetsched/lua/" + os.path.basename(f)
               for f in glob.glob(os.path.join(src, "scripts", "lua", "*.lua"))]
    expect += ["usr/share/jetsched/web/" + os.path.relpath(f, os.path.join(src, "web"))
               for f in glob.glob(os.path.join(src, "web", "**", "*.*"), recursive=True)]
    expect += ["usr/share/doc/jetsched/OPERATIONS.md"]
    if os.path.exists(os.path.join(src, "docs", "jetsched.1")):
        check(any(os.path.exists(os.path.join(root, "usr/share/man/man1/jetsched.1" + z)) for z in ("", ".gz")),
              "docs/jetsched.1 exists but the package has no usr/share/man/man1/jetsched.1")
    for e in expect:
        check(os.path.isfile(os.path.join(root, e)), "package lacks %s" % e)
    for b in ("agentd", "schedulerd", "jetsched"):
        p = os.path.join(root, "usr/bin", b)
        check(os.path.exists(p) and os.stat(p).st_mode & 0o111, "usr/bin/%s is not executable" % b)
    for unit in ("agentd", "schedulerd"):
        p = os.path.join(root, "usr/lib/systemd/system/%s.service" % unit)
        if os.path.exists(p):
            check(open(p).read() == open(os.path.join(src, "deploy/systemd/%s.service" % unit)).read(),
                  "packaged %s.service differs from deploy/systemd" % unit)
            for m in re.finditer(r"^Exec\w+=[-@!+]*(/\S+)", open(p).read(), re.M):
                if not m.group(1).startswith("/usr/bin/") or m.group(1) == "/bin/kill":
                    continue
                check(os.path.exists(root + m.group(1)), "%s.service runs %s, not in the package" % (unit, m.group(1)))
            for m in re.finditer(r"\s-c\s+(/\S+)", open(p).read()):
                check(os.path.exists(root + m.group(1)), "%s.service reads %s, not in the package" % (unit, m.group(1)))
    # Nothing outside etc/jetsched and usr/; no prefix-relative etc left behind.
    for top in os.listdir(root):
        check(top in ("etc", "usr", "DEBIAN"), "unexpected top-level directory /%s in the package" % top)
    if os.path.isdir(os.path.join(root, "etc")):
        check(os.listdir(os.path.join(root, "etc")) == ["jetsched"], "etc/ holds %r" % os.listdir(os.path.join(root, "etc")))
    check(not os.path.exists(os.path.join(root, "usr/etc")), "usr/etc in the package (etc must be /etc)")
    check(not os.path.exists(os.path.join(root, "usr/local")), "usr/local in the package")

    # The daemons' built-in defaults point into the package.
    schema = run([os.path.join(root, "usr/bin/agentd"), "--print-schema"]).stdout
    for key, pattern in (("agent.plugin_dir", "*.so"), ("agent.lua_dir", "*.lua")):
        m = re.search(r"^%s \(string, default ([^,)\s]+)" % re.escape(key), schema, re.M)
        if check(m, "agentd --print-schema: no default for %s" % key):
            check(glob.glob(root + m.group(1) + "/" + pattern),
                  "%s default %s has no %s in the package" % (key, m.group(1), pattern))
    help_text = run([os.path.join(root, "usr/bin/jetsched"), "migrate", "--help"])
    m = re.search(r"else (/\S+sql)\b", help_text.stdout + help_text.stderr)
    if check(m, "jetsched migrate --help names no default migrations directory"):
        check(glob.glob(root + m.group(1) + "/*.sql"), "default migrations directory %s is empty in the package"
              % m.group(1))
    for d in ("agentd", "schedulerd"):
        r = run([os.path.join(root, "usr/bin", d), "--check-config", "-c", os.path.join(root, "etc/jetsched/%s.conf" % d)])
        check(r.returncode == 0, "packaged etc/jetsched/%s.conf rejected by the packaged %s:\n%s" % (d, d, r.stderr))
        r = run([os.path.join(root, "usr/bin", d), "--help"])
        check("/etc/jetsched/%s.conf" % d in r.stdout, "%s --help does not name /etc/jetsched/%s.conf" % (d, d))


def check_install_prefix(build, tmp):
    """cmake --install --prefix P lays everything out under P (etc/ included)."""
    prefix = os.path.join(tmp, "prefix")
    r = run(["cmake", "--install", build, "--prefix", prefix])
    if not check(r.returncode == 0, "cmake --install --prefix: rc %d\n%s" % (r.returncode, r.stderr)):
        return
    for rel in ("bin/agentd", "bin/schedulerd", "bin/jetsched", "etc/jetsched/agentd.conf", "etc/jetsched/schedulerd.conf",
                "include/jetsched/plugin.h", "lib/jetsched/plugins/exec.so", "lib/systemd/system/agentd.service",
                "lib/systemd/system/schedulerd.service", "share/jetsched/sql/0001_init.sql", "share/jetsched/lua/hello.lua",
                "share/jetsched/web/index.html", "share/jetsched/web/js/app.js"):
        check(os.path.isfile(os.path.join(prefix, rel)), "cmake --install --prefix P: no P/%s" % rel)
    outside = [l for l in r.stdout.splitlines() if re.match(r"-- (Installing|Up-to-date): ", l)
               and not l.split(": ", 1)[1].startswith(prefix + "/")]
    check(not outside, "cmake --install --prefix P wrote outside P: %r" % outside[:5])


def check_control(root, ctl, version):
    control = open(os.path.join(ctl, "control")).read()
    fields = dict(re.findall(r"^([\w-]+): (.*)$", control, re.M))
    check(fields.get("Package") == "jetsched", "Package: %s" % fields.get("Package"))
    check(fields.get("Version") == version, "Version: %s, want %s" % (fields.get("Version"), version))
    depends = {re.sub(r"\s*\(.*\)", "", d).strip() for d in fields.get("Depends", "").split(",")}
    check("adduser" in depends, "Depends lacks adduser (the postinst uses it)")
    elves = [p for p in glob.glob(os.path.join(root, "usr/**/*"), recursive=True)
             if os.path.isfile(p) and open(p, "rb").read(4) == b"\x7fELF"]
    check(len(elves) >= 7, "only %d ELF files in the package" % len(elves))
    missing = {}
    for p in elves:
        for lib in needed_libs(p) or []:
            pkgs = lib_package(lib)
            # The C library (libc6 or a multiarch twin of it) and, in sanitizer builds, the sanitizer runtimes.
            if re.match(r"^(libc|libm|libdl|libpthread|libasan|libubsan)\.so", lib):
                continue
            if not pkgs & depends:
                missing[lib] = sorted(pkgs)
    check(not missing, "Depends lacks the packages of needed libraries: %r (Depends: %s)" % (missing, fields.get("Depends")))
    conffiles = open(os.path.join(ctl, "conffiles")).read().split() if os.path.exists(os.path.join(ctl, "conffiles")) else []
    check(sorted(conffiles) == ["/etc/jetsched/agentd.conf", "/etc/jetsched/schedulerd.conf"], "conffiles: %r" % conffiles)
    for c in conffiles:
        check(os.path.isfile(root + c), "conffile %s not in the package" % c)
    for s in ("postinst", "prerm", "postrm"):
        p = os.path.join(ctl, s)
        if check(os.path.isfile(p), "no %s in the control archive" % s):
            check(stat.S_IMODE(os.stat(p).st_mode) == 0o755, "%s mode %o, want 755" % (s, stat.S_IMODE(os.stat(p).st_mode)))
            check(run(["sh", "-n", p]).returncode == 0, "%s: sh -n fails" % s)


def run_script(ctl, name, args, tmp, stubs, env_extra=None):
    """Runs a maintainer script with /etc/jetsched, /var/lib/jetsched and /run/systemd/system (present: as
    under systemd) moved under tmp, and stubbed tools."""
    text = open(os.path.join(ctl, name)).read()
    for p in ("/etc/jetsched", "/var/lib/jetsched", "/run/systemd/system"):
        text = text.replace(p, tmp + p)
    path = os.path.join(tmp, name + ".sh")
    with open(path, "w") as f:
        f.write(text)
    log = os.path.join(tmp, "calls.log")
    env = {"PATH": stubs + ":/usr/bin:/bin", "STUB_LOG": log, "HOME": tmp}
    env.update(env_extra or {})
    before = open(log).read().splitlines() if os.path.exists(log) else []
    r = run(["sh", "-e", path] + args, env=env)
    after = open(log).read().splitlines() if os.path.exists(log) else []
    check(r.returncode == 0, "%s %s: exit %d\n%s%s" % (name, " ".join(args), r.returncode, r.stdout, r.stderr))
    return after[len(before):]


def make_stubs(tmp, tools):
    d = os.path.join(tmp, "stubs")
    os.makedirs(d)
    for t in tools:
        with open(os.path.join(d, t), "w") as f:
            f.write(STUB)
        os.chmod(os.path.join(d, t), 0o755)
    return d


def check_scripts(ctl, tmp):
    common = ["getent", "chown", "systemctl", "useradd", "groupadd", "userdel", "groupdel"]
    for variant, tools in (("adduser", common + ["adduser", "addgroup", "deluser", "delgroup"]),
                           ("useradd", common)):
        t = os.path.join(tmp, variant)
        os.makedirs(os.path.join(t, "etc/jetsched"))
        os.makedirs(os.path.join(t, "run/systemd/system"))
        stubs = make_stubs(t, tools)
        calls = run_script(ctl, "postinst", ["configure", ""], t, stubs)
        users = [c for c in calls if re.match(r"^(adduser|useradd) ", c)]
        groups = [c for c in calls if re.match(r"^(addgroup|groupadd) ", c)]
        check(len(users) == 1 and users[0].startswith(variant + " ") and "--system" in users[0]
              and users[0].endswith(" jetsched"), "%s: postinst user creation: %r" % (variant, users))
        check(users and "nologin" in users[0] and "var/lib/jetsched" in users[0],
              "%s: the user has a login shell or another home: %r" % (variant, users))
        check(len(groups) == 1 and "--system" in groups[0] and groups[0].endswith(" jetsched"),
              "%s: postinst group creation: %r" % (variant, groups))
        verbs = {"start", "enable", "restart", "reload", "try-restart", "reload-or-restart", "--now"}
        check(not [c for c in calls if c.split()[0] == "systemctl" and verbs & set(c.split()[1:])],
              "%s: postinst starts or enables a service: %r" % (variant, calls))
        check([c for c in calls if re.match(r"^systemctl .*daemon-reload", c)],
              "%s: postinst does not make the units known (daemon-reload): %r" % (variant, calls))
        for d in ("agentd", "schedulerd"):
            f = os.path.join(t, "etc/jetsched/%s.env" % d)
            if check(os.path.isfile(f), "%s: postinst did not create %s.env" % (variant, d)):
                check(stat.S_IMODE(os.stat(f).st_mode) == 0o640, "%s.env mode %o, want 640" % (d, stat.S_IMODE(os.stat(f).st_mode)))
                check(("chown root:jetsched " + f) in calls, "%s.env not given to root:jetsched: %r" % (d, calls))
        # Idempotent: nothing created again, edited env files kept.
        with open(os.path.join(t, "etc/jetsched/agentd.env"), "w") as f:
            f.write("PGPASSWORD=kept\n")
        calls = run_script(ctl, "postinst", ["configure", "0.1.0"], t, stubs)
        check(not [c for c in calls if re.match(r"^(adduser|useradd|addgroup|groupadd) ", c)],
              "%s: second postinst created again: %r" % (variant, calls))
        check(open(os.path.join(t, "etc/jetsched/agentd.env")).read() == "PGPASSWORD=kept\n",
              "%s: second postinst overwrote agentd.env" % variant)
        # prerm: an upgrade leaves the daemons running; a removal stops them.
        calls = run_script(ctl, "prerm", ["upgrade", "0.2.0"], t, stubs)
        check(not [c for c in calls if c.startswith("systemctl")], "%s: prerm upgrade calls %r" % (variant, calls))
        calls = run_script(ctl, "prerm", ["remove"], t, stubs)
        check([c for c in calls if re.match(r"^systemctl .*stop agentd.service schedulerd.service", c)],
              "%s: prerm remove does not stop the daemons: %r" % (variant, calls))
        # postrm purge: env files gone, user kept by default, removed on request.
        calls = run_script(ctl, "postrm", ["purge"], t, stubs)
        check(not os.path.exists(os.path.join(t, "etc/jetsched/agentd.env")), "%s: purge kept agentd.env" % variant)
        check(not [c for c in calls if re.match(r"^(deluser|userdel|delgroup|groupdel) ", c)],
              "%s: purge removed the user without JETSCHED_REMOVE_USER=yes: %r" % (variant, calls))
        calls = run_script(ctl, "postrm", ["purge"], t, stubs, {"JETSCHED_REMOVE_USER": "yes"})
        check([c for c in calls if re.match(r"^(deluser|userdel) .*jetsched$", c)],
              "%s: purge with JETSCHED_REMOVE_USER=yes did not remove the user: %r" % (variant, calls))
        check([c for c in calls if re.match(r"^(delgroup|groupdel) .*jetsched$", c)],
              "%s: purge with JETSCHED_REMOVE_USER=yes did not remove the group: %r" % (variant, calls))


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: check_deb.py SOURCE_DIR BUILD_DIR")
    src, build = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    m = re.search(r"project\(jetsched VERSION (\S+)", open(os.path.join(src, "CMakeLists.txt")).read())
    version = m.group(1) if m else "?"
    tmp = tempfile.mkdtemp(prefix="jetsched-deb.")
    try:
        check_install_prefix(build, tmp)
        r = run(["cpack", "-G", "DEB", "--config", os.path.join(build, "CPackConfig.cmake"), "-B", tmp])
        debs = glob.glob(os.path.join(tmp, "*.deb"))
        if not check(r.returncode == 0 and len(debs) == 1, "cpack: rc %d, %r\n%s%s" % (r.returncode, debs, r.stdout, r.stderr)):
            return
        check(os.path.basename(debs[0]).startswith("jetsched_%s_" % version), "package file %s" % debs[0])
        root, ctl = os.path.join(tmp, "root"), os.path.join(tmp, "control")
        for opt, d in (("-x", root), ("-e", ctl)):
            r = run(["dpkg-deb", opt, debs[0], d])
            check(r.returncode == 0, "dpkg-deb %s: %s" % (opt, r.stderr))
        check_layout(src, root, version)
        check_control(root, ctl, version)
        check_scripts(ctl, os.path.join(tmp, "scripts"))
        print("%s: %d files" % (os.path.basename(debs[0]),
                                sum(len(f) for _, _, f in os.walk(root))))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
    finish()
