#!/usr/bin/env python3
"""Issue 15, item 6: the container and Kubernetes files, checked against what they name. No
Docker engine or cluster runs here, so the files are parsed and every port, path, key, file,
package and name in them is checked against the tree, the config schema (a real `jobbridge
check-config`), Debian 12's package lists (apt-cache), the binary's shared libraries, and a real
`jobbridge run` answering the probe paths.

usage: test_deploy_files.py JOBBRIDGE_BINARY SOURCE_DIR
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest
import urllib.error
import urllib.request
import uuid
from urllib.parse import urlparse

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
import jbtest  # noqa: E402

BIN, SRC = sys.argv[1], sys.argv[2]
DEPLOY = os.path.join(SRC, "deploy")


def dockerfile_stages(path):
    """[(base image, [(instruction, argument)])] with continuation lines joined."""
    text = open(path).read().replace("\\\n", " ")
    stages = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instr, _, arg = line.partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            stages.append((arg.split()[0], []))
        else:
            stages[-1][1].append((instr, " ".join(arg.split())))
    return stages


def apt_packages(stage):
    pkgs = []
    for instr, arg in stage[1]:
        if instr == "RUN":
            for m in re.finditer(r"apt-get install ([^&]*)", arg):
                pkgs += [w for w in m.group(1).split() if not w.startswith("-")]
    return pkgs


def needed_packages(binary):
    """The Debian package of each shared library the binary needs (amd64)."""
    out = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True).stdout
    pkgs = {}
    for so in re.findall(r"NEEDED.*\[(.*)\]", out):
        owners = subprocess.run(["dpkg", "-S", "*/" + so], capture_output=True,
                                text=True).stdout.splitlines()
        owners = [o.split(":")[0] for o in owners if "x86_64-linux-gnu" in o]
        pkgs[so] = owners[0] if owners else None
    return pkgs


class DeployFiles(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.stages = dockerfile_stages(os.path.join(DEPLOY, "Dockerfile"))
        with open(os.path.join(DEPLOY, "container", "jobbridge.json")) as f:
            cls.cfg = json.load(f)
        cls.listen_port = int(cls.cfg["http"]["listen"].rsplit(":", 1)[1])
        cls.k8s = {}
        for name in os.listdir(os.path.join(DEPLOY, "k8s")):
            with open(os.path.join(DEPLOY, "k8s", name)) as f:
                for doc in yaml.safe_load_all(f):
                    cls.k8s[doc["kind"]] = doc
        with open(os.path.join(DEPLOY, "compose.yaml")) as f:
            cls.compose = yaml.safe_load(f)
        cls.deploy = cls.k8s["Deployment"]
        cls.container = cls.deploy["spec"]["template"]["spec"]["containers"][0]

    def instr(self, stage, name):
        return [a for i, a in self.stages[stage][1] if i == name]

    def env_files_of_config(self):
        """Every environment variable the config names (*_env keys), anywhere in it."""
        names = []

        def walk(v):
            if isinstance(v, dict):
                for k, x in v.items():
                    if k.endswith("_env") and isinstance(x, str):
                        names.append(x)
                    walk(x)
            elif isinstance(v, list):
                for x in v:
                    walk(x)
        walk(self.cfg)
        return names

    # ---- Dockerfile ----
    def test_dockerfile_stages_are_debian_12_and_sources_exist(self):
        self.assertEqual(len(self.stages), 2, "a build stage and a runtime stage")
        for image, _ in self.stages:
            self.assertEqual(image.split(" ")[0], "debian:12-slim")
        for stage in range(2):
            for arg in self.instr(stage, "COPY"):
                if arg.startswith("--from"):
                    continue
                for src in arg.split()[:-1]:
                    self.assertTrue(os.path.exists(os.path.join(SRC, src)), f"COPY {src}")

    def test_dockerfile_packages_exist_and_cover_the_binary(self):
        for stage in range(2):
            pkgs = apt_packages(self.stages[stage])
            self.assertTrue(pkgs, f"stage {stage} installs packages")
            for p in pkgs:
                r = subprocess.run(["apt-cache", "show", "--no-all-versions", p],
                                   capture_output=True, text=True)
                self.assertEqual(r.returncode, 0, f"{p} is not a Debian 12 package")
        runtime = set(apt_packages(self.stages[1])) | {"libc6"}
        for so, pkg in needed_packages(BIN).items():
            self.assertIsNotNone(pkg, f"no package owns {so}")
            self.assertIn(pkg, runtime, f"{so} ({pkg}) is missing from the runtime stage")

    def test_dockerfile_user_port_config_healthcheck(self):
        user = self.instr(1, "USER")[0]
        uid = int(user.split(":")[0])
        self.assertNotEqual(uid, 0, "runs as a non-root user")
        self.assertIn(f"--uid {uid}", " ".join(self.instr(1, "RUN")), "the user is created")
        self.assertEqual([int(p) for p in self.instr(1, "EXPOSE")], [self.listen_port])
        env = dict(a.split("=", 1) for a in self.instr(1, "ENV"))
        copies = [a.split() for a in self.instr(1, "COPY") if not a.startswith("--from")]
        self.assertIn(["deploy/container/jobbridge.json", env["JOBBRIDGE_CONFIG"]], copies)
        hc = self.instr(1, "HEALTHCHECK")[0]
        url = urlparse(re.search(r"http://\S+", hc).group(0))
        self.assertEqual(url.port, self.listen_port)
        self.assertEqual(url.path, "/healthz")
        self.assertIn("curl", apt_packages(self.stages[1]), "HEALTHCHECK's curl is installed")

    # ---- the config, the ConfigMap, the Secret ----
    def test_configmap_holds_the_container_config(self):
        data = json.loads(self.k8s["ConfigMap"]["data"]["jobbridge.json"])
        self.assertEqual(data, self.cfg, "k8s/configmap.yaml and container/jobbridge.json differ")

    def test_config_passes_check_config_with_the_secret_variables(self):
        secret = self.k8s["Secret"]["stringData"]
        for name in self.env_files_of_config() + ["JOBBRIDGE_AMQP_URL", "JOBBRIDGE_DATABASE_URL"]:
            self.assertIn(name, secret, f"the Secret lacks {name}, which the config reads")
        env = dict(os.environ, **{k: v for k, v in secret.items()})
        with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
            json.dump(self.cfg, f)
            f.flush()
            r = subprocess.run([BIN, "check-config", "--config", f.name], env=env,
                               capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)

    # ---- Kubernetes ----
    def test_deployment_ports_probes_names(self):
        spec = self.deploy["spec"]["template"]["spec"]
        ports = {p["name"]: p["containerPort"] for p in self.container["ports"]}
        self.assertEqual(ports, {"http": self.listen_port})
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            self.assertIn(self.container[probe]["httpGet"]["port"], ports)
        self.assertEqual(self.container["livenessProbe"]["httpGet"]["path"], "/healthz")
        self.assertEqual(self.container["readinessProbe"]["httpGet"]["path"], "/readyz")
        grace = spec["terminationGracePeriodSeconds"]
        pre_stop = int(self.container["lifecycle"]["preStop"]["exec"]["command"][-1])
        self.assertGreaterEqual(grace, pre_stop + self.cfg["workers"]["shutdown_grace_s"] + 5,
                                "terminationGracePeriodSeconds covers preStop + shutdown grace")
        self.assertEqual(self.container["envFrom"][0]["secretRef"]["name"],
                         self.k8s["Secret"]["metadata"]["name"])
        env = {e["name"]: e["value"] for e in self.container["env"]}
        mount = [m for m in self.container["volumeMounts"] if m["name"] == "config"][0]
        self.assertEqual(os.path.join(mount["mountPath"], "jobbridge.json"),
                         env["JOBBRIDGE_CONFIG"])
        vol = [v for v in spec["volumes"] if v["name"] == "config"][0]
        self.assertEqual(vol["configMap"]["name"], self.k8s["ConfigMap"]["metadata"]["name"])
        uid = int(self.instr(1, "USER")[0].split(":")[0])
        self.assertEqual(spec["securityContext"]["runAsUser"], uid)
        labels = self.deploy["spec"]["selector"]["matchLabels"]
        self.assertEqual(self.deploy["spec"]["template"]["metadata"]["labels"], labels)
        self.assertEqual(self.k8s["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
                         labels)
        self.assertEqual(self.k8s["Service"]["spec"]["selector"], labels)
        self.assertIn(self.k8s["Service"]["spec"]["ports"][0]["targetPort"], ports)

    def test_compose_services_ports_paths(self):
        svc = self.compose["services"]
        jb = svc["jobbridge"]
        self.assertTrue(os.path.exists(os.path.join(DEPLOY, jb["build"]["context"],
                                                    jb["build"]["dockerfile"])))
        mount = jb["volumes"][0].split(":")
        self.assertTrue(os.path.exists(os.path.join(DEPLOY, mount[0])), mount[0])
        self.assertEqual(mount[1], jb["environment"]["JOBBRIDGE_CONFIG"])
        self.assertIn(f":{self.listen_port}:{self.listen_port}", jb["ports"][0])
        for var, service, port in (("JOBBRIDGE_AMQP_URL", "rabbitmq", 5672),
                                   ("JOBBRIDGE_DATABASE_URL", "postgres", 5432)):
            u = urlparse(jb["environment"][var])
            self.assertEqual((u.hostname, u.port), (service, port))
            self.assertIn(service, jb["depends_on"])
        for name in self.env_files_of_config():
            self.assertIn(name, jb["environment"], f"compose does not set {name}")
        grace = int(jb["stop_grace_period"].rstrip("s"))
        self.assertGreater(grace, self.cfg["workers"]["shutdown_grace_s"])

    # ---- the paths answered, by a real jobbridge with this config ----
    def test_probe_paths_are_served(self):
        jbtest.require_servers()
        cfg = json.loads(json.dumps(self.cfg))
        cfg["http"]["listen"] = "127.0.0.1:0"
        cfg["database"]["schema"] = "deploy_" + uuid.uuid4().hex[:8]
        tag = uuid.uuid4().hex[:8]
        cfg["amqp"]["input"].update({"exchange": "ev." + tag, "queue": "q." + tag,
                                     "dead_letter_exchange": "dl." + tag})
        cfg["amqp"]["output"]["exchange"] = "out." + tag
        env = {"JB_OPS_TOKEN_SHA256": "0" * 64}
        b = jbtest.Bridge(BIN, SRC, cfg["mappings"], cfg["job_types"])
        try:
            b.write_config(cfg)
            b.start(env=env)
            base = b.http_url()
            paths = [self.container[p]["httpGet"]["path"]
                     for p in ("livenessProbe", "readinessProbe", "startupProbe")]
            for path in sorted(set(paths)):
                try:
                    code = urllib.request.urlopen(base + path, timeout=10).status
                except urllib.error.HTTPError as e:
                    code = e.code
                self.assertEqual(code, 200, f"{path} answered {code}")
        finally:
            b.close()

    # ---- systemd unit and package agree on paths ----
    def test_systemd_unit_paths(self):
        unit = open(os.path.join(DEPLOY, "systemd", "jobbridge.service")).read()
        self.assertIn("ExecStart=/usr/bin/jobbridge run", unit)
        self.assertIn("Environment=JOBBRIDGE_CONFIG=/etc/jobbridge/jobbridge.json", unit)
        conffiles = open(os.path.join(DEPLOY, "debian", "conffiles")).read().split()
        self.assertEqual(conffiles, ["/etc/jobbridge/jobbridge.json"])
        stop = int(re.search(r"TimeoutStopSec=(\d+)", unit).group(1))
        self.assertGreater(stop, 30, "TimeoutStopSec covers workers.shutdown_grace_s's default")


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
