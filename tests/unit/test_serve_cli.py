"""The serving commands' argument handling and the detached-head bookkeeping, without Ray."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from mlops_ray.cli import build_parser, main
from mlops_ray.runtime import resolve_runtime
from mlops_ray.serve.head import HEAD_FILE, read_head, stop_local_head


def test_deploy_arguments() -> None:
    args = build_parser().parse_args(["deploy", "iris", "--alias", "champion", "--canary", "10",
                                      "--set", "serve.port=8001"])
    assert (args.name, args.alias, args.version, args.canary, args.overrides) == (
        "iris", "champion", None, 10.0, ["serve.port=8001"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["deploy", "iris", "--alias", "champion", "--version", "3"])


def test_source_needs_a_version_label(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deploy", "iris", "--source", "/nowhere"]) == 1
    assert "--source needs --version" in capsys.readouterr().err


def test_predict_rejects_bad_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict", "iris", "--workdir", str(tmp_path), "--json", "[{oops"]) == 1
    assert "--json is not valid JSON" in capsys.readouterr().err


def test_status_without_any_head_says_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)  # no cluster named: only this workdir's head counts
    assert main(["status", "--workdir", str(tmp_path)]) == 1
    assert "run `mlops-ray deploy` first" in capsys.readouterr().err


def test_stale_head_record_is_ignored_and_cleaned(tmp_path: Path) -> None:
    rt = resolve_runtime(None, workdir=tmp_path)
    rt.serve_dir.mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    (rt.serve_dir / HEAD_FILE).write_text(json.dumps({"address": "127.0.0.1:1", "pid": dead.pid, "fast_mode": True,
                                                      "started_at": 0.0, "log": "x"}))
    assert read_head(rt) is None
    assert stop_local_head(rt) is False and not (rt.serve_dir / HEAD_FILE).exists()
