"""deploy/kubernetes: every manifest (base and overlays' own files) valid against the Kubernetes
schemas (kubernetes-validate, strict: an unknown field is an error), and the overlays rendered by
`kubectl kustomize` (Debian's kubernetes-client, when installed) with what a production
deployment must have."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

KUBE = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
VERSION = "1.32"  # the kubectl of the test machine; the manifests use only stable APIs
KUBECTL = shutil.which("kubectl")


def documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def manifests() -> list[Path]:
    return sorted(p for p in KUBE.rglob("*.yaml") if p.name != "kustomization.yaml")


def validate(doc: dict) -> None:
    import kubernetes_validate

    kubernetes_validate.validate(doc, VERSION, strict=True)


@pytest.mark.parametrize("path", manifests(), ids=lambda p: str(p.relative_to(KUBE)))
def test_every_manifest_is_valid(path):
    for doc in documents(path):
        if path.parent.name in ("dev", "prod") and doc["kind"] == "ConfigMap":
            assert set(doc) == {"apiVersion", "kind", "metadata", "data"}  # a strategic-merge patch
        validate(doc)


def render(overlay: str) -> list[dict]:
    done = subprocess.run([KUBECTL, "kustomize", str(KUBE / "overlays" / overlay)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed (apt-get install kubernetes-client)")
@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_overlays_render_to_a_sound_deployment(overlay):
    rendered = render(overlay)
    for doc in rendered:
        validate(doc)
    kinds = {doc["kind"]: doc for doc in rendered}
    assert {"Namespace", "ServiceAccount", "ConfigMap", "Job", "Deployment", "Service", "Ingress",
            "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy"} <= set(kinds)
    namespace = kinds["Namespace"]["metadata"]["name"]
    assert all(doc["metadata"].get("namespace") == namespace for doc in rendered if doc["kind"] != "Namespace")
    deployment = kinds["Deployment"]
    spec = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] >= 2
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["automountServiceAccountToken"] is False
    web = spec["containers"][0]
    assert web["securityContext"]["readOnlyRootFilesystem"] is True
    assert web["securityContext"]["allowPrivilegeEscalation"] is False
    assert {"name": "tmp", "mountPath": "/tmp"} in web["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "512Mi"}} in spec["volumes"]
    assert web["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert web["resources"]["requests"]["memory"] and web["resources"]["limits"]["memory"]
    # Secrets by reference only: no Secret object, no secret value in any env.
    assert "Secret" not in kinds
    for env in web["env"]:
        assert "value" not in env and env["valueFrom"]["secretKeyRef"]["name"] == "allervers-secrets"
    config = kinds["ConfigMap"]["data"]
    assert not any(word in key for key in config for word in ("SECRET", "TOKEN", "PASSWORD"))
    ingress = kinds["Ingress"]["spec"]
    assert ingress["tls"][0]["secretName"] and ingress["tls"][0]["hosts"][0] == ingress["rules"][0]["host"]
    assert config["ALLERVERS_PUBLIC_URL"] == "https://" + ingress["rules"][0]["host"]
    hpa = kinds["HorizontalPodAutoscaler"]["spec"]
    assert hpa["metrics"][0]["resource"]["name"] == "cpu" and hpa["minReplicas"] >= 2
    assert kinds["PodDisruptionBudget"]["spec"]["minAvailable"] < deployment["spec"]["replicas"]
    job = kinds["Job"]["spec"]["template"]["spec"]["containers"][0]
    assert job["command"] == ["allervers", "migrate"] and job["image"] == web["image"]
    policy = kinds["NetworkPolicy"]["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert {p["port"] for rule in policy["egress"] for p in rule["ports"]} == {53, 5432, 6379, 443}
    if overlay == "prod":
        assert config["ALLERVERS_ENV"] == "production" and config["ALLERVERS_SEED_DEMO"] == "false"
        assert deployment["spec"]["replicas"] >= 3
        # The production settings pass the app's own production checks (with the secrets set).
        from kernel.settings import Settings
        from ops.production import production_problems

        values = {key.removeprefix("ALLERVERS_").lower(): value for key, value in config.items()}
        values.update(database_url="postgresql+asyncpg://u@db/allervers", secret_key="k" * 48)
        assert production_problems(Settings(_env_file=None, **values)) == []


def test_a_manifest_with_an_unknown_field_is_refused():
    """The check can fail: strict validation refuses a typo."""
    import kubernetes_validate

    doc = documents(KUBE / "base" / "service.yaml")[0]
    doc["spec"]["prots"] = doc["spec"].pop("ports")
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(doc)
