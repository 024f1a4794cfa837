"""The Kubernetes manifests build, are valid Kubernetes objects, and say what the service does.

Each kustomization (the base and every overlay) is built by a real kustomize (`kustomize
build`, or the one inside `kubectl kustomize`), and every object it yields is validated
against Kubernetes' OpenAPI schemas, strictly (an unknown field fails), by
`kubernetes-validate`, for the oldest Kubernetes the manifests claim (1.30) and the newest
it knows. Then what no schema knows: the probes are the service's health routes, the grace
period outlasts the drain, every variable is one the service reads, the pods run as the
image's user, and every selector finds its pods. No cluster runs here; nothing is applied.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from django.urls import reverse

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
BUILDS = {"base": KUBERNETES / "base", "patroni": KUBERNETES / "overlays" / "patroni"}
EXAMPLES = sorted(KUBERNETES.rglob("secret.example.yaml"))
# The oldest Kubernetes the manifests are written for, and the newest the validator knows.
VERSIONS = ("1.30", kubernetes_validate.latest_version())
SERVICE = "resilient-django"  # app.kubernetes.io/name of the service's own pods
SECRETS = "resilient-django-secrets"
# Variables of the service's pods that project/settings.py does not read, and who does.
READ_ELSEWHERE = {
    "WEB_CONCURRENCY": "uvicorn: its worker processes",
    "FORWARDED_ALLOW_IPS": "uvicorn: the proxies whose X-Forwarded-Proto it believes",
    "PGPASSWORD": "libpq: the password of every connection whose URL has none",
}
# Patroni's own variables (its docs/ENVIRONMENT.rst), for the overlay's members.
PATRONI_VARIABLES = {
    "PATRONI_SCOPE", "PATRONI_NAME", "PATRONI_SUPERUSER_USERNAME",
    "PATRONI_SUPERUSER_PASSWORD", "PATRONI_REPLICATION_USERNAME",
    "PATRONI_REPLICATION_PASSWORD", "PATRONI_POSTGRESQL_DATA_DIR",
    "PATRONI_POSTGRESQL_BIN_DIR", "PATRONI_POSTGRESQL_PGPASS", "PATRONI_POSTGRESQL_LISTEN",
    "PATRONI_POSTGRESQL_CONNECT_ADDRESS", "PATRONI_RESTAPI_LISTEN",
    "PATRONI_RESTAPI_CONNECT_ADDRESS", "PATRONI_KUBERNETES_POD_IP",
    "PATRONI_KUBERNETES_NAMESPACE", "PATRONI_KUBERNETES_USE_ENDPOINTS",
    "PATRONI_KUBERNETES_LABELS", "PATRONI_KUBERNETES_SCOPE_LABEL",
    "PATRONI_KUBERNETES_ROLE_LABEL", "PATRONI_KUBERNETES_LEADER_LABEL_VALUE",
    "PATRONI_KUBERNETES_FOLLOWER_LABEL_VALUE", "PATRONI_KUBERNETES_STANDBY_LEADER_LABEL_VALUE",
    "PATRONI_KUBERNETES_PORTS",
}  # fmt: skip
WORKLOADS = {"Deployment", "StatefulSet", "Job"}


def kustomize_command() -> list[str]:
    """A kustomize that builds kustomize.config.k8s.io/v1beta1 with `labels` and `patches`
    (v4.2+): the standalone one, else kubectl's (1.22+ carries v4.2+)."""
    if found := shutil.which("kustomize"):
        return [found, "build"]
    if found := shutil.which("kubectl"):
        return [found, "kustomize"]
    # Not skipped (no skip hides a missing tool), and not installed: Debian's
    # kubernetes-client (kubectl 1.20, kustomize v2) predates `labels` and `patches`.
    pytest.fail("needs `kustomize` (v4.2+) or `kubectl` (1.22+) on PATH to build deploy/kubernetes")


def build(directory: Path) -> list[dict[str, Any]]:
    command = [*kustomize_command(), str(directory)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"{shlex.join(command)} failed:\n{done.stderr}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module")
def builds() -> dict[str, list[dict[str, Any]]]:
    return {name: build(directory) for name, directory in BUILDS.items()}


