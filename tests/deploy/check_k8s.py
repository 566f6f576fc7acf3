#!/usr/bin/env python3
"""tests/deploy/check_k8s.py: structural checks of deploy/k8s (issue 8).

    check_k8s.py SOURCE_DIR BUILD_DIR

Resolves the kustomization by itself (kustomize/kubectl are not Debian
packages): its resources and configMapGenerator. Then, for every workload
(Deployment, StatefulSet, DaemonSet, Job, CronJob) and each container:
liveness and readiness probes, cpu/memory requests and limits,
runAsNonRoot, readOnlyRootFilesystem, allowPrivilegeEscalation false, all
capabilities dropped, a RuntimeDefault seccomp profile, nothing privileged or
on the host's namespaces. Secrets are referenced only: no Secret object, no
secretGenerator, no secret-looking literal in env. Every ConfigMap a pod
mounts is generated from a file that exists; the -c FILE of each daemon is
in such a mount.

Configuration: agentd --check-config / schedulerd --check-config accept the
k8s conf files (they reject unknown keys with file:line) and every
JETSCHED_* variable the manifests set (the daemon must report it as the
source of a key); jetstream.replicas and nats.prefix agree between the
daemons and with the NATS StatefulSet; nats.url names the NATS pods or
service; http.listen's port is the port the probes use; the password file
is under a Secret mount; agentd's terminationGracePeriodSeconds exceeds
shutdown.grace by the flush margin.

NATS: a 3-replica StatefulSet with volumeClaimTemplates, a headless service,
a nats.conf that nats-server -t accepts, with jetstream and a cluster whose routes name every pod; a
PodDisruptionBudget selecting it. schedulerd: 3 replicas, probes on /healthz
and /readyz, a PodDisruptionBudget selecting its pods.

KEDA add-on (deploy/k8s/keda, issue 19): its own kustomization; the
Deployment passes the workload checks above and its configuration
--check-config; the ScaledObject targets it, and its nats-jetstream
triggers name the task stream, exactly the consumers of the queues that
configuration serves, and the monitoring port of a NATS service.
"""
import os
import re
import subprocess
import sys

import yaml

from deploytest import check, finish, seconds

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")
FLUSH_MARGIN_S = 15  # agentd after shutdown.grace: hand-back (2 s) + history flush (up to 10 s)


def pod_spec(obj):
    spec = obj.get("spec", {})
    if obj["kind"] == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    return spec.get("template", {}).get("spec", {})


def effective_config(binary, conf, env):
    """Runs --check-config; returns ({"section.key": (value, source)}, rc, stderr)."""
    r = subprocess.run([binary, "--check-config", "-c", conf], capture_output=True, text=True,
                       env=dict(os.environ, **env))
    vals, section = {}, None
    for line in r.stdout.splitlines():
        m = re.match(r"^(\w+) = \{$", line)
        if m:
            section = m.group(1)
            continue
        if line.startswith("};"):
            section = None
            continue
        m = re.match(r"^\s+(\w+) = (.*?);\s+#\s*(.*)$", line)
        if m and section:
            v = m.group(2)
            if v.startswith('"') and v.endswith('"'):
                v = v[1:-1]
            vals[section + "." + m.group(1)] = (v, m.group(3))
    return vals, r.returncode, r.stderr


def check_container(where, c, pod):
    for probe in ("livenessProbe", "readinessProbe"):
        check(probe in c, "%s: no %s" % (where, probe))
    res = c.get("resources", {})
    for kind in ("requests", "limits"):
        for r in ("cpu", "memory"):
            check(r in res.get(kind, {}), "%s: no resources.%s.%s" % (where, kind, r))
    sc, psc = c.get("securityContext", {}), pod.get("securityContext", {})
    check(sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True, "%s: runAsNonRoot is not true" % where)
    uid = sc.get("runAsUser", psc.get("runAsUser"))
    check(uid is None or uid != 0, "%s: runAsUser 0" % where)
    check(sc.get("readOnlyRootFilesystem") is True, "%s: readOnlyRootFilesystem is not true" % where)
    check(sc.get("allowPrivilegeEscalation") is False, "%s: allowPrivilegeEscalation is not false" % where)
    check(not sc.get("privileged"), "%s: privileged" % where)
    check("ALL" in sc.get("capabilities", {}).get("drop", []), "%s: capabilities.drop lacks ALL" % where)
    check(not sc.get("capabilities", {}).get("add"), "%s: adds capabilities" % where)
    seccomp = sc.get("seccompProfile", psc.get("seccompProfile", {})).get("type")
    check(seccomp in ("RuntimeDefault", "Localhost"), "%s: seccompProfile %s" % (where, seccomp))
    check(c.get("image"), "%s: no image" % where)
    for e in c.get("env", []):
        if "value" in e:
            check(not re.search(r"(?i)password|token|secret|nkey|seed", e["name"] + " " + str(e["value"])),
                  "%s: env %s carries a literal secret-looking value" % (where, e["name"]))


