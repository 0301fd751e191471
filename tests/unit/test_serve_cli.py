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


def test_a_model_name_that_is_not_a_folder_name_is_refused(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deploy", "../evil", "--source", str(tmp_path), "--version", "1", "--workdir",
                 str(tmp_path / "w")]) == 1
    assert "model name '../evil': use letters, digits and _.-" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


def test_predict_rejects_bad_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict", "iris", "--workdir", str(tmp_path), "--json", "[{oops"]) == 1
    assert "--json is not valid JSON" in capsys.readouterr().err


def test_predict_json_file_that_cannot_be_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict", "iris", "--workdir", str(tmp_path), "--json", f"@{tmp_path / 'nofile.json'}"]) == 1
    err = capsys.readouterr().err
    assert "cannot read" in err and "nofile.json" in err and "Traceback" not in err


def test_deploy_checks_the_model_before_starting_any_head(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A typo in the model name is an error before Ray starts (unit tests make ray.init fail: it is not called)."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert main(["deploy", "nosuch", "--workdir", str(tmp_path)]) == 1
    assert "no registered model named 'nosuch'" in capsys.readouterr().err
    assert not (tmp_path / "serve" / HEAD_FILE).exists()
    assert main(["deploy", "nosuch", "--workdir", str(tmp_path), "--canary", "150"]) == 1
    assert "(0, 100]" in capsys.readouterr().err


def test_run_refuses_an_empty_steps_list_and_a_bad_canary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: t\ndata: {source: {bundled: iris}, target: target}\n")
    assert main(["run", str(cfg), "--workdir", str(tmp_path), "--steps", ""]) == 1  # not "every step, deploy too"
    assert "--steps is empty" in capsys.readouterr().err
    assert main(["run", str(cfg), "--workdir", str(tmp_path), "--canary", "150"]) == 1
    assert "--canary must be a traffic share in (0, 100]" in capsys.readouterr().err
    assert main(["data", str(tmp_path), "--workdir", str(tmp_path)]) == 1
    assert "is a folder" in capsys.readouterr().err
    assert main(["monitor", "iris", "--workdir", str(tmp_path), "--every", "-5", "--count", "1"]) == 1
    assert "--every SECONDS must be positive" in capsys.readouterr().err
    assert main(["monitor", "iris", "--workdir", str(tmp_path), "--every", "5", "--count", "0"]) == 1
    assert "--count N must be at least 1, got 0" in capsys.readouterr().err  # it ran once and exited 0
    assert main(["monitor", "iris", "--workdir", str(tmp_path), "--count", "2"]) == 1
    assert "add --every SECONDS" in capsys.readouterr().err  # it was silently ignored


def test_registry_commands_do_not_create_a_store_by_reading(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wd = tmp_path / "empty"
    assert main(["models", "--workdir", str(wd)]) == 0
    assert "no MLflow store at" in capsys.readouterr().out
    assert main(["models", "iris", "--workdir", str(wd)]) == 1
    assert main(["promote", "iris", "1", "--workdir", str(wd)]) == 1
    assert "nothing to promote" in capsys.readouterr().err
    assert not wd.exists()  # MLflow would have created mlflow.db (and the folder) on first contact


def test_status_without_any_head_says_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)  # no cluster named: only this workdir's head counts
    # As in a fresh CLI process, whatever earlier tests left connected in this one.
    monkeypatch.setattr("ray.is_initialized", lambda: False)
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


def test_deploy_without_a_config_adds_to_the_endpoint_already_served(tmp_path: Path) -> None:
    """`deploy NAME --version 2` after `run` on port 8123 must not ask for the default port 8000."""
    from mlops_ray.cli.serve import _config

    rt = resolve_runtime(None, workdir=tmp_path)
    rt.serve_dir.mkdir(parents=True)
    (rt.serve_dir / "endpoint.json").write_text(json.dumps({
        "url": "http://127.0.0.1:8123", "app_name": "shop", "model": "churn", "token_env": "SHOP_TOKEN",
        "admin_token_env": "SHOP_ADMIN", "host": "0.0.0.0", "port": 8123}))
    args = build_parser().parse_args(["deploy", "churn", "--version", "2", "--workdir", str(tmp_path)])
    cfg, _ = _config(args)
    s = cfg.serve
    assert (s.host, s.port, s.app_name, s.auth.token_env, s.auth.admin_token_env) == (
        "0.0.0.0", 8123, "shop", "SHOP_TOKEN", "SHOP_ADMIN")
    args = build_parser().parse_args(["deploy", "churn", "--version", "2", "--workdir", str(tmp_path),
                                      "--set", "serve.port=9001"])
    assert _config(args)[0].serve.port == 9001  # an explicit --set still wins
    # An endpoint file from before host/port were recorded: the URL gives them.
    (rt.serve_dir / "endpoint.json").write_text(json.dumps({"url": "http://127.0.0.1:8124", "app_name": "x"}))
    args = build_parser().parse_args(["deploy", "churn", "--version", "2", "--workdir", str(tmp_path)])
    assert (_config(args)[0].serve.port, _config(args)[0].serve.app_name) == (8124, "x")
    (rt.serve_dir / "endpoint.json").unlink()  # nothing served here: the built-in defaults
    assert _config(args)[0].serve.port == 8000


def test_run_summary_prints_a_token_only_the_run_that_created_it(tmp_path: Path) -> None:
    from mlops_ray.cli.run import token_hint
    from mlops_ray.serve.auth import Tokens

    path = tmp_path / "serve dir" / "tokens.json"
    lines, header = token_hint("s3cret", Tokens("s3cret", "adm", source="file"), "MLOPS_RAY_TOKEN", path)
    assert "s3cret" in lines[0] and "printed once" in lines[0] and "s3cret" in header
    lines, header = token_hint(None, Tokens("s3cret", "adm", source="file"), "MLOPS_RAY_TOKEN", path)
    assert not any("s3cret" in x for x in lines) and "s3cret" not in header
    assert header == '-H "Authorization: Bearer $MLOPS_RAY_TOKEN" '
    # The export line works as printed: it reads the token from the file.
    path.parent.mkdir()
    path.write_text(json.dumps({"token": "s3cret", "admin_token": "adm"}))
    out = subprocess.run(["bash", "-c", lines[1].strip() + "; echo $MLOPS_RAY_TOKEN"], capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "s3cret"
    lines, _ = token_hint(None, Tokens("s3cret", "adm", source="env"), "SHOP_TOKEN", path)
    assert lines == ["token:      unchanged, in $SHOP_TOKEN; `mlops-ray predict` finds it"]
    assert token_hint(None, Tokens(None, None, source="file"), "T", path) == (
        ["token:      none (serve.auth.enabled: false)"], "")
