"""The deployment files (deploy/) agree with each other and with the project, as an operator would notice.

Plain YAML and text, no network, no cluster, no Docker: schema validation is ./scripts/validate-deploy.sh's job.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Dict, Iterator, List, Set
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
SECRET_NAME = "shop-bot-secrets"
SECRET_LIKE = re.compile(r"PASSWORD|TOKEN|SECRET", re.I)
K8S_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
COMPOSE_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?+])?([^}]*)\}")
# The contract the bot reads (docs/deployment.md): which variables each server needs.
RASA_ENV = {"ACTION_ENDPOINT_URL", "TRACKER_STORE_URL", "LOCK_STORE_TYPE", "REDIS_HOST", "REDIS_PORT",
            "REDIS_PASSWORD", "EVENT_BROKER_URL", "EVENT_BROKER_QUEUE", "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET"}
ACTIONS_ENV = {"DATABASE_URL"}
CONSUMER_ENV = {"EVENT_BROKER_URL", "EVENT_BROKER_QUEUE", "EVENTS_DATABASE_URL"}
# Rasa's own `redis` lock store can give two replicas the same ticket (shop/lock_store.py).
REPLICA_LOCK_STORE = "shop.lock_store.AtomicRedisLockStore"
RASA_ARGS = ["--enable-api", "--model", "models/shop.tar.gz", "--endpoints", "endpoints.yml",
             "--credentials", "credentials.yml", "--port", "5005"]

KUSTOMIZATION = yaml.safe_load((K8S / "kustomization.yaml").read_text())
RESOURCES: List[dict] = [
    doc for name in KUSTOMIZATION["resources"] if (K8S / name).is_file()
    for doc in yaml.safe_load_all((K8S / name).read_text()) if doc
]
EXAMPLE_SECRET = yaml.safe_load((K8S / "secret.example.yaml").read_text())
COMPOSE = yaml.safe_load((DEPLOY / "compose.yml").read_text())
HAPROXY = (DEPLOY / "haproxy.cfg").read_text()
DOCKERFILE = (DEPLOY / "Dockerfile").read_text()


def of_kind(kind: str) -> Dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in RESOURCES if doc["kind"] == kind}


DEPLOYMENTS = of_kind("Deployment")
CONFIG = {key for config in of_kind("ConfigMap").values() for key in config["data"]}


def containers(deployment: dict, init: bool = True) -> List[dict]:
    spec = deployment["spec"]["template"]["spec"]
    return spec["containers"] + (spec.get("initContainers", []) if init else [])


def all_containers() -> Iterator[tuple]:
    for name, deployment in DEPLOYMENTS.items():
        for container in containers(deployment):
            yield f"{name}/{container['name']}", container


def env_names(container: dict) -> Set[str]:
    """Every variable the container gets: its env entries and the keys of the ConfigMaps it takes whole."""
    names = {entry["name"] for entry in container.get("env", [])}
    for source in container.get("envFrom", []):
        config = of_kind("ConfigMap").get(source.get("configMapRef", {}).get("name"))
        names |= set(config["data"]) if config else set()
    return names


def main_container(deployment_name: str) -> dict:
    return containers(DEPLOYMENTS[deployment_name], init=False)[0]


def compose_service(name: str) -> dict:
    return COMPOSE["services"][name]


def endpoints_variables() -> Set[str]:
    """Every ${NAME} in the values of endpoints.yml and credentials.yml: Rasa refuses to start if one is unset."""
    found: Set[str] = set()

    def walk(node) -> None:
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
        elif isinstance(node, str):
            found.update(match.group(1) for match in COMPOSE_REF.finditer(node))

    for name in ("endpoints.yml", "credentials.yml"):
        walk(yaml.safe_load((ROOT / name).read_text()))
    return found


# ---- Kubernetes -------------------------------------------------------------------------------------------------


def test_kustomization_lists_files_that_exist_and_never_the_example_secret():
    listed = KUSTOMIZATION["resources"]
    assert [name for name in listed if not (K8S / name).is_file()] == []
    assert "secret.example.yaml" not in listed
    assert not of_kind("Secret"), "secrets are created from a secret store, never applied from the repository"
    unlisted = {path.name for path in K8S.glob("*.yaml")} - set(listed) - {"kustomization.yaml", "secret.example.yaml"}
    assert unlisted == set(), "a manifest in deploy/kubernetes that kustomize would never apply"


def test_every_container_has_probes_and_resources():
    for name, deployment in DEPLOYMENTS.items():
        for container in containers(deployment):
            resources = container.get("resources", {})
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(kind, {})), f"{name}/{container['name']}: {kind}"
        for container in containers(deployment, init=False):
            assert "readinessProbe" in container and "livenessProbe" in container, f"{name}/{container['name']}"


def test_rasa_waits_for_its_model_before_liveness_counts():
    rasa = main_container("shop-rasa")
    startup = rasa["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120, "the model alone takes ~30 s to load"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        # /status needs ?token= once the API has a token; GET / answers "Hello from Rasa" without one.
        assert rasa[probe]["httpGet"]["path"] == "/"
    assert main_container("shop-actions")["readinessProbe"]["httpGet"]["path"] == "/health"


def test_no_literal_secret_in_the_manifests():
    secret_keys = set(EXAMPLE_SECRET["stringData"])
    for where, container in all_containers():
        for entry in container.get("env", []):
            ref = entry.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["name"] == SECRET_NAME and ref["key"] in secret_keys, f"{where}: {entry['name']}"
            elif SECRET_LIKE.search(entry["name"]):
                pytest.fail(f"{where}: {entry['name']} must come from the Secret {SECRET_NAME}")
            value = entry.get("value", "")
            password = urlsplit(value).password if "://" in value else None
            assert password is None or K8S_REF.fullmatch(password), f"{where}: {entry['name']} has a literal password"
    for config in of_kind("ConfigMap").values():
        for key, value in config["data"].items():
            assert not SECRET_LIKE.search(key), f"ConfigMap key {key} looks like a secret"
            assert "://" not in value or urlsplit(value).password is None, f"ConfigMap {key} holds a password"


def test_example_secret_holds_only_placeholders_found_nowhere_else():
    values = EXAMPLE_SECRET["stringData"].values()
    assert all(value.startswith("CHANGE-ME") for value in values)
    others = [path for path in DEPLOY.rglob("*") if path.is_file() and path.name != "secret.example.yaml"]
    for path in others:
        assert not any(value in path.read_text() for value in values), f"{path} copies a placeholder secret"


def test_dependent_variables_are_defined_before_they_are_used():
    """Kubernetes expands $(NAME) only from variables defined earlier; a typo would reach Rasa as literal text."""
    for where, container in all_containers():
        defined = env_names({"envFrom": container.get("envFrom", [])})
        for entry in container.get("env", []):
            for name in K8S_REF.findall(entry.get("value", "")):
                assert name in defined, f"{where}: {entry['name']} uses $({name}) before it is defined"
            defined.add(entry["name"])
        for arg in container.get("args", []) + container.get("command", []):
            for name in K8S_REF.findall(arg):
                assert name in defined, f"{where}: argument uses $({name}), never defined"


def test_each_server_gets_the_variables_it_reads():
    assert RASA_ENV <= env_names(main_container("shop-rasa"))
    assert of_kind("ConfigMap")["shop-bot-config"]["data"]["LOCK_STORE_TYPE"] == REPLICA_LOCK_STORE
    assert ACTIONS_ENV <= env_names(main_container("shop-actions"))
    assert CONSUMER_ENV <= env_names(main_container("shop-event-consumer"))


def test_every_endpoints_variable_is_set_for_rasa_in_kubernetes_and_compose():
    """Rasa refuses to start when a ${NAME} of endpoints.yml is unset (empty is fine)."""
    wanted = endpoints_variables()
    assert wanted, "endpoints.yml names no variable"
    assert sorted(wanted - env_names(main_container("shop-rasa"))) == [], "missing in deploy/kubernetes/rasa.yaml"
    assert sorted(wanted - set(compose_service("rasa")["environment"])) == [], "missing in deploy/compose.yml"


def test_servers_start_with_the_documented_commands():
    rasa = main_container("shop-rasa")["args"]
    compose_rasa = compose_service("rasa")["command"]
    for command in (rasa, compose_rasa):
        assert command[:2] == ["rasa", "run"]
        for flag, value in zip(RASA_ARGS[1::2], RASA_ARGS[2::2], strict=True):
            assert command[command.index(flag) + 1] == value
        # The HTTP API is never on without a token.
        assert "--enable-api" in command and command[command.index("--auth-token") + 1]
    assert "$(RASA_AUTH_TOKEN)" in rasa and "${RASA_AUTH_TOKEN:?" in " ".join(compose_rasa)
    for command in (main_container("shop-actions")["args"], compose_service("actions")["command"]):
        assert command == ["rasa", "run", "actions", "--actions", "actions", "--port", "5055"]
    for command in (main_container("shop-event-consumer")["args"], compose_service("event-consumer")["command"]):
        assert command == ["python", "-m", "shop.event_consumer"]
    assert "COPY ${MODEL} /app/models/shop.tar.gz" in DOCKERFILE, "the model lands where --model looks"


def test_autoscalers_and_disruption_budgets_target_existing_pods():
    for hpa in of_kind("HorizontalPodAutoscaler").values():
        target = hpa["spec"]["scaleTargetRef"]
        assert target["kind"] == "Deployment" and target["name"] in DEPLOYMENTS
        assert hpa["spec"]["minReplicas"] >= 2
        # CPU utilisation is measured against the request: without one the autoscaler does nothing.
        assert all("cpu" in c["resources"]["requests"] for c in containers(DEPLOYMENTS[target["name"]], init=False))
    assert {hpa["spec"]["scaleTargetRef"]["name"] for hpa in of_kind("HorizontalPodAutoscaler").values()} == {
        "shop-rasa", "shop-actions"}
    for pdb in of_kind("PodDisruptionBudget").values():
        assert selected_deployments(pdb["spec"]["selector"]["matchLabels"]), pdb["metadata"]["name"]


def selected_deployments(selector: Dict[str, str]) -> List[str]:
    return [name for name, deployment in DEPLOYMENTS.items()
            if selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()]


def test_services_select_existing_pods_on_ports_they_open():
    services = of_kind("Service")
    assert {"shop-rasa", "shop-actions"} <= set(services)
    for name, service in services.items():
        chosen = selected_deployments(service["spec"]["selector"])
        assert len(chosen) == 1, f"Service {name} selects {chosen}"
        ports = {port.get("name") for c in containers(DEPLOYMENTS[chosen[0]], init=False) for port in c["ports"]}
        ports |= {port["containerPort"] for c in containers(DEPLOYMENTS[chosen[0]], init=False) for port in c["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, f"Service {name}: no container port {port['targetPort']}"
    # Rasa reaches the action server through its Service.
    url = urlsplit(of_kind("ConfigMap")["shop-bot-config"]["data"]["ACTION_ENDPOINT_URL"])
    assert url.port in {port["port"] for port in services[url.hostname]["spec"]["ports"]}


def test_ingress_is_sticky_for_socketio_and_exposes_only_the_channels():
    (ingress,) = of_kind("Ingress").values()
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/affinity"] == "cookie"
    assert annotations["nginx.ingress.kubernetes.io/affinity-mode"] == "persistent"
    paths = [path for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]]
    assert {path["path"] for path in paths} == {"/socket.io", "/webhooks"}, "Rasa's HTTP API stays inside"
    services = of_kind("Service")
    for path in paths:
        backend = path["backend"]["service"]
        assert backend["port"]["name"] in {port["name"] for port in services[backend["name"]]["spec"]["ports"]}


# ---- Docker Compose and the balancer ----------------------------------------------------------------------------


def test_compose_runs_replicas_with_healthchecks():
    assert compose_service("rasa")["deploy"]["replicas"] >= 2
    assert compose_service("actions")["deploy"]["replicas"] >= 2
    for name, service in COMPOSE["services"].items():
        if service.get("restart") != "no":  # one-shot jobs excepted
            assert "healthcheck" in service, name
    assert "/health" in " ".join(compose_service("actions")["healthcheck"]["test"])
    assert compose_service("rasa")["environment"]["LOCK_STORE_TYPE"] == REPLICA_LOCK_STORE
    assert RASA_ENV <= set(compose_service("rasa")["environment"])
    assert ACTIONS_ENV <= set(compose_service("actions")["environment"])
    assert CONSUMER_ENV <= set(compose_service("event-consumer")["environment"])


def test_compose_takes_every_secret_from_the_environment():
    for name, service in COMPOSE["services"].items():
        for key, value in (service.get("environment") or {}).items():
            value = str(value)
            if SECRET_LIKE.search(key):
                match = COMPOSE_REF.fullmatch(value)
                assert match, f"{name}: {key} must be ${{VAR:?...}}, not a literal"
                # Only the optional Slack credentials may default, and only to nothing.
                assert match.group(2) == ":?" or (key.startswith("SLACK_") and match.group(3) == ""), f"{name}: {key}"
            if "://" in value and urlsplit(value).password is not None:
                assert value.count("${") and ":?" in value, f"{name}: {key} has a literal password"
    command = " ".join(compose_service("rasa")["command"])
    assert re.search(r"--auth-token \$\{RASA_AUTH_TOKEN:\?", command)


def haproxy_sections() -> Dict[str, List[str]]:
    sections: Dict[str, List[str]] = {}
    current = None
    for raw in HAPROXY.splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line:
            continue
        if not raw[0].isspace():
            current = line
            sections[current] = []
        elif current:
            sections[current].append(line.strip())
    return sections


def frontend_backend(sections: Dict[str, List[str]], frontend: List[str], acl_test: str = "") -> List[str]:
    """The backend a frontend sends requests to: the one its ACL containing `acl_test` picks, else the default."""
    if acl_test:
        acl = next(line.split()[1] for line in frontend if line.startswith("acl") and acl_test in line)
        name = next(line.split()[1] for line in frontend if line.startswith("use_backend") and line.endswith(acl))
    else:
        name = next(line.split()[1] for line in frontend if line.startswith("default_backend"))
    return sections[f"backend {name}"]


def servers(backend: List[str]) -> Set[str]:
    return {line.split()[3] if line.startswith("server-template") else line.split()[2]
            for line in backend if line.startswith(("server ", "server-template "))}


def test_the_compose_balancer_keeps_socketio_sticky_and_checks_every_server():
    sections = haproxy_sections()
    customers = sections["frontend shop"]
    port = compose_service("balancer")["ports"][0]
    assert any(line == f"bind :{str(port).rsplit(':', 1)[-1]}" for line in customers), "the published port"
    sticky = frontend_backend(sections, customers, "path_beg /socket.io")
    assert any(line.startswith("cookie ") and " insert" in line for line in sticky), "socket.io must be sticky"
    assert "balance source" in sticky, "without a cookie, the client's address keeps it on one replica"
    assert servers(sticky) == servers(frontend_backend(sections, customers)) == {"rasa:5005"}
    # Rasa's action endpoint is the balancer's port 5055, in front of the action servers.
    url = urlsplit(compose_service("rasa")["environment"]["ACTION_ENDPOINT_URL"])
    assert url.hostname == "balancer"
    (action_frontend,) = [lines for header, lines in sections.items()
                          if header.startswith("frontend") and f"bind :{url.port}" in lines]
    assert servers(frontend_backend(sections, action_frontend)) == {"actions:5055"}
    for header, lines in sections.items():
        if header.startswith("backend"):
            assert any(line.startswith("option httpchk") for line in lines), f"{header}: no health check"
    assert "default-server check" in " ".join(sections["defaults"]), "servers are health-checked"
    assert any(config.get("source") == "haproxy" for config in compose_service("balancer")["configs"])
    assert COMPOSE["configs"]["haproxy"]["file"] == "./haproxy.cfg"


# ---- The image ---------------------------------------------------------------------------------------------------


def test_the_image_is_built_like_scripts_setup():
    for lock in ("requirements/base.lock", "requirements/extra.lock", "requirements/nodeps.lock"):
        assert Path(lock).name in DOCKERFILE
    assert "--no-deps --ignore-requires-python" in DOCKERFILE
    assert "python -m generator.prepare" in DOCKERFILE
    for setting in ("RASA_TELEMETRY_ENABLED=false", "HF_HUB_OFFLINE=1", "TRANSFORMERS_OFFLINE=1",
                    "OMP_WAIT_POLICY=PASSIVE", "PYTHONPATH=/app"):
        assert setting in DOCKERFILE
    users = re.findall(r"^USER (\d+)$", DOCKERFILE, re.M)
    assert users and users[-1] != "0", "the containers run as a numeric non-root user"
    for name, deployment in DEPLOYMENTS.items():
        assert str(deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"]) == users[-1], name


def dockerignored(path: str, patterns: List[str]) -> bool:
    """Docker's rule: the last pattern matching the path (or a folder above it) decides; `!` keeps."""
    ignored = False
    for pattern in patterns:
        keep = pattern.startswith("!")
        regex = re.escape(pattern.lstrip("!").strip("/")).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        parts = path.split("/")
        if any(re.fullmatch(regex, "/".join(parts[:i])) for i in range(1, len(parts) + 1)):
            ignored = not keep
    return ignored


def test_the_build_context_keeps_what_the_servers_need_and_nothing_local():
    ignore = DEPLOY / "Dockerfile.dockerignore"
    patterns = [line.strip() for line in ignore.read_text().splitlines() if line.strip() and not line.startswith("#")]
    try:
        tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        tracked = ""
    files = set(tracked.split()) | {
        "actions/__init__.py", "shop/__init__.py", "generator/__init__.py", "channels/__init__.py",
        "custom_components/__init__.py", "data/knowledge/policies.yml", "requirements/base.lock",
        "endpoints.yml", "credentials.yml", "domain.yml", "shop.yml", "generator.yml"}
    needed = [f for f in files if f.split("/")[0] in {"actions", "shop", "generator", "channels", "custom_components",
                                                       "requirements", "data"} or "/" not in f and f.endswith(".yml")]
    assert [f for f in needed if dockerignored(f, patterns)] == []
    assert not dockerignored("models/shop.tar.gz", patterns)
    for local in (".venv/bin/python", "var/shop.db", "var/tracker.db", ".git/config", "models/.gitkeep",
                  "tests/test_actions.py", "shop/__pycache__/db.cpython-311.pyc"):
        assert dockerignored(local, patterns), local
