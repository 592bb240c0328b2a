"""The Kubernetes manifests render, validate against the API schemas, and agree with the image and CLI."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped, unused-ignore]
import kubernetes_validate
import pytest
import yaml

from deploy.kubernetes import generate_prometheusrule
from exporter.cli import build_parser
from exporter.collector.budget import daily_budget
from exporter.config import load_config
from tests.support.tools import REPO_ROOT, require_tool

KUBERNETES_DIR = REPO_ROOT / "deploy" / "kubernetes"
VARIANTS = ("single", "sharded")
# The oldest release the sharded variant supports (the StatefulSet pod-index label) and the newest
# release the installed kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.28", kubernetes_validate.utils.latest_version())
BUILT_IN_KINDS = {
    "single": ["ConfigMap", "Deployment", "Service"],
    "sharded": ["ConfigMap", "PodDisruptionBudget", "Service", "StatefulSet"],
}
CONTAINER_NAME = "codat-exporter"
CONFIG_PATH = "/etc/codat-exporter/config.yaml"

# The fields of the Prometheus Operator kinds these manifests use (monitoring.coreos.com/v1);
# kubernetes-validate ships only the built-in kinds.
_LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
_METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "labels": _LABELS,
    },
}
_DURATION = {"type": "string", "pattern": r"^(\d+(ms|s|m|h|d|w|y))+$"}


def _operator_resource_schema(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    """The schema of a Prometheus Operator resource of ``kind`` whose ``spec`` follows ``spec``."""
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "kind": {"const": kind},
            "metadata": _METADATA,
            "spec": spec,
        },
    }


SERVICE_MONITOR_SCHEMA = _operator_resource_schema(
    "ServiceMonitor",
    {
        "type": "object",
        "required": ["selector", "endpoints"],
        "additionalProperties": False,
        "properties": {
            "selector": {
                "type": "object",
                "required": ["matchLabels"],
                "properties": {"matchLabels": _LABELS},
            },
            "endpoints": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["port"],
                    "additionalProperties": False,
                    "properties": {
                        "port": {"type": "string"},
                        "path": {"type": "string", "pattern": "^/"},
                        "interval": _DURATION,
                        "scrapeTimeout": _DURATION,
                    },
                },
            },
        },
    },
)
PROMETHEUS_RULE_SCHEMA = _operator_resource_schema(
    "PrometheusRule",
    {
        "type": "object",
        "required": ["groups"],
        "additionalProperties": False,
        "properties": {
            "groups": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["name", "rules"],
                    "additionalProperties": False,
                    "properties": {
                        "name": {"type": "string", "minLength": 1},
                        "interval": _DURATION,
                        "rules": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["expr"],
                                "oneOf": [{"required": ["record"]}, {"required": ["alert"]}],
                                "additionalProperties": False,
                                "properties": {
                                    "record": {"type": "string"},
                                    "alert": {"type": "string"},
                                    "expr": {"type": "string", "minLength": 1},
                                    "for": _DURATION,
                                    "keep_firing_for": _DURATION,
                                    "labels": _LABELS,
                                    "annotations": _LABELS,
                                },
                            },
                        },
                    },
                },
            },
        },
    },
)
OPERATOR_SCHEMAS = {"ServiceMonitor": SERVICE_MONITOR_SCHEMA, "PrometheusRule": PROMETHEUS_RULE_SCHEMA}


def render(variant: str) -> list[dict[str, Any]]:
    """Render ``deploy/kubernetes/<variant>`` exactly as ``kubectl apply -k`` would."""
    kubectl = require_tool("kubectl")
    result = subprocess.run(
        [kubectl, "kustomize", str(KUBERNETES_DIR / variant)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    """Every variant's rendered resources."""
    return {variant: render(variant) for variant in VARIANTS}


