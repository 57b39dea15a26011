"""deploy/: the Kubernetes manifests validated offline against the Kubernetes 1.28 schemas (kubernetes-validate,
strict: unknown fields are errors), and checked against the project itself: the probes hit the paths the
servers answer, every variable endpoints.production.yml needs reaches the Rasa container, the topology is
the tested one (two replicas at least, shared rooms, sticky entry), and the memory requests cover the RSS
measured by the benchmark (reports/perf/bench.json). The HAProxy configuration is checked by haproxy itself
when it is installed."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from typing import Any, Dict, List

import kubernetes_validate
import pytest
import yaml

from bot import PROJECT_ROOT

KUBERNETES = PROJECT_ROOT / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.28.0"
BENCH = PROJECT_ROOT / "reports" / "perf" / "bench.json"


def _documents() -> List[Dict[str, Any]]:
    documents = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        documents += [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    return documents


DOCUMENTS = _documents()


def _one(kind: str, name: str) -> Dict[str, Any]:
    found = [d for d in DOCUMENTS if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}"
    return found[0]


def _containers(deployment: str) -> Dict[str, Dict[str, Any]]:
    spec = _one("Deployment", deployment)["spec"]["template"]["spec"]
    return {c["name"]: c for c in spec["containers"]}


def _env_names(container: Dict[str, Any]) -> set:
    names = {e["name"] for e in container.get("env", [])}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            names |= set(_one("ConfigMap", source["configMapRef"]["name"])["data"])
    return names


def _mebibytes(quantity: str) -> float:
    units = {"Mi": 1, "Gi": 1024, "M": 1e6 / 2**20, "G": 1e9 / 2**20}
    number, unit = re.fullmatch(r"([\d.]+)([A-Za-z]*)", quantity).groups()
    return float(number) * units[unit]


def test_the_manifests_exist_and_validate_against_the_kubernetes_schemas_strictly():
    kinds = {d["kind"] for d in DOCUMENTS}
    assert {"Deployment", "Service", "ConfigMap", "HorizontalPodAutoscaler", "PodDisruptionBudget",
            "NetworkPolicy", "Ingress"} <= kinds
    for document in DOCUMENTS:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_an_invalid_manifest_is_refused():
    broken = json.loads(json.dumps(_one("Deployment", "debt-help-rasa")))
    broken["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)
    broken = json.loads(json.dumps(_one("Deployment", "debt-help-rasa")))
    # A misspelt field, which Kubernetes would drop without a word: strict validation refuses it.
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"httpGet": {"path": "/", "port": 5005}}
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_every_container_has_probes_on_the_paths_its_server_answers():
    # The same paths bot/ops/servers.py waits on: Rasa's /, the action server's and the desk's /health.
    expected = {("debt-help-rasa", "rasa"): "/", ("debt-help-rasa", "action-server"): "/health",
                ("debt-help-desk", "desk"): "/health"}
    for (deployment, name), path in expected.items():
        container = _containers(deployment)[name]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        for probe in ("readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"]["path"] == path, (deployment, name, probe)
            assert container[probe]["httpGet"]["port"] in ports, (deployment, name, probe)
    assert _containers("debt-help-rasa")["rasa"]["startupProbe"]["httpGet"]["path"] == "/"


def test_the_rasa_container_gets_every_variable_the_production_endpoints_need():
    endpoints = (PROJECT_ROOT / "endpoints.production.yml").read_text(encoding="utf-8")
    needed = set(re.findall(r"\$\{(\w+)\}", endpoints))
    assert {"DB_HOST", "REDIS_HOST", "ACTION_SERVER_PORT"} <= needed
    rasa = _containers("debt-help-rasa")["rasa"]
    assert needed <= _env_names(rasa)
    assert "--endpoints" in rasa["command"] and "endpoints.production.yml" in rasa["command"]
    assert "bot.ops.rasa_launcher" in rasa["command"], "the launcher keeps the API token off the command line"
    assert "--auth-token" not in rasa["command"] and "--cors" not in rasa["command"]
    assert {"SESSION_TOKEN_KEY", "BANK_SIGNING_KEY"} <= _env_names(rasa), "every replica needs the channel keys"
    assert {"LEADS_DATABASE_URL", "WECHAT_STORE_URL"} <= _env_names(rasa), "shared stores, not per-pod SQLite"


def test_exactly_one_compliance_consumer_reads_what_the_replicas_publish():
    consumer = _one("Deployment", "debt-help-compliance-consumer")
    assert consumer["spec"]["replicas"] == 1, "the hash chain of turn rows has one writer"
    (container,) = consumer["spec"]["template"]["spec"]["containers"]
    assert container["command"][-1] == "endpoints.production.yml"
    endpoints = (PROJECT_ROOT / "endpoints.production.yml").read_text(encoding="utf-8")
    rabbit = {name for name in re.findall(r"\$\{(\w+)\}", endpoints) if name.startswith("RABBITMQ_")}
    assert rabbit and rabbit <= _env_names(container)
    assert "COMPLIANCE_DATABASE_URL" in _env_names(container)


def test_the_rasa_replicas_trust_the_balancers_forwarded_address():
    """Behind HAProxy every client has the balancer's address unless Sanic reads X-Forwarded-For: the
    per-client rate limit would then throttle all customers together."""
    rasa = _containers("debt-help-rasa")["rasa"]
    assert "SANIC_PROXIES_COUNT" in _env_names(rasa)
    assert _one("ConfigMap", "debt-help-config")["data"]["SANIC_PROXIES_COUNT"] == "1"
    assert re.search(r"^\s*option forwardfor", (PROJECT_ROOT / "deploy/haproxy/haproxy.cfg").read_text(), re.M)


def test_no_container_sets_a_variable_the_servers_refuse_at_start():
    """bot.handoff.config refuses the shared desk secret and plaintext agent tokens at start-up: a manifest that
    still sets one would leave its pod crash-looping."""
    from bot.handoff.config import REFUSED_VARIABLES

    for deployment in (d for d in DOCUMENTS if d["kind"] == "Deployment"):
        for name, container in _containers(deployment["metadata"]["name"]).items():
            assert not set(REFUSED_VARIABLES) & _env_names(container), (deployment["metadata"]["name"], name)


def test_the_topology_is_the_tested_one():
    rasa_pod = _containers("debt-help-rasa")
    # endpoints.production.yml calls the action server on 127.0.0.1: it must run in the Rasa pod.
    assert set(rasa_pod) == {"rasa", "action-server"}
    config = _one("ConfigMap", "debt-help-config")["data"]
    assert config["ACTION_SERVER_PORT"] == str(rasa_pod["action-server"]["ports"][0]["containerPort"])
    assert _one("Deployment", "debt-help-rasa")["spec"]["replicas"] >= 2
    assert _one("HorizontalPodAutoscaler", "debt-help-rasa")["spec"]["minReplicas"] >= 2
    rasa_env = _env_names(rasa_pod["rasa"])
    assert {"SOCKETIO_REDIS_URL", "WECHAT_STORE_URL", "RASA_AUTH_TOKEN"} <= rasa_env
    assert config["SOCKETIO_REDIS_URL"].startswith("redis://")
    desk_env = _env_names(_containers("debt-help-desk")["desk"])
    assert {"HANDOFF_DATABASE_URL", "RASA_URL", "RASA_AUTH_TOKEN", "HANDOFF_INTAKE_TOKEN"} <= desk_env
    assert "COMPLIANCE_DATABASE_URL" in desk_env, "the desk's compliance page reads the compliance record"
    assert config["RASA_URL"] == "http://debt-help-rasa:5005", "the desk reaches any replica via the Service"
    assert "HANDOFF_INTAKE_TOKEN" in _env_names(rasa_pod["action-server"])
    assert "HANDOFF_INTAKE_TOKEN" not in _env_names(rasa_pod["rasa"]), "the intake token stays off Rasa"
    ingress = _one("Ingress", "debt-help-rasa")
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/affinity"] == "cookie"
    paths = {p["path"] for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]}
    assert paths == {"/webhooks/", "/socket.io/"}, "Rasa's HTTP API is not exposed"
    policy = _one("NetworkPolicy", "debt-help-rasa")["spec"]["ingress"]
    assert [p["port"] for rule in policy for p in rule["ports"]] == [5005], "the action server is not exposed"


def test_the_commands_name_modules_and_files_that_exist():
    for deployment in ("debt-help-rasa", "debt-help-desk", "debt-help-compliance-consumer"):
        for container in _containers(deployment).values():
            command = container["command"]
            assert command[:2] == ["python", "-m"]
            module = command[2]
            if module.startswith("bot"):
                path = PROJECT_ROOT / module.replace(".", "/")
                assert path.is_dir() or path.with_suffix(".py").exists(), module
            for flag in ("--credentials", "--endpoints", "--actions"):
                if flag in command:
                    assert (PROJECT_ROOT / command[command.index(flag) + 1]).exists(), flag


@pytest.mark.skipif(not BENCH.exists(), reason="reports/perf/bench.json is missing (python -m bot bench)")
def test_memory_requests_cover_the_measured_rss():
    measured = json.loads(BENCH.read_text(encoding="utf-8"))["servers"]["project"]["rss_mb"]
    containers = {"rasa_server": _containers("debt-help-rasa")["rasa"],
                  "action_server": _containers("debt-help-rasa")["action-server"],
                  "agent_desk": _containers("debt-help-desk")["desk"]}
    for server, container in containers.items():
        request = _mebibytes(container["resources"]["requests"]["memory"])
        limit = _mebibytes(container["resources"]["limits"]["memory"])
        assert request >= measured[server], (server, request, measured[server])
        assert limit >= 1.25 * measured[server], (server, limit, measured[server])


def _haproxy() -> str:
    found = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.access("/usr/sbin/haproxy", os.X_OK) else None)
    if found is None:
        pytest.skip("haproxy is not installed (scripts/setup-haproxy installs it)")
    return found


def test_the_haproxy_configuration_is_valid_and_sticky():
    config = PROJECT_ROOT / "deploy" / "haproxy" / "haproxy.cfg"
    env = {**os.environ, "BALANCER_BIND": "127.0.0.1:1", "RASA_REPLICA_A": "127.0.0.1:2",
           "RASA_REPLICA_B": "127.0.0.1:3"}
    checked = subprocess.run([_haproxy(), "-c", "-f", str(config)], env=env, capture_output=True, text=True,
                             timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    text = config.read_text(encoding="utf-8")
    assert re.search(r"^\s*cookie RASA_REPLICA insert", text, re.M)
    assert re.search(r"^\s*option httpchk GET /$", text, re.M)
