"""The checked-in cluster configs, Dockerfile and CI workflow: they parse, and what they name exists."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_ray.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "cluster"
IMAGE_RE = re.compile(r"^ghcr\.io/OWNER/mlops-ray:\d+\.\d+\.\d+(-gpu)?$")


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _ray_pin() -> str:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    return next(d for d in deps if d.startswith("ray[")).split("==")[1]


def _containers(pod_spec: dict) -> list[dict]:
    return pod_spec["template"]["spec"]["containers"]


def _check_ray_cluster_spec(spec: dict) -> None:
    assert spec["rayVersion"] == _ray_pin()
    head = spec["headGroupSpec"]
    assert head["rayStartParams"]["dashboard-host"] == "0.0.0.0"
    groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
    assert set(groups) == {"cpu-workers", "gpu-workers"}
    gpu = _containers(groups["gpu-workers"])[0]["resources"]
    assert gpu["limits"]["nvidia.com/gpu"] == "1"
    assert "nvidia.com/gpu" not in _containers(groups["cpu-workers"])[0]["resources"]["limits"]
    for g in [head, *groups.values()]:
        for c in _containers(g):
            assert IMAGE_RE.match(c["image"]), c["image"]
            env = {e["name"]: e for e in c["env"]}
            assert env["RAY_AUTH_MODE"]["value"] == "token"
            assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "ray-auth-token"
    for g in groups.values():
        assert g["minReplicas"] <= g["replicas"] <= g["maxReplicas"]


def test_launcher_yaml_has_cpu_head_and_cpu_gpu_workers() -> None:
    cfg = _load(CLUSTER / "launcher.yaml")
    for key in ("cluster_name", "provider", "available_node_types", "head_node_type", "head_start_ray_commands",
                "worker_start_ray_commands", "docker"):
        assert key in cfg, key
    types = cfg["available_node_types"]
    assert cfg["head_node_type"] in types
    assert types["head"]["resources"] == {"CPU": 0}  # the head runs drivers, not trials
    assert types["gpu_worker"]["resources"]["GPU"] == 1 and "GPU" not in types["cpu_worker"]["resources"]
    for name in ("cpu_worker", "gpu_worker"):
        t = types[name]
        assert 0 <= t["min_workers"] <= t["max_workers"] <= cfg["max_workers"]
    assert IMAGE_RE.match(cfg["docker"]["image"])
    assert all("RAY_AUTH_MODE=token" in c for c in cfg["head_start_ray_commands"][1:])
    assert all("RAY_AUTH_MODE=token" in c for c in cfg["worker_start_ray_commands"][1:])
    assert "~/.ray/auth_token" in cfg["file_mounts"].values()


def test_kuberay_raycluster() -> None:
    rc = _load(CLUSTER / "kuberay" / "raycluster.yaml")
    assert (rc["apiVersion"], rc["kind"]) == ("ray.io/v1", "RayCluster")
    _check_ray_cluster_spec(rc["spec"])


def _image_path(p: str) -> Path:
    """A path inside the image (/app/...) as the repository file the Dockerfile copies there."""
    assert p.startswith("/app/"), p
    return REPO / p[len("/app/"):]


def test_kuberay_rayjob_runs_the_training_job_from_the_image() -> None:
    job = _load(CLUSTER / "kuberay" / "rayjob.yaml")
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    spec = job["spec"]
    _check_ray_cluster_spec(spec["rayClusterSpec"])
    argv = shlex.split(spec["entrypoint"])
    assert argv[0] == "python" and _image_path(argv[1]) == REPO / "jobs" / "train.py"
    assert _image_path(argv[1]).is_file()
    cfg = _image_path(argv[argv.index("--config") + 1])
    assert cfg.is_file()
    from mlops_ray.cluster.entrypoints import _parser

    p = _parser("train", "")
    p.add_argument("--steps")
    args = p.parse_args(argv[2:])
    from mlops_ray.config import load_config

    load_config(cfg)  # the config it names is valid
    assert set(args.steps.split(",")) <= {"data", "tune", "register", "deploy"}
    assert yaml.safe_load(spec["runtimeEnvYAML"])["env_vars"]
    assert spec["shutdownAfterJobFinishes"] is True


def test_serve_config_and_rayservice_agree() -> None:
    serve_cfg = _load(CLUSTER / "serve_config.yaml")
    svc = _load(CLUSTER / "kuberay" / "rayservice.yaml")
    assert (svc["apiVersion"], svc["kind"]) == ("ray.io/v1", "RayService")
    _check_ray_cluster_spec(svc["spec"]["rayClusterConfig"])
    assert yaml.safe_load(svc["spec"]["serveConfigV2"]) == serve_cfg
    app = serve_cfg["applications"][0]
    for key in ("name", "import_path", "route_prefix", "args"):
        assert key in app
    module, _, attr = app["import_path"].partition(":")
    assert module.startswith("mlops_ray.") and attr
    assert (REPO / app["args"]["config"]).is_file()


def test_serve_config_import_path_is_a_real_builder() -> None:
    """A function of one dict, as Serve requires of a builder, that knows every arg the config passes.

    tests/integration/test_cluster_serve_config.py deploys the file on a real Ray and predicts over HTTP.
    """
    import importlib
    import inspect
    import types

    app = _load(CLUSTER / "serve_config.yaml")["applications"][0]
    module, _, attr = app["import_path"].partition(":")
    builder = getattr(importlib.import_module(module), attr)
    assert isinstance(builder, types.FunctionType)
    assert len(inspect.signature(builder).parameters) == 1
    assert set(app["args"]) <= set(importlib.import_module(module).ARGS)


def _dockerfile() -> list[tuple[str, str]]:
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instr, _, rest = line.partition(" ")
            out.append((instr.upper(), rest.strip()))
    return out


def test_dockerfile_builds_on_the_pinned_ray_image_and_copies_what_exists() -> None:
    steps = _dockerfile()
    args = {k: v for k, _, v in (r.partition("=") for i, r in steps if i == "ARG")}
    assert args["RAY_IMAGE"] == f"rayproject/ray:{_ray_pin()}-py311"
    assert steps[[i for i, _ in steps].index("FROM")][1] == "${RAY_IMAGE}"
    copied = []
    for instr, rest in steps:
        if instr == "COPY":
            parts = [p for p in rest.split() if not p.startswith("--")]
            for src in parts[:-1]:
                assert (REPO / src).exists(), src
                copied.append(src)
    for needed in ("pyproject.toml", "mlops_ray", "jobs", "examples", "cluster"):
        assert needed in copied
    runs = " ".join(r for i, r in steps if i == "RUN")
    assert "pip install" in runs and "mlops-ray --help" in runs
    assert dict(steps)["WORKDIR"] == "/app"  # the RayJob entrypoint names /app/jobs/...
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ".venv" in ignored and "work" in ignored


def _workflow() -> dict:
    wf = _load(REPO / ".github" / "workflows" / "ci-cd.yml")
    wf["on"] = wf.pop(True, wf.get("on"))  # YAML 1.1 reads the key `on` as a boolean
    return wf


def _commands(run: str) -> list[str]:
    text = re.sub(r"\$\{\{[^}]*\}\}", "X", run)
    return [c.strip() for c in re.split(r"\n|&&", text.replace("\\\n", " ")) if c.strip()]


def test_workflow_commands_and_paths_exist() -> None:
    wf = _workflow()
    assert {"push", "pull_request"} <= set(wf["on"])
    jobs = wf["jobs"]
    assert {"test", "image", "train", "deploy-canary"} <= set(jobs)
    assert jobs["deploy-canary"]["needs"] == "train" and "accepted == 'true'" in jobs["deploy-canary"]["if"]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    parser = build_parser()
    seen_mlops = 0
    for job in jobs.values():
        for step in job["steps"]:
            if "run" not in step:
                assert step["uses"].split("@")[0] in {"actions/checkout", "actions/setup-python",
                                                      "docker/login-action"}
                continue
            for cmd in _commands(step["run"]):
                argv = shlex.split(cmd.split(">")[0])
                tool = argv[0]
                if tool == "mlops-ray":
                    assert tool in scripts
                    parser.parse_args(argv[1:])  # every subcommand and option exists
                    seen_mlops += 1
                    for a in argv:
                        if a.endswith((".yaml", ".yml")):
                            assert (REPO / a).is_file(), a
                elif tool == "python":
                    assert argv[1] == "-m"
                    if argv[2] == "pytest":
                        for a in argv[3:]:
                            if a.startswith("tests"):
                                assert (REPO / a).exists(), a
                    else:
                        import importlib.util

                        assert importlib.util.find_spec(argv[2]) is not None, argv[2]
                elif tool in ("pip", "ruff", "docker"):
                    if tool == "docker" and argv[1] == "build":
                        assert (REPO / argv[-1] / "Dockerfile").is_file()
                else:
                    pytest.fail(f"unexpected command in the workflow: {cmd}")
    assert seen_mlops >= 3
    markers = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["markers"]
    assert any(m.startswith("cluster:") for m in markers)