@pytest.fixture(params=VARIANTS)
def resources(
    request: pytest.FixtureRequest, rendered: dict[str, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """One variant's rendered resources: a test taking them runs once per variant."""
    resources: list[dict[str, Any]] = rendered[request.param]
    return resources


def one(resources: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """The single resource of ``kind``."""
    matching = [r for r in resources if r["kind"] == kind]
    assert len(matching) == 1, f"expected one {kind}, found {len(matching)}"
    return matching[0]


def workload(resources: list[dict[str, Any]]) -> dict[str, Any]:
    """The Deployment or StatefulSet running the exporter."""
    matching = [r for r in resources if r["kind"] in ("Deployment", "StatefulSet")]
    assert len(matching) == 1
    return matching[0]


def exporter_container(resources: list[dict[str, Any]]) -> dict[str, Any]:
    """The exporter's container spec."""
    containers = workload(resources)["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == CONTAINER_NAME)


def dockerfile_instruction(name: str) -> str:
    """The argument text of the last ``name`` instruction of the Dockerfile."""
    lines = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines()
    values = [line.split(None, 1)[1] for line in lines if line.upper().startswith(name + " ")]
    assert values, f"Dockerfile has no {name}"
    return values[-1].strip()


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_built_in_resources_validate_against_the_kubernetes_schemas(
    rendered: dict[str, list[dict[str, Any]]], variant: str, version: str
) -> None:
    checked = []
    for resource in rendered[variant]:
        if resource["kind"] in OPERATOR_SCHEMAS:
            continue
        # strict: a misspelt or misplaced field is an error, not silently dropped by the API server.
        kubernetes_validate.validate(resource, version, strict=True)
        checked.append(resource["kind"])
    assert sorted(checked) == BUILT_IN_KINDS[variant]


def test_example_secret_validates_and_holds_only_a_placeholder() -> None:
    secret = yaml.safe_load((KUBERNETES_DIR / "single" / "secret.example.yaml").read_text(encoding="utf-8"))
    kubernetes_validate.validate(secret, KUBERNETES_VERSIONS[-1], strict=True)
    assert list(secret["stringData"]) == ["api-key"]
    assert secret["stringData"]["api-key"].startswith("REPLACE_WITH_")


def test_strict_validation_rejects_a_misplaced_field() -> None:
    # Proves the validator is strict and offline-capable, so the test above can fail.
    bad = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "x"},
        "spec": {"ports": [{"port": 8329, "containerPort": 8329}]},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSIONS[-1], strict=True)


def test_prometheus_operator_resources_have_the_fields_the_operator_reads(
    resources: list[dict[str, Any]],
) -> None:
    kinds = sorted(r["kind"] for r in resources if r["kind"] in OPERATOR_SCHEMAS)
    assert kinds == ["PrometheusRule", "ServiceMonitor"]
    for resource in resources:
        if resource["kind"] in OPERATOR_SCHEMAS:
            jsonschema.validate(resource, OPERATOR_SCHEMAS[resource["kind"]])


def test_operator_schema_rejects_a_rule_with_neither_record_nor_alert() -> None:
    bad = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "x"},
        "spec": {"groups": [{"name": "g", "rules": [{"expr": "up"}]}]},
    }
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, PROMETHEUS_RULE_SCHEMA)


def test_prometheusrule_is_generated_from_the_prometheus_rule_files() -> None:
    assert generate_prometheusrule.main(["--check"]) == 0, "run make rules"
    generated = yaml.safe_load(
        (KUBERNETES_DIR / "common" / "prometheusrule.yaml").read_text(encoding="utf-8")
    )
    sources = [REPO_ROOT / "prometheus" / "rules.yml", REPO_ROOT / "prometheus" / "alerts.yml"]
    groups = [g for path in sources for g in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]]
    assert generated["spec"]["groups"] == groups


def test_service_monitor_scrapes_the_service_port_that_reaches_the_exporter(
    resources: list[dict[str, Any]],
) -> None:
    service = one(resources, "Service")
    monitor = one(resources, "ServiceMonitor")
    pod_labels = workload(resources)["spec"]["template"]["metadata"]["labels"]
    container_ports = {p["name"]: p["containerPort"] for p in exporter_container(resources)["ports"]}

    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert service["spec"]["selector"].items() <= pod_labels.items()
    service_ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["http-metrics"]
    assert service_ports["http-metrics"]["targetPort"] in container_ports
    assert container_ports["http-metrics"] == int(dockerfile_instruction("EXPOSE"))


def test_probes_use_health_and_readiness_endpoints(resources: list[dict[str, Any]]) -> None:
    container = exporter_container(resources)
    port_names = {p["name"] for p in container["ports"]}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {
        container["livenessProbe"]["httpGet"]["port"],
        container["readinessProbe"]["httpGet"]["port"],
    } <= (port_names)


