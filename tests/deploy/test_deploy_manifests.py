"""deploy/, docker-compose.yml and the Dockerfile, checked offline: every Kubernetes document
against the schemas bundled in kubernetes-validate (strict: unknown fields fail),
kustomizations against the files they name (the GPU overlay patch merged in here and
validated as a whole), the settings the manifests rely on against the server's own, and the
Triton models every container command loads against the catalog's."""

from __future__ import annotations

import copy
import json
import shlex
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from a2v_server.catalog import MODELS, TRITON_MODELS
from a2v_server.inference.triton_process import MODEL_THREAD_ENV, TritonProcess
from a2v_server.settings import Settings, triton_endpoints
from a2v_server.transport.health import LIVENESS_SERVICE
from a2v_server.transport.servicer import SERVICE_NAME

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
K8S_VERSION = "1.30.0"  # the oldest minor still supported here: grpc probes, preStop sleep
KUSTOMIZE_KIND = "Kustomization"


def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _manifests() -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for path in sorted(K8S.rglob("*.yaml")):
        for doc in _documents(path):
            if doc.get("kind") != KUSTOMIZE_KIND:
                found.append((path, doc))
    return found


def _strategic_merge(base: Any, patch: Any) -> Any:
    """Enough of kubectl's strategic merge for our patches: maps merge, lists of named maps
    merge by name, other lists are replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            out[key] = _strategic_merge(base[key], value) if key in base else value
        return out
    if isinstance(base, list) and isinstance(patch, list):
        if all(isinstance(x, dict) and "name" in x for x in base + patch):
            out = [copy.deepcopy(x) for x in base]
            for item in patch:
                match = next((i for i, x in enumerate(out) if x["name"] == item["name"]), None)
                if match is None:
                    out.append(item)
                else:
                    out[match] = _strategic_merge(out[match], item)
            return out
        return patch
    return patch


def _kustomize(directory: Path) -> list[dict[str, Any]]:
    """Render a kustomization (resources, patches and common labels only)."""
    (k,) = _documents(directory / "kustomization.yaml")
    docs: list[dict[str, Any]] = []
    for resource in k.get("resources", []):
        target = directory / resource
        docs += _kustomize(target) if target.is_dir() else _documents(target)
    for patch in k.get("patches", []):
        (p,) = _documents(directory / patch["path"])
        for i, doc in enumerate(docs):
            if (doc["kind"], doc["metadata"]["name"]) == (p["kind"], p["metadata"]["name"]):
                docs[i] = _strategic_merge(doc, p)
                break
        else:
            raise AssertionError(f"patch {patch['path']} matches no resource")
    for group in k.get("labels", []):
        for doc in docs:
            doc.setdefault("metadata", {}).setdefault("labels", {}).update(group["pairs"])
    return docs


def _by_kind(docs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]["containers"][0]


# Overlay patches are partial objects: they are validated once merged (next test).
_BASE = [(p, d) for p, d in _manifests() if p.parent.name == "base"]


@pytest.mark.parametrize(
    ("path", "doc"), _BASE, ids=[f"{p.relative_to(K8S)}:{d['kind']}" for p, d in _BASE]
)
def test_manifest_matches_the_kubernetes_schema(path, doc):
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


@pytest.mark.parametrize("overlay", ["base", "overlays/gpu"])
def test_rendered_kustomization_is_valid(overlay):
    docs = _kustomize(K8S / overlay)
    assert len(docs) >= 8
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_kustomizations_name_existing_files():
    for path in K8S.rglob("kustomization.yaml"):
        (k,) = _documents(path)
        for name in k.get("resources", []) + [p["path"] for p in k.get("patches", [])]:
            assert (path.parent / name).exists(), f"{path}: {name}"


def test_server_deployment_is_hardened_and_probed():
    docs = _by_kind(_kustomize(K8S / "base"))
    deployment = docs["Deployment", "a2v-server"]
    pod = deployment["spec"]["template"]["spec"]
    server = _container(deployment)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert server["securityContext"]["readOnlyRootFilesystem"] is True
    assert server["securityContext"]["allowPrivilegeEscalation"] is False
    assert {"cpu", "memory"} <= server["resources"]["requests"].keys()
    assert {"cpu", "memory"} <= server["resources"]["limits"].keys()
    assert server["readinessProbe"]["grpc"] == {"port": 50051, "service": SERVICE_NAME}
    assert server["livenessProbe"]["grpc"] == {"port": 50051, "service": LIVENESS_SERVICE}

    config = docs["ConfigMap", "a2v-server"]["data"]
    settings = Settings.from_env(config)  # the ConfigMap is a valid server configuration
    grace = settings.shutdown_grace_seconds
    pre_stop = server["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > pre_stop + grace

    key_mount = next(m for m in server["volumeMounts"] if m["name"] == "api-keys")
    assert settings.api_keys_file.startswith(key_mount["mountPath"] + "/")
    secret = next(v for v in pod["volumes"] if v["name"] == "api-keys")["secret"]
    assert secret["secretName"] == "a2v-api-keys"
    assert not any(d["kind"] == "Secret" for d in docs.values())  # keys never in the repo
    # (the Triton Service itself: test_the_servers_list_every_triton_behind_the_headless_service)


def test_server_service_hpa_pdb_suit_long_streams():
    docs = _by_kind(_kustomize(K8S / "base"))
    assert docs["Service", "a2v-server"]["spec"]["clusterIP"] == "None"  # client-side balancing
    hpa = docs["HorizontalPodAutoscaler", "a2v-server"]["spec"]
    assert hpa["metrics"][0]["resource"]["name"] == "cpu"
    assert hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 300
    assert hpa["minReplicas"] >= 2
    pdb = docs["PodDisruptionBudget", "a2v-server"]["spec"]
    assert pdb["selector"]["matchLabels"] == {"app.kubernetes.io/name": "a2v-server"}


def test_only_the_server_reaches_triton():
    docs = _by_kind(_kustomize(K8S / "base"))
    policy = docs["NetworkPolicy", "a2v-triton"]["spec"]
    assert policy["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "a2v-triton"}
    assert policy["policyTypes"] == ["Ingress"]
    sources = [peer for rule in policy["ingress"] for peer in rule.get("from", [None])]
    assert sources == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "a2v-server"}}}]
    assert docs["Service", "a2v-triton"]["spec"]["type"] == "ClusterIP"


def test_the_servers_list_every_triton_behind_the_headless_service():
    """A2V_TRITON_URL names the Triton Service (dns:, re-resolved), which is headless (its name
    lists every pod) and reaches the Triton containers' gRPC port; compose names its Tritons."""
    docs = _by_kind(_kustomize(K8S / "base"))
    config = docs["ConfigMap", "a2v-server"]["data"]
    settings = Settings.from_env({k: v for k, v in config.items() if k.startswith("A2V_")})
    entries = triton_endpoints(settings.triton_url)
    assert entries and all(e.startswith("dns:") for e in entries)
    triton = docs["Deployment", "a2v-triton"]
    grpc_port = next(p for p in _container(triton)["ports"] if p["name"] == "grpc")
    for entry in entries:
        host, _, port = entry.removeprefix("dns:").rpartition(":")
        service = docs["Service", host.split(".")[0]]["spec"]
        assert service.get("clusterIP") == "None"  # headless: every pod, not one virtual IP
        assert (
            service["selector"].items() <= triton["spec"]["template"]["metadata"]["labels"].items()
        )
        (named,) = [p for p in service["ports"] if p["port"] == int(port)]
        assert named["targetPort"] in (grpc_port["name"], grpc_port["containerPort"])
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    url = compose["server"]["environment"]["A2V_TRITON_URL"]
    for entry in triton_endpoints(url):
        host, _, port = entry.removeprefix("dns:").rpartition(":")
        assert host in compose and port == "8001"