# --- reading the objects -----------------------------------------------------------------


def named(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def of_kind(objects: list[dict[str, Any]], *kinds: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] in kinds]


def pod_template(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]  # Deployment, StatefulSet and Job alike


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    return pod_template(workload)["metadata"]["labels"]


def is_service_pod(workload: dict[str, Any]) -> bool:
    return pod_labels(workload).get("app.kubernetes.io/name") == SERVICE


def container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = pod_template(workload)["spec"]["containers"]
    assert len(containers) == 1, f"{workload['metadata']['name']}: one container expected"
    return containers[0]


def env_of(objects: list[dict[str, Any]], workload: dict[str, Any]) -> dict[str, str]:
    """The container's plain variables: its ConfigMaps' (envFrom), then its own `value`s."""
    spec = container(workload)
    values: dict[str, str] = {}
    for source in spec.get("envFrom", []):
        values.update(named(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
    values.update({e["name"]: e["value"] for e in spec.get("env", []) if "value" in e})
    return values


def env_names(objects: list[dict[str, Any]], workload: dict[str, Any]) -> set[str]:
    spec = container(workload)
    names = {e["name"] for e in spec.get("env", [])}
    for source in spec.get("envFrom", []):
        names |= set(named(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
    return names


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


# --- what the rest of the project says ------------------------------------------------------


def settings_variables() -> set[str]:
    """Every variable project/settings.py reads (`env.<type>("NAME", ...)`)."""
    text = (ROOT / "project" / "settings.py").read_text()
    names = set(re.findall(r"\benv\.[a-z]+\(\s*\"([A-Z][A-Z0-9_]*)\"", text))
    assert {"DATABASE_URL", "SHUTDOWN_TIMEOUT", "PROMETHEUS_MULTIPROC_DIR"} <= names
    return names


def example_secret() -> dict[str, str]:
    """The keys and placeholder values of the base's example Secret."""
    (secret,) = yaml.safe_load_all((KUBERNETES / "base" / "secret.example.yaml").read_text())
    assert secret["metadata"]["name"] == SECRETS
    return secret["stringData"]


def dockerfile_runtime() -> list[tuple[str, str]]:
    """The Dockerfile's `runtime` stage as (INSTRUCTION, arguments), continuations joined."""
    lines = [line for line in (ROOT / "Dockerfile").read_text().splitlines()
             if not line.lstrip().startswith("#")]  # fmt: skip
    stage: list[tuple[str, str]] | None = None
    for line in "\n".join(lines).replace("\\\n", " ").splitlines():
        instruction, _, args = line.strip().partition(" ")
        if instruction.upper() == "FROM":
            if stage is not None:
                return stage
            stage = [] if args.split()[-1] == "runtime" else None
        elif stage is not None and instruction:
            stage.append((instruction.upper(), args.strip()))
    raise AssertionError("the Dockerfile has no `runtime` stage")


def image_uid() -> int:
    runtime = dockerfile_runtime()
    (user,) = [args for name, args in runtime if name == "USER"]
    account = user.split(":")[0]
    created = " ".join(args for name, args in runtime if name == "RUN")
    found = re.search(rf"useradd\b[^&]*--uid (\d+)[^&]*\s{account}\b", created)
    assert found, f"the Dockerfile does not create its USER {account} with a fixed uid"
    return int(found.group(1))


# --- the tests ---------------------------------------------------------------------------------


def test_every_object_is_valid_for_kubernetes(builds: dict[str, list[dict[str, Any]]]) -> None:
    examples = [doc for path in EXAMPLES for doc in yaml.safe_load_all(path.read_text())]
    assert len(examples) == 2
    for name, objects in [*builds.items(), ("examples", examples)]:
        for obj in objects:
            for version in VERSIONS:
                try:
                    kubernetes_validate.validate(obj, version, strict=True)
                except kubernetes_validate.ValidationError as exc:
                    where = "/".join(str(part) for part in exc.path)
                    raise AssertionError(
                        f"{name}: {obj['kind']} {obj['metadata']['name']} is not valid for "
                        f"Kubernetes {version} at {where}: {exc.message}"
                    ) from None
    # The examples hold placeholder credentials: no build ships a Secret.
    for name, objects in builds.items():
        assert not of_kind(objects, "Secret"), f"{name} ships a Secret"


def test_every_variable_is_one_the_service_reads(builds: dict[str, list[dict[str, Any]]]) -> None:
    known = settings_variables()
    secret_keys = set(example_secret())
    assert secret_keys <= known, f"the example Secret has {secret_keys - known}"
    for name, objects in builds.items():
        for workload in of_kind(objects, *WORKLOADS):
            where = f"{name}: {workload['metadata']['name']}"
            names = env_names(objects, workload)
            # APP_DB_PASSWORD: read by the overlay's post-bootstrap.sh.
            others = PATRONI_VARIABLES | {"APP_DB_PASSWORD"}
            allowed = known | set(READ_ELSEWHERE) if is_service_pod(workload) else others
            assert names <= allowed, f"{where} sets {sorted(names - allowed)}: read by nothing"
            for variable in container(workload).get("env", []):
                ref = variable.get("valueFrom", {}).get("secretKeyRef")
                if ref and ref["name"] == SECRETS:
                    assert ref["key"] in secret_keys, f"{where}: {ref['key']} not in the example"
                    assert ref["key"] == variable["name"], f"{where}: {variable['name']}"


def pod_environment(
    objects: list[dict[str, Any]], workload: dict[str, Any], *, optional: bool
) -> dict[str, str]:
    """What the container's process finds in its environment, secrets as the example has
    them; with `optional` False, without what an optional reference may leave out."""
    example, values = example_secret(), env_of(objects, workload)
    for variable in container(workload).get("env", []):
        ref = variable.get("valueFrom", {}).get("secretKeyRef")
        if ref and (optional or not ref.get("optional", False)):
            values[variable["name"]] = example.get(ref["key"], "a-secret")
    return values


# Loads project/settings.py once per environment in a fresh interpreter; prints what the
# environment made of the deployment switches, or the error that stopped it.
LOAD_SETTINGS = """
import importlib, json, os, sys
results = []
for environ in json.loads(sys.stdin.read()):
    os.environ.clear()
    os.environ.update(environ)
    try:
        if "project.settings" in sys.modules:
            settings = importlib.reload(sys.modules["project.settings"])
        else:
            settings = importlib.import_module("project.settings")
    except Exception as exc:
        results.append(f"{type(exc).__name__}: {exc}")
    else:
        results.append({"LOCAL": settings.LOCAL, "DEBUG": settings.DEBUG})
print(json.dumps(results))
"""


def test_the_settings_accept_every_pods_environment(
    builds: dict[str, list[dict[str, Any]]],
) -> None:
    cases = [
        (f"{name}: {workload['metadata']['name']} (optional: {optional})",
         pod_environment(objects, workload, optional=optional))
        for name, objects in builds.items()
        for workload in of_kind(objects, *WORKLOADS)
        if is_service_pod(workload)
        for optional in (False, True)
    ]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", LOAD_SETTINGS],
        input=json.dumps([{"PATH": os.environ["PATH"], **env} for _, env in cases]),
        capture_output=True, text=True, cwd=ROOT, timeout=60, check=True,
    )  # fmt: skip
    for (where, _), result in zip(cases, json.loads(done.stdout), strict=True):
        # A deployment: served beyond loopback, so every required variable was there.
        assert result == {"LOCAL": False, "DEBUG": False}, f"{where}: {result}"


def test_the_web_probes_the_health_routes(builds: dict[str, list[dict[str, Any]]]) -> None:
    live, ready = reverse("health-live"), reverse("health-ready")
    for name, objects in builds.items():
        web = named(objects, "Deployment", "resilient-django-web")
        spec = container(web)
        ports = {port["name"]: port["containerPort"] for port in spec["ports"]}
        assert ports == {"http": 8000}, name
        expected = {"startupProbe": live, "livenessProbe": live, "readinessProbe": ready}
        for probe, path in expected.items():
            get = spec[probe]["httpGet"]
            assert get["path"] == path, f"{name}: {probe} asks {get['path']}, not {path}"
            assert get["port"] in ports, f"{name}: {probe} port {get['port']}"
            # The kubelet's Host is the pod's address: a name DJANGO_ALLOWED_HOSTS holds.
            (host,) = [h["value"] for h in get["httpHeaders"] if h["name"] == "Host"]
            assert host in env_of(objects, web)["DJANGO_ALLOWED_HOSTS"].split(","), name
        # The startup probe's budget covers a slow boot before liveness may restart the pod.
        startup = spec["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 60


def test_the_web_runs_the_images_command(builds: dict[str, list[dict[str, Any]]]) -> None:
    (cmd,) = [args for name, args in dockerfile_runtime() if name == "CMD"]
    for name, objects in builds.items():
        web = named(objects, "Deployment", "resilient-django-web")
        assert container(web)["args"] == json.loads(cmd), name
        assert "command" not in container(web), f"{name}: the image's entrypoint must run"


def test_the_grace_periods_outlast_the_drains(builds: dict[str, list[dict[str, Any]]]) -> None:
    for name, objects in builds.items():
        web = named(objects, "Deployment", "resilient-django-web")
        spec, env = container(web), env_of(objects, web)
        pause = spec["lifecycle"]["preStop"]["exec"]["command"]
        assert pause[0] == "sleep", name
        args = spec["args"]
        graceful = float(args[args.index("--timeout-graceful-shutdown") + 1])
        drain = (float(pause[1]) + float(env["SHUTDOWN_DRAIN_DELAY"]) + graceful
                 + float(env["SHUTDOWN_TIMEOUT"]))  # fmt: skip
        grace = pod_template(web)["spec"]["terminationGracePeriodSeconds"]
        assert grace > drain, f"{name}: web's grace {grace} s <= its drain {drain} s"
        worker = named(objects, "Deployment", "resilient-django-worker")
        grace = pod_template(worker)["spec"]["terminationGracePeriodSeconds"]
        assert grace > float(env_of(objects, worker)["WORKER_SHUTDOWN_TIMEOUT"]), name


def test_the_pods_run_restricted_as_the_images_user(
    builds: dict[str, list[dict[str, Any]]],
) -> None:
    uid = image_uid()
    (env,) = [args for name, args in dockerfile_runtime() if name == "ENV"]
    multiproc = re.search(r"PROMETHEUS_MULTIPROC_DIR=(\S+)", env)
    assert multiproc, "the image sets PROMETHEUS_MULTIPROC_DIR"
    for name, objects in builds.items():
        for workload in of_kind(objects, *WORKLOADS):
            where = f"{name}: {workload['metadata']['name']}"
            pod = pod_template(workload)["spec"]
            assert pod["securityContext"]["runAsNonRoot"] is True, where
            assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
            spec = container(workload)
            context = spec["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["capabilities"] == {"drop": ["ALL"]}, where
            assert "resources" in spec, where
            assert {"cpu", "memory"} <= set(spec["resources"]["requests"]), where
            assert "memory" in spec["resources"]["limits"], where
            if not is_service_pod(workload):
                continue
            assert pod["securityContext"]["runAsUser"] == uid, where
            # The only writable place: /tmp, where prometheus-client keeps its files.
            empty = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
            mounts = [m["mountPath"] for m in spec["volumeMounts"] if m["name"] in empty]
            assert mounts == ["/tmp"], where
            assert Path(multiproc.group(1)).is_relative_to("/tmp"), where


def test_every_selector_finds_its_pods(builds: dict[str, list[dict[str, Any]]]) -> None:
    for name, objects in builds.items():
        workloads = of_kind(objects, "Deployment", "StatefulSet")
        (hpa,) = of_kind(objects, "HorizontalPodAutoscaler")
        target = hpa["spec"]["scaleTargetRef"]
        assert (target["kind"], target["name"]) == ("Deployment", "resilient-django-web"), name
        web = named(objects, "Deployment", target["name"])
        assert "replicas" not in web["spec"], f"{name}: the HPA owns the web's replicas"
        budgets = of_kind(objects, "PodDisruptionBudget")
        covered: set[str] = set()
        for budget in budgets:
            selector = budget["spec"]["selector"]["matchLabels"]
            found = [w["metadata"]["name"] for w in workloads if matches(selector, pod_labels(w))]
            assert len(found) == 1, f"{name}: PDB {budget['metadata']['name']} selects {found}"
            covered |= set(found)
        assert {"resilient-django-web", "resilient-django-worker"} <= covered, name
        for workload in workloads:
            where = f"{name}: {workload['metadata']['name']}"
            own = workload["spec"]["selector"]["matchLabels"]
            assert matches(own, pod_labels(workload)), where
            # Spreading and anti-affinity count the workload's own pods.
            pod = pod_template(workload)["spec"]
            terms = [c["labelSelector"] for c in pod.get("topologySpreadConstraints", [])]
            anti = pod.get("affinity", {}).get("podAntiAffinity", {})
            terms += [
                t["podAffinityTerm"]["labelSelector"]
                for t in anti.get("preferredDuringSchedulingIgnoredDuringExecution", [])
            ]
            for term in terms:
                assert matches(term["matchLabels"], pod_labels(workload)), where
        for service in of_kind(objects, "Service"):
            selector = service["spec"].get("selector")
            if selector is None:
                continue  # Patroni's, whose Endpoints Patroni writes (the next test)
            # Patroni sets `role` on its members at run time; the templates cannot have it.
            static = {k: v for k, v in selector.items() if k != "role"}
            found = [w for w in workloads if matches(static, pod_labels(w))]
            assert len(found) == 1, f"{name}: Service {service['metadata']['name']} selects " \
                f"{[w['metadata']['name'] for w in found]}"  # fmt: skip
            ports = {p.get("name") for p in container(found[0])["ports"]}
            ports |= {p["containerPort"] for p in container(found[0])["ports"]}
            for port in service["spec"]["ports"]:
                assert port["targetPort"] in ports, f"{name}: {service['metadata']['name']}"


def test_the_patroni_overlay_points_the_service_at_its_members(
    builds: dict[str, list[dict[str, Any]]],
) -> None:
    objects = builds["patroni"]
    members = named(objects, "StatefulSet", "resilient-django-db")
    env = env_of(objects, members)
    assert env["PATRONI_KUBERNETES_USE_ENDPOINTS"] == "true"
    labels = yaml.safe_load(env["PATRONI_KUBERNETES_LABELS"])
    assert matches(labels, pod_labels(members))
    assert labels[env["PATRONI_KUBERNETES_SCOPE_LABEL"]] == env["PATRONI_SCOPE"]
    # The leader Service is the scope's Endpoints, which Patroni writes with this port name.
    leader = named(objects, "Service", env["PATRONI_SCOPE"])
    assert "selector" not in leader["spec"]
    (port,) = json.loads(env["PATRONI_KUBERNETES_PORTS"])
    assert [(p["name"], p["port"]) for p in leader["spec"]["ports"]] == [
        (port["name"], port["port"])
    ]
    replicas = named(objects, "Service", f"{env['PATRONI_SCOPE']}-repl")
    role = env["PATRONI_KUBERNETES_ROLE_LABEL"]
    assert replicas["spec"]["selector"][role] == env["PATRONI_KUBERNETES_FOLLOWER_LABEL_VALUE"]
    # Every process of the service writes through the leader and reads through the replicas.
    for workload in of_kind(objects, *WORKLOADS):
        if not is_service_pod(workload):
            continue
        values = env_of(objects, workload)
        where = workload["metadata"]["name"]
        assert f"@{leader['metadata']['name']}:5432/" in values["DATABASE_URL"], where
        assert "target_session_attrs=read-write" in values["DATABASE_URL"], where
        assert f"@{replicas['metadata']['name']}:5432/" in values["DATABASE_REPLICA_URLS"], where
    # What Patroni's Kubernetes DCS does with the API, the Role allows.
    (role_object,) = of_kind(objects, "Role")
    allowed = {(resource, verb) for rule in role_object["rules"]
               for resource in rule["resources"] for verb in rule["verbs"]}  # fmt: skip
    needed = {("endpoints", verb) for verb in ("get", "list", "watch", "create", "patch")}
    needed |= {("pods", verb) for verb in ("get", "list", "watch", "patch")}
    assert needed <= allowed
    (binding,) = of_kind(objects, "RoleBinding")
    assert binding["subjects"][0]["name"] == pod_template(members)["spec"]["serviceAccountName"]