def probe_port(c, probe):
    p = c.get(probe, {}).get("httpGet", {}).get("port")
    for cp in c.get("ports", []):
        if p == cp.get("name"):
            return cp.get("containerPort")
    return p


def labels_match(selector, labels):
    ml = selector.get("matchLabels", {})
    return bool(ml) and all(labels.get(k) == v for k, v in ml.items())


def check_keda(k8s, build, services):
    """deploy/k8s/keda: services = {name: ports} of the base's NATS services."""
    kd = os.path.join(k8s, "keda")
    with open(os.path.join(kd, "kustomization.yaml")) as f:
        kust = yaml.safe_load(f)
    listed = kust.get("resources", [])
    present = sorted(n for n in os.listdir(kd) if n.endswith((".yaml", ".yml")) and n != "kustomization.yaml")
    check(sorted(listed) == present, "keda: kustomization resources %r != manifests %r" % (listed, present))
    objs = [d for r in listed for d in yaml.safe_load_all(open(os.path.join(kd, r))) if d]
    confs = {g["name"]: {spec.partition("=")[0]: os.path.join(kd, spec.partition("=")[2])
                         for spec in g.get("files", [])} for g in kust.get("configMapGenerator", [])}
    deps = [d for d in objs if d["kind"] == "Deployment"]
    scaled = [d for d in objs if d["kind"] == "ScaledObject"]
    if not check(len(deps) == 1 and len(scaled) == 1, "keda: want one Deployment and one ScaledObject"):
        return
    dep, so = deps[0], scaled[0]
    pod = pod_spec(dep)
    check(pod.get("automountServiceAccountToken") is False, "keda: automountServiceAccountToken is not false")
    check(labels_match(dep["spec"].get("selector", {}), dep["spec"]["template"]["metadata"].get("labels", {})),
          "keda: selector does not match its pods")
    check("replicas" not in dep["spec"], "keda: the Deployment sets replicas (KEDA owns the count)")
    c = pod["containers"][0]
    check_container("keda Deployment %s" % dep["metadata"]["name"], c, pod)
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    cmd = c.get("command", [])
    conf = cmd[cmd.index("-c") + 1] if "-c" in cmd else ""
    local = None
    for m in c.get("volumeMounts", []):
        v = vols.get(m["name"], {})
        if "configMap" in v and conf.startswith(m["mountPath"].rstrip("/") + "/"):
            local = confs.get(v["configMap"]["name"], {}).get(conf[len(m["mountPath"].rstrip("/")) + 1:])
    if not check(local and os.path.isfile(local), "keda: -c %s is not a file of a generated ConfigMap" % conf):
        return
    env = {e["name"]: str(e.get("value", "k8s-placeholder")) for e in c.get("env", [])}
    vals, rc, err = effective_config(os.path.join(build, "agentd", "agentd"), local, env)
    check(rc == 0, "keda: agentd --check-config -c %s: rc %d\n%s" % (local, rc, err))
    grace = seconds(vals.get("shutdown.grace", ("", ""))[0])
    tgps = pod.get("terminationGracePeriodSeconds")
    check(grace is not None and tgps is not None and tgps >= grace + FLUSH_MARGIN_S,
          "keda: terminationGracePeriodSeconds %s must be >= shutdown.grace %s + %d s" % (tgps, grace, FLUSH_MARGIN_S))
    queues = re.findall(r'name\s*=\s*"([a-z0-9_-]+)"', open(local).read().split("queues", 1)[-1])
    stream = vals.get("nats.prefix", ("jetsched",))[0].upper() + "_TASKS"
    spec = so["spec"]
    check(spec.get("scaleTargetRef", {}).get("name") == dep["metadata"]["name"],
          "keda: ScaledObject targets %r, not the Deployment" % spec.get("scaleTargetRef"))
    check(1 <= spec.get("minReplicaCount", 0) <= spec.get("maxReplicaCount", 0),
          "keda: min/maxReplicaCount %s/%s" % (spec.get("minReplicaCount"), spec.get("maxReplicaCount")))
    consumers = set()
    for t in spec.get("triggers", []):
        md = t.get("metadata", {})
        check(t.get("type") == "nats-jetstream", "keda: trigger type %r" % t.get("type"))
        check(md.get("stream") == stream, "keda: trigger stream %r, want %s" % (md.get("stream"), stream))
        check(str(md.get("lagThreshold", "")).isdigit(), "keda: lagThreshold %r" % md.get("lagThreshold"))
        host, _, port = md.get("natsServerMonitoringEndpoint", "").partition(":")
        svc = host.split(".")[0]
        check(svc in services and port.isdigit() and int(port) in services[svc],
              "keda: natsServerMonitoringEndpoint %r is not a NATS service's port" % md.get("natsServerMonitoringEndpoint"))
        consumers.add(md.get("consumer"))
    want = {"q_%s_%s" % (q, p) for q in queues for p in ("high", "normal", "low")}
    check(queues and consumers == want, "keda: trigger consumers %s != the lanes of the served queues %s"
          % (sorted(consumers), sorted(want)))


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: check_k8s.py SOURCE_DIR BUILD_DIR")
    src, build = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    k8s = os.path.join(src, "deploy", "k8s")
    with open(os.path.join(k8s, "kustomization.yaml")) as f:
        kust = yaml.safe_load(f)

    # Resources: every manifest in the directory is listed, and loads.
    listed = kust.get("resources", [])
    present = sorted(n for n in os.listdir(k8s) if n.endswith((".yaml", ".yml")) and n != "kustomization.yaml")
    check(sorted(listed) == present, "kustomization resources %r != manifests in deploy/k8s %r" % (listed, present))
    objs = []
    for r in listed:
        with open(os.path.join(k8s, r)) as f:
            objs += [(r, d) for d in yaml.safe_load_all(f) if d]
    by_kind = {}
    for r, d in objs:
        by_kind.setdefault(d["kind"], []).append(d)

    # Secrets: referenced, never embedded.
    check(not by_kind.get("Secret"), "a Secret object is embedded in deploy/k8s")
    check(not kust.get("secretGenerator"), "kustomization has a secretGenerator (secrets must be created out of band)")
    secret_refs = set()

    # ConfigMaps: generated from files that exist.
    generated = {}
    for g in kust.get("configMapGenerator", []):
        keys = {}
        for spec in g.get("files", []):
            key, _, path = spec.partition("=") if "=" in spec else (os.path.basename(spec), "", spec)
            check(os.path.isfile(os.path.join(k8s, path)), "configMapGenerator %s: no file %s" % (g["name"], path))
            check(not os.path.isabs(path) and ".." not in path.split("/"),
                  "configMapGenerator %s: %s is outside deploy/k8s (kustomize refuses it)" % (g["name"], path))
            keys[key] = os.path.join(k8s, path)
        generated[g["name"]] = keys
    defined_cms = {d["metadata"]["name"] for d in by_kind.get("ConfigMap", [])}

    workloads = [d for k in WORKLOAD_KINDS for d in by_kind.get(k, [])]
    check(len(workloads) >= 3, "expected the NATS, schedulerd and agentd workloads, found %d" % len(workloads))
    daemon_conf = {}  # daemon -> (conf file, env, pod, container, workload)
    for w in workloads:
        pod = pod_spec(w)
        wname = "%s/%s" % (w["kind"], w["metadata"]["name"])
        check(not any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")), "%s: host namespaces" % wname)
        check(pod.get("automountServiceAccountToken") is False,
              "%s: automountServiceAccountToken is not false" % wname)
        tmpl_labels = (w["spec"].get("template", {}).get("metadata", {}).get("labels", {}))
        check(labels_match(w["spec"].get("selector", {}), tmpl_labels), "%s: selector does not match its pods" % wname)
        vols = {v["name"]: v for v in pod.get("volumes", [])}
        for v in vols.values():
            if "configMap" in v:
                n = v["configMap"]["name"]
                check(n in generated or n in defined_cms, "%s: volume %s: ConfigMap %s is not generated" % (wname, v["name"], n))
            if "secret" in v:
                secret_refs.add(v["secret"]["secretName"])
        for c in pod.get("initContainers", []) + pod.get("containers", []):
            where = "%s container %s" % (wname, c["name"])
            check_container(where, c, pod)
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    secret_refs.add(ref["name"])
            cmd = c.get("command", []) + c.get("args", [])
            daemon = os.path.basename(cmd[0]) if cmd else ""
            if daemon in ("agentd", "schedulerd"):
                conf = cmd[cmd.index("-c") + 1] if "-c" in cmd else None
                local = None
                for m in c.get("volumeMounts", []):
                    v = vols.get(m["name"], {})
                    if conf and "configMap" in v and conf.startswith(m["mountPath"].rstrip("/") + "/"):
                        key = conf[len(m["mountPath"].rstrip("/")) + 1:]
                        local = generated.get(v["configMap"]["name"], {}).get(key)
                if check(local is not None, "%s: -c %s is not a file of a generated ConfigMap mount" % (where, conf)):
                    env = {}
                    for e in c.get("env", []):
                        env[e["name"]] = str(e.get("value", "k8s-placeholder"))
                    daemon_conf[daemon] = (local, env, pod, c, w)
    check(secret_refs, "no Secret is referenced (the PostgreSQL password must come from one)")
    print("secrets referenced: %s" % ", ".join(sorted(secret_refs)))

    # NATS cluster.
    sts = [d for d in by_kind.get("StatefulSet", []) if d["metadata"]["name"] == "nats"]
    nats_replicas = None
    nats_hosts = set()
    if check(len(sts) == 1, "no StatefulSet nats"):
        s = sts[0]
        nats_replicas = s["spec"].get("replicas")
        check(nats_replicas == 3, "nats: replicas %s, want 3" % nats_replicas)
        check(s["spec"].get("volumeClaimTemplates"), "nats: no volumeClaimTemplates")
        svc = [d for d in by_kind.get("Service", []) if d["metadata"]["name"] == s["spec"].get("serviceName")]
        check(svc and svc[0]["spec"].get("clusterIP") == "None",
              "nats: serviceName %s is not a headless Service" % s["spec"].get("serviceName"))
        pods = ["%s-%d.%s" % ("nats", i, s["spec"].get("serviceName")) for i in range(nats_replicas or 0)]
        nats_hosts = set(pods) | {d["metadata"]["name"] for d in by_kind.get("Service", [])
                                  if labels_match({"matchLabels": d["spec"].get("selector", {})},
                                                  s["spec"]["template"]["metadata"]["labels"])}
        cm = [v["configMap"]["name"] for v in pod_spec(s).get("volumes", []) if "configMap" in v]
        conf_path = generated.get(cm[0], {}).get("nats.conf") if cm else None
        if check(conf_path, "nats: no generated nats.conf"):
            text = open(conf_path).read()
            check(re.search(r"^jetstream\s*\{", text, re.M), "nats.conf: no jetstream block")
            check(re.search(r"store_dir:\s*/data\b", text), "nats.conf: store_dir is not the claim's mount /data")
            # nats-server itself accepts the file (SERVER_NAME comes from the pod's env).
            server = os.environ.get("JETSCHED_NATS_SERVER", "nats-server")
            r = subprocess.run([server, "-c", conf_path, "-t"], capture_output=True, text=True,
                               env=dict(os.environ, SERVER_NAME="nats-0"))
            check(r.returncode == 0, "%s -c nats.conf -t: rc %d\n%s" % (server, r.returncode, r.stdout + r.stderr))
            routes = re.findall(r"nats://([\w.-]+):6222", text)
            check(sorted(routes) == sorted(pods), "nats.conf routes %r != the StatefulSet pods %r" % (routes, pods))
        pdb = [d for d in by_kind.get("PodDisruptionBudget", [])
               if labels_match(d["spec"]["selector"], s["spec"]["template"]["metadata"]["labels"])]
        check(pdb and pdb[0]["spec"].get("maxUnavailable") == 1, "nats: no PodDisruptionBudget with maxUnavailable 1")

    # schedulerd.
    sd = [d for d in by_kind.get("Deployment", []) if d["metadata"]["name"] == "schedulerd"]
    if check(len(sd) == 1, "no Deployment schedulerd"):
        d = sd[0]
        check(d["spec"].get("replicas") == 3, "schedulerd: replicas %s, want 3" % d["spec"].get("replicas"))
        c = pod_spec(d)["containers"][0]
        check(c.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/healthz", "schedulerd: liveness not /healthz")
        check(c.get("readinessProbe", {}).get("httpGet", {}).get("path") == "/readyz", "schedulerd: readiness not /readyz")
        pdb = [p for p in by_kind.get("PodDisruptionBudget", [])
               if labels_match(p["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"])]
        check(len(pdb) == 1, "schedulerd: no PodDisruptionBudget selecting its pods")
    ds = [d for d in by_kind.get("DaemonSet", []) if d["metadata"]["name"] == "agentd"]
    check(len(ds) == 1, "no DaemonSet agentd")

    # The daemons' configurations, through the daemons themselves.
    bins = {"agentd": os.path.join(build, "agentd", "agentd"), "schedulerd": os.path.join(build, "scheduler", "schedulerd")}
    eff = {}
    for daemon in ("agentd", "schedulerd"):
        if not check(daemon in daemon_conf, "%s: no workload runs it with -c" % daemon):
            continue
        local, env, pod, c, w = daemon_conf[daemon]
        vals, rc, err = effective_config(bins[daemon], local, env)
        if not check(rc == 0, "%s --check-config -c %s (env %s): rc %d\n%s" % (daemon, local, sorted(env), rc, err)):
            continue
        eff[daemon] = vals
        for name in env:
            check(any(src == "env " + name for _, src in vals.values()),
                  "%s: env %s set by the manifest is not a configuration key the daemon knows" % (daemon, name))
        # http.listen: the probes' port, on all interfaces.
        listen = vals.get("http.listen", ("", ""))[0]
        m = re.fullmatch(r"(.*):(\d+)", listen)
        if check(m, "%s: http.listen %r" % (daemon, listen)):
            check(m.group(1) in ("0.0.0.0", "::", "[::]"), "%s: http.listen %s is not reachable by the kubelet" % (daemon, listen))
            for probe in ("livenessProbe", "readinessProbe"):
                check(probe_port(c, probe) == int(m.group(2)),
                      "%s: %s port %s != http.listen port %s" % (daemon, probe, probe_port(c, probe), m.group(2)))
        # nats.url: the cluster.
        urls = vals.get("nats.url", ("", ""))[0].split(",")
        hosts = {re.sub(r"^nats://([^:/]+).*$", r"\1", u.strip()) for u in urls}
        check(hosts and hosts <= nats_hosts, "%s: nats.url hosts %r are not the NATS pods/services %r"
              % (daemon, sorted(hosts), sorted(nats_hosts)))
        # The PostgreSQL password comes from a Secret mount.
        pw = vals.get("postgres.password_file", ("", ""))[0]
        vols = {v["name"]: v for v in pod.get("volumes", [])}
        secret_mounts = [m["mountPath"] for m in c.get("volumeMounts", []) if "secret" in vols.get(m["name"], {})]
        check(pw and any(pw.startswith(p.rstrip("/") + "/") for p in secret_mounts),
              "%s: postgres.password_file %r is not under a Secret mount %r" % (daemon, pw, secret_mounts))
        if daemon == "agentd":
            grace = seconds(vals.get("shutdown.grace", ("", ""))[0])
            tgps = pod.get("terminationGracePeriodSeconds")
            check(grace is not None and tgps is not None and tgps >= grace + FLUSH_MARGIN_S,
                  "agentd: terminationGracePeriodSeconds %s must be >= shutdown.grace %s + %d s"
                  % (tgps, grace, FLUSH_MARGIN_S))
    if len(eff) == 2:
        for key in ("jetstream.replicas", "nats.prefix"):
            check(eff["agentd"].get(key, ("?",))[0] == eff["schedulerd"].get(key, ("!",))[0],
                  "%s differs: agentd %s, schedulerd %s" % (key, eff["agentd"].get(key), eff["schedulerd"].get(key)))
        rep = eff["schedulerd"].get("jetstream.replicas", ("0",))[0]
        check(nats_replicas is not None and rep == str(nats_replicas),
              "jetstream.replicas = %s but the NATS cluster has %s nodes" % (rep, nats_replicas))
    check_keda(k8s, build, {d["metadata"]["name"]: {p["port"] for p in d["spec"].get("ports", [])}
                            for d in by_kind.get("Service", [])})
    finish("OK: %d objects, %d workloads, and the KEDA add-on" % (len(objs), len(workloads)))


if __name__ == "__main__":
    main()