def test_triton_cpu_by_default_gpu_in_the_overlay():
    base = _by_kind(_kustomize(K8S / "base"))["Deployment", "a2v-triton"]
    gpu = _by_kind(_kustomize(K8S / "overlays/gpu"))["Deployment", "a2v-triton"]
    assert "nvidia.com/gpu" not in _container(base)["resources"]["limits"]
    assert _container(gpu)["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert gpu["spec"]["template"]["spec"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert gpu["spec"]["template"]["spec"]["nodeSelector"]
    for deployment in (base, gpu):
        shm = next(
            v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "dshm"
        )
        assert shm["emptyDir"]["medium"] == "Memory"
        assert _container(deployment)["volumeMounts"][0]["mountPath"] == "/dev/shm"


@pytest.mark.parametrize("overlay", ["base", "overlays/gpu"])
def test_triton_gets_guaranteed_cpu(overlay):
    # Triton 2.51's python backend fails (and may crash) when a stub's heartbeat thread is
    # starved for 1 s: no CPU throttling below the limit, so requests equal limits.
    triton = _by_kind(_kustomize(K8S / overlay))["Deployment", "a2v-triton"]
    resources = _container(triton)["resources"]
    assert resources["requests"] == resources["limits"]


def test_docker_compose_has_the_three_services():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"server", "triton", "otel-collector"}
    for name in ("server", "triton"):
        assert services[name]["healthcheck"]["test"][0] == "CMD"
    assert services["server"]["depends_on"]["triton"]["condition"] == "service_healthy"
    env = services["server"]["environment"]
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4317"
    assert env["OTEL_TRACES_EXPORTER"] == "otlp"
    # The server accepts this configuration (plaintext is explicitly allowed on the network).
    Settings.from_env({k: str(v) for k, v in env.items() if k.startswith("A2V_")})
    assert all(p.startswith("127.0.0.1:") for p in services["server"]["ports"])
    config = services["otel-collector"]["volumes"][0].split(":")[0]
    collector = yaml.safe_load((ROOT / config).read_text())
    assert "otlp" in collector["service"]["pipelines"]["traces"]["receivers"]