def test_pods_meet_the_restricted_pod_security_standard(resources: list[dict[str, Any]]) -> None:
    pod = workload(resources)["spec"]["template"]["spec"]
    container = exporter_container(resources)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    # The uid the pod asks for is the one the image is built to run as.
    assert f"{pod['securityContext']['runAsUser']}:{pod['securityContext']['runAsGroup']}" == (
        dockerfile_instruction("USER")
    )
    assert pod["automountServiceAccountToken"] is False
    assert "memory" in container["resources"]["limits"]


def test_api_key_comes_from_the_secret_and_is_never_applied_by_the_kustomization(
    resources: list[dict[str, Any]],
) -> None:
    example = yaml.safe_load((KUBERNETES_DIR / "single" / "secret.example.yaml").read_text(encoding="utf-8"))
    env = {e["name"]: e for e in exporter_container(resources)["env"]}
    assert env["CODAT_API_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": example["metadata"]["name"],
        "key": "api-key",
    }
    # Applying the directory must never replace the user's real Secret with the placeholder.
    assert all(r["kind"] != "Secret" for r in resources)
    assert "REPLACE_WITH_" not in yaml.safe_dump_all(resources)


def test_config_map_is_mounted_where_the_config_flag_points(resources: list[dict[str, Any]]) -> None:
    config_map = one(resources, "ConfigMap")
    pod = workload(resources)["spec"]["template"]["spec"]
    container = exporter_container(resources)
    volume = next(v for v in pod["volumes"] if v.get("configMap"))
    mount = next(m for m in container["volumeMounts"] if m["name"] == volume["name"])

    assert volume["configMap"]["name"] == config_map["metadata"]["name"]
    args = container["args"]
    config_arg = args[args.index("--config") + 1]
    assert config_arg == CONFIG_PATH
    assert Path(config_arg) == Path(mount["mountPath"]) / "config.yaml"
    assert list(config_map["data"]) == ["config.yaml"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_config_in_the_config_map_passes_the_exporters_validation(variant: str) -> None:
    config = load_config(KUBERNETES_DIR / variant / "config.yaml", env={})
    assert config.codat.api_key is None  # the key comes from the Secret, never from the ConfigMap
    assert config.sharding.total_shards == 1  # sharding is the StatefulSet's business


def test_shards_together_spend_no_more_quota_than_a_single_exporter(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    # Every shard uses the same API key, so what the customer's quota sees is the per-shard
    # budget times the shard count.
    quota = 201_000
    single_share = load_config(KUBERNETES_DIR / "single" / "config.yaml", env={}).budget.daily_quota_share
    sharded_share = load_config(KUBERNETES_DIR / "sharded" / "config.yaml", env={}).budget.daily_quota_share
    replicas = one(rendered["sharded"], "StatefulSet")["spec"]["replicas"]
    per_shard = daily_budget(quota, sharded_share, total_shards=replicas)
    assert per_shard * replicas <= daily_budget(quota, single_share)


def test_container_args_are_accepted_by_the_command_line(resources: list[dict[str, Any]]) -> None:
    args = exporter_container(resources)["args"]
    # Kubernetes substitutes $(VAR) from the container's env before the process starts.
    substituted = [re.sub(r"\$\(SHARD\)", "2", arg) for arg in args]
    parsed = build_parser().parse_args(substituted)
    assert parsed.command == "run"


def test_each_shard_gets_its_ordinal_from_the_pod_index_and_the_replica_count_as_total(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    statefulset = one(rendered["sharded"], "StatefulSet")
    container = exporter_container(rendered["sharded"])
    args = container["args"]
    env = {e["name"]: e for e in container["env"]}

    assert args[args.index("--shard") + 1] == "$(SHARD)"
    assert (
        env["SHARD"]["valueFrom"]["fieldRef"]["fieldPath"]
        == "metadata.labels['apps.kubernetes.io/pod-index']"
    )
    assert int(args[args.index("--total-shards") + 1]) == statefulset["spec"]["replicas"]
    headless = one(rendered["sharded"], "Service")
    assert headless["spec"]["clusterIP"] == "None"
    assert statefulset["spec"]["serviceName"] == headless["metadata"]["name"]


def test_sharded_disruption_budget_covers_the_shards(rendered: dict[str, list[dict[str, Any]]]) -> None:
    budget = one(rendered["sharded"], "PodDisruptionBudget")
    pod_labels = workload(rendered["sharded"])["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert budget["spec"]["maxUnavailable"] == 1


def test_single_variant_never_runs_two_pollers_at_once(rendered: dict[str, list[dict[str, Any]]]) -> None:
    deployment = one(rendered["single"], "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
