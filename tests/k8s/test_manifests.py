"""k8s/: valid against the Kubernetes schemas, rendered by kustomize, and timed so that a drain
always ends before the kubelet's SIGKILL. The timings come from the manifests and from the real
binary (its --help defaults, and a drain run with the Deployment's environment)."""
import os
import re
import shutil
import signal
import subprocess
import unittest

import manifests as m
from harness import Server, scaled

HERE = os.path.dirname(os.path.abspath(__file__))
API_OBJECTS = ["deployment.yaml", "service.yaml", "pdb.yaml", "variants/statefulset.yaml",
               "shared/deployment.yaml", "shared/postgres.yaml"]


def validate(*files, stdin=None):
    return subprocess.run(["node", "validate.mjs", *files], cwd=HERE, input=stdin,
                          capture_output=True, text=True, timeout=120)


class Schemas(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.isdir(os.path.join(HERE, "node_modules", "kubernetes-models")):
            raise unittest.SkipTest("tests/k8s has no node_modules: `npm ci` could not reach the npm "
                                    "registry (scripts/install-deps.sh test runs it)")

    def test_every_manifest_validates(self):
        r = validate(*(os.path.join(m.K8S, f) for f in API_OBJECTS))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(re.findall(r"^ok +(\w+)/", r.stdout, re.M),
                         ["Deployment", "Service", "PodDisruptionBudget", "Service", "StatefulSet",
                          "Deployment", "Secret", "Service", "StatefulSet"])

    def test_the_validator_rejects_a_wrong_field_type(self):
        with open(os.path.join(m.K8S, "deployment.yaml")) as f:
            text = f.read().replace("periodSeconds: 2", 'periodSeconds: "2"')
        r = validate("-", stdin=text)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("periodSeconds must be integer", r.stdout)

    def test_kustomize_renders_the_set(self):
        if not shutil.which("kubectl"):
            self.skipTest("kubectl is not installed (Debian 12 has no package for it)")
        out = subprocess.run(["kubectl", "kustomize", m.K8S], capture_output=True, text=True,
                             check=True, timeout=60).stdout
        r = validate("-", stdin=out)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(sorted(re.findall(r"^ok +(\w+)/", r.stdout, re.M)), ["Deployment", "Service"])


class Timings(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dep = m.deployment()
        cls.c = m.container(cls.dep)
        cls.defaults = m.server_defaults()

    def knob(self, name):
        return float(m.effective(self.c, name, self.defaults))

    def test_grace_period_covers_prestop_shutdown_timeout_and_exit(self):
        grace = self.dep["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30)
        prestop = m.prestop_seconds(self.c)
        shutdown = self.knob("shutdown-timeout")
        # Past its deadline the server still waits up to --close-timeout for close handshakes.
        margin = self.knob("close-timeout") + 1
        self.assertGreater(prestop, 0, "no preStop sleep: endpoint removal races the SIGTERM")
        self.assertLessEqual(prestop + shutdown + margin, grace,
                             f"preStop {prestop} s + --shutdown-timeout {shutdown} s + margin "
                             f"{margin} s exceed terminationGracePeriodSeconds {grace}")

    def test_the_server_runs_with_the_deployments_environment(self):
        # The kubelet's environment given to the real binary: the deadline it announces is the one
        # computed above, and its own start-up check finds nothing that does not fit.
        server = Server(env=m.kubelet_env(self.c))
        try:
            server.signal(signal.SIGTERM)
            line = server.wait_log(lambda l: l.get("msg") == "drain started", scaled(5))
            self.assertEqual(line["shutdown_timeout_ms"], round(self.knob("shutdown-timeout") * 1000))
            self.assertEqual(server.wait(scaled(10)), 0)
            self.assertEqual([l for l in server.logs() if l["msg"] == "timings do not fit"], [])
        finally:
            server.close()

    def test_probes_point_at_the_admin_port(self):
        admin = int(self.knob("admin-port"))
        for kind in ("readinessProbe", "livenessProbe"):
            self.assertIn(kind, self.c)
        for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
            if kind in self.c:
                self.assertEqual(m.port_number(self.c, self.c[kind]["httpGet"]["port"]), admin, kind)
        self.assertEqual(self.c["readinessProbe"]["httpGet"]["path"], "/readyz")
        # /readyz fails for the whole drain: as a liveness probe it would restart draining pods.
        self.assertEqual(self.c["livenessProbe"]["httpGet"]["path"], "/healthz")

    def test_the_service_exposes_only_the_public_port(self):
        svc = m.load("service.yaml")["spec"]
        self.assertEqual(svc["type"], "NodePort")
        self.assertEqual([(m.port_number(self.c, p["targetPort"]), p["nodePort"]) for p in svc["ports"]],
                         [(int(self.knob("port")), 30000)])

    def test_the_default_layout_is_one_replica_on_its_own_sqlite(self):
        self.assertEqual(self.dep["spec"]["replicas"], 1)
        self.assertNotIn("QUIESCE_STORE", m.literal_env(self.c), "sqlite, the default store")
        self.assertNotIn("pdb.yaml", m.load("kustomization.yaml")["resources"],
                         "minAvailable 1 on one replica would block every node drain")
        self.assertEqual(m.load_all("variants/statefulset.yaml")["StatefulSet"]["spec"]["replicas"], 1)

    def test_the_shared_layout_runs_the_default_pod_on_postgres(self):
        shared = m.load("shared/deployment.yaml")
        pod, dep_pod = shared["spec"]["template"]["spec"], self.dep["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        env = {e["name"]: e for e in c["env"]}
        self.assertEqual(env["QUIESCE_STORE"]["value"], "postgres")
        ref = env["QUIESCE_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
        secret = m.load_all("shared/postgres.yaml")["Secret"]
        self.assertEqual((ref["name"], ref["key"] in secret["stringData"]), (secret["metadata"]["name"], True))
        # Everything else is deployment.yaml's: the store's lines are the only difference.
        same_env = [e for e in self.c["env"] if e["name"] != "QUIESCE_DATA_DIR"]
        self.assertEqual([e for e in c["env"] if not e["name"].startswith(("QUIESCE_STORE", "QUIESCE_DATABASE"))],
                         same_env)
        strip = lambda d, *keys: {k: v for k, v in d.items() if k not in keys}
        self.assertEqual(strip(c, "env"), strip(self.c, "env", "volumeMounts"))
        self.assertEqual(strip(pod, "containers", "securityContext"),
                         strip(dep_pod, "containers", "securityContext", "volumes"))
        self.assertEqual(strip(shared["spec"], "replicas", "template"), strip(self.dep["spec"], "replicas", "template"))
        self.assertEqual(m.load("shared/kustomization.yaml")["resources"],
                         ["deployment.yaml", "../service.yaml", "../pdb.yaml", "postgres.yaml"])

    def test_a_rollout_and_a_node_drain_keep_a_pod_serving(self):
        spec = m.load("shared/deployment.yaml")["spec"]
        self.assertGreaterEqual(spec["replicas"], 2)
        self.assertEqual(spec["strategy"]["rollingUpdate"], {"maxSurge": 1, "maxUnavailable": 0})
        pdb = m.load("pdb.yaml")["spec"]
        self.assertEqual(pdb["minAvailable"], 1)
        labels = spec["template"]["metadata"]["labels"]
        for selector in (spec["selector"]["matchLabels"], pdb["selector"]["matchLabels"],
                         m.load("service.yaml")["spec"]["selector"]):
            self.assertLessEqual(selector.items(), labels.items())

    def test_the_pod_runs_the_images_user_without_privileges(self):
        with open(os.path.join(m.ROOT, "Containerfile")) as f:
            image = f.read()
        uid, gid = map(int, re.search(r"^USER (\d+):(\d+)$", image, re.M).groups())
        pod = self.dep["spec"]["template"]["spec"]["securityContext"]
        self.assertEqual((pod["runAsNonRoot"], pod["runAsUser"], pod["runAsGroup"]), (True, uid, gid))
        sc = self.c["securityContext"]
        self.assertEqual((sc["allowPrivilegeEscalation"], sc["readOnlyRootFilesystem"]), (False, True))
        self.assertEqual(sc["capabilities"]["drop"], ["ALL"])
        exposed = sorted(map(int, re.search(r"^EXPOSE (.*)$", image, re.M).group(1).split()))
        self.assertEqual(sorted(p["containerPort"] for p in self.c["ports"]), exposed)

    def test_the_store_lives_on_a_volume_the_servers_user_can_write(self):
        pod = self.dep["spec"]["template"]["spec"]
        data_dir = m.literal_env(self.c)["QUIESCE_DATA_DIR"]
        (mount,) = [v for v in self.c["volumeMounts"] if v["mountPath"] == data_dir]
        self.assertFalse(mount.get("readOnly", False))
        (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
        self.assertIn("emptyDir", volume, "the Deployment's store lasts as long as its pod")
        self.assertEqual(pod["securityContext"]["fsGroup"], pod["securityContext"]["runAsGroup"])

    def test_the_statefulset_variant_runs_the_deployments_pod_on_a_claim(self):
        variant = m.load_all("variants/statefulset.yaml")
        sts = variant["StatefulSet"]["spec"]
        dep_pod = {k: v for k, v in self.dep["spec"]["template"]["spec"].items() if k != "volumes"}
        self.assertEqual(sts["template"]["metadata"], self.dep["spec"]["template"]["metadata"])
        self.assertEqual(sts["template"]["spec"], dep_pod, "the variant's pod drifted from deployment.yaml")
        (claim,) = sts["volumeClaimTemplates"]
        (mount,) = self.c["volumeMounts"]
        self.assertEqual(claim["metadata"]["name"], mount["name"])
        self.assertEqual(claim["spec"]["accessModes"], ["ReadWriteOnce"])
        self.assertEqual(sts["serviceName"], variant["Service"]["metadata"]["name"])
        self.assertEqual(variant["Service"]["spec"]["clusterIP"], "None")
        self.assertEqual(sts["persistentVolumeClaimRetentionPolicy"]["whenDeleted"], "Retain")


if __name__ == "__main__":
    unittest.main()