# --- the Triton models a container loads: exactly the catalog's ------------------------------

TRITON_IMAGE = "a2v-triton"
REPOSITORY = ROOT / "model_repository"


def _dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per logical line: continuations joined, comments dropped."""
    logical, pending = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):  # a comment inside a continued instruction
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    out = []
    for line in logical:
        instruction, _, args = line.partition(" ")
        out.append((instruction.upper(), args.strip()))
    return out


def _stage(text: str, name: str) -> list[tuple[str, str]]:
    stage: list[tuple[str, str]] | None = None
    found: list[tuple[str, str]] | None = None
    for instruction, args in _dockerfile_instructions(text):
        if instruction == "FROM":
            stage = [] if args.lower().split()[-1] == name and " as " in args.lower() else None
            if stage is not None:
                found = stage
        elif stage is not None:
            stage.append((instruction, args))
    assert found is not None, f"no stage {name!r} in the Dockerfile"
    return found


def _argv(form: str) -> list[str]:
    """An exec-form (JSON) or shell-form command."""
    return json.loads(form) if form.startswith("[") else shlex.split(form)


def _triton_stage_command(text: str) -> tuple[list[str], dict[str, Path]]:
    """The triton target's CMD, and where its COPY instructions put local folders."""
    stage = _stage(text, "triton")
    commands = [args for instruction, args in stage if instruction == "CMD"]
    assert commands, "the triton target has no CMD"
    copies = {}
    for instruction, args in stage:
        if instruction == "COPY" and not args.startswith("--"):
            *sources, target = _argv(args)
            for source in sources:
                copies[target.rstrip("/")] = ROOT / source
    return _argv(commands[-1]), copies  # the last CMD wins


def _option(argv: list[str], name: str) -> list[str]:
    values = []
    for i, arg in enumerate(argv):
        if arg.startswith(name + "="):
            values.append(arg.split("=", 1)[1])
        elif arg == name and i + 1 < len(argv):
            values.append(argv[i + 1])
    return values


def _repository_models(repository: Path) -> set[str]:
    """What Triton takes for models in a repository: every folder in it."""
    return {p.name for p in repository.iterdir() if p.is_dir()}


def _loaded_models(argv: list[str], copies: dict[str, Path]) -> set[str]:
    """The models a tritonserver command line loads at start-up."""
    assert Path(argv[0]).name == "tritonserver", argv
    (repository,) = _option(argv, "--model-repository") or _option(argv, "--model-store")
    local = copies.get(repository.rstrip("/"))
    assert local is not None, f"{repository} is not copied into the image"
    mode = (_option(argv, "--model-control-mode") or ["none"])[-1]
    if mode in ("none", "poll"):
        assert not _option(argv, "--load-model"), "--load-model needs explicit mode"
        return _repository_models(local)
    assert mode == "explicit", mode
    named = set(_option(argv, "--load-model"))
    return _repository_models(local) if "*" in named else named


def _triton_commands() -> list[tuple[str, list[str]]]:
    """Every command that starts the Triton image: the image's CMD wherever a deployment
    leaves it alone, its own command where it sets one."""
    image_cmd, _ = _triton_stage_command((ROOT / "Dockerfile").read_text())
    found = [("Dockerfile", image_cmd)]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name, service in compose["services"].items():
        if service.get("build", {}).get("target") == "triton" or str(
            service.get("image", "")
        ).startswith(TRITON_IMAGE):
            command = service.get("command")
            if command is None:
                argv = image_cmd
            else:
                argv = _argv(command) if isinstance(command, str) else list(map(str, command))
            found.append((f"docker-compose.yml:{name}", argv))
    for overlay in ("base", "overlays/gpu"):
        for doc in _kustomize(K8S / overlay):
            if doc["kind"] != "Deployment":
                continue
            for container in doc["spec"]["template"]["spec"]["containers"]:
                if not container["image"].startswith(TRITON_IMAGE):
                    continue
                # the image's ENTRYPOINT (NVIDIA's) runs command + args, or the CMD
                argv = container.get("command", []) + container.get("args", [])
                found.append((f"k8s/{overlay}:{container['name']}", argv or image_cmd))
    return found


def test_the_repository_holds_exactly_the_catalogs_triton_models():
    assert _repository_models(REPOSITORY) == set(TRITON_MODELS)
    assert len(set(TRITON_MODELS)) == len(TRITON_MODELS)
    for spec in MODELS.values():
        assert spec.renderer in spec.triton_models
        config = (REPOSITORY / spec.renderer / "config.pbtxt").read_text()
        assert "decoupled: true" in config  # the renderer streams frames as they render


_TRITON_COMMANDS = _triton_commands()


@pytest.mark.parametrize(
    ("where", "argv"), _TRITON_COMMANDS, ids=[where for where, _ in _TRITON_COMMANDS]
)
def test_every_triton_container_loads_exactly_the_catalogs_models(where, argv):
    _, copies = _triton_stage_command((ROOT / "Dockerfile").read_text())
    assert _loaded_models(argv, copies) == set(TRITON_MODELS), where


def test_the_triton_command_is_found_in_every_deployment():
    places = [where for where, _ in _TRITON_COMMANDS]
    assert places[0] == "Dockerfile"
    assert any(p.startswith("docker-compose.yml:") for p in places)
    assert any(p.startswith("k8s/base:") for p in places)
    assert any(p.startswith("k8s/overlays/gpu:") for p in places)


def test_the_launcher_loads_the_catalogs_models():
    triton = TritonProcess(REPOSITORY, ROOT / ".venv-triton")
    assert triton.models == TRITON_MODELS


def test_the_triton_image_runs_the_models_libraries_single_threaded():
    """The image's model processes get the launcher's thread settings (MODEL_THREAD_ENV)."""
    env: dict[str, str] = {}
    for instruction, args in _stage((ROOT / "Dockerfile").read_text(), "triton"):
        if instruction == "ENV":
            env.update(item.split("=", 1) for item in shlex.split(args))
    assert {name: env.get(name) for name in MODEL_THREAD_ENV} == MODEL_THREAD_ENV
