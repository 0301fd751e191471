"""`mlops-ray promote` and `mlops-ray models` against a real SQLite MLflow store."""

from __future__ import annotations

import json

import mlflow
import pytest
from sklearn.linear_model import LogisticRegression

from mlops_ray.cli import main
from mlops_ray.config import parse_config
from mlops_ray.registry import register_model
from mlops_ray.runtime import Runtime, ensure_experiment
from tests._registry_support import FakeSearch, fit_features, fit_model, make_frame, make_prepared


def test_promote_and_models_commands(runtime: Runtime, capsys: pytest.CaptureFixture[str]) -> None:
    df = make_frame(200)
    train, hold = df.iloc[:120], df.iloc[120:]
    prepared = make_prepared(train, hold, fit_features(train))
    cfg = parse_config({"name": "clitest", "data": {"source": {"bundled": "iris"}},
                        "registry": {"bundle_code": False, "gate": {"n_bootstrap": 100}}})
    for c in (1.0, 1.0):  # the second is a tie: registered as challenger
        exp = ensure_experiment(runtime, cfg.experiment_name)
        with mlflow.start_run(experiment_id=exp) as run:
            pass
        model = fit_model(train, LogisticRegression(C=c), prepared.features)
        register_model(cfg, runtime, FakeSearch(model=model, parent_run_id=run.info.run_id, experiment_id=exp),
                       prepared)
    uri = ["--tracking-uri", runtime.tracking_uri]
    capsys.readouterr()

    assert main(["models", *uri]) == 0
    assert "clitest  latest v2  challenger=v2, champion=v1" in capsys.readouterr().out

    assert main(["promote", "clitest", "2", "--reason", "canary looked fine", "--actor", "carol", *uri]) == 0
    out = capsys.readouterr().out
    assert "alias champion -> v2 (was v1) by carol" in out and "canary looked fine" in out
    assert "note: the promotion gate rejected v2 when it was registered (" in out and "tie within noise" in out
    assert f"`mlops-ray promote clitest 1 --tracking-uri {runtime.tracking_uri}` undoes it" in out

    assert main(["models", "clitest", "--history", *uri]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[1].split()[:3] == ["2", "champion", "rejected"]  # rejected by the gate, promoted by hand
    assert "tie within noise" in lines[1]
    assert lines[2].split()[:3] == ["1", "previous", "accepted"]
    assert "by carol: promote: canary looked fine" in out and "by gate:" in out

    assert main(["models", "clitest", "--json", *uri]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [v["version"] for v in data["versions"]] == ["2", "1"]
    assert any(h["reason"].startswith("promote: canary looked fine") for h in data["history"])  # without --history
    assert data["versions"][0]["tags"]["mlops_ray.data_fingerprint"] == prepared.fingerprint
    assert main(["models", "--json", *uri]) == 0  # versions are strings here too, as in the model's own listing
    assert json.loads(capsys.readouterr().out)[0]["aliases"] == {"champion": "2", "previous": "1"}

    assert main(["promote", "clitest", "9", *uri]) == 1
    assert "error: model 'clitest' has no version 9 (versions: 2, 1)" in capsys.readouterr().err
    assert main(["models", "nosuch", *uri]) == 1
    assert "no registered model named 'nosuch'" in capsys.readouterr().err


def test_a_damaged_store_is_one_line_and_stops_a_run_before_any_work(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from mlflow import MlflowClient

    work = tmp_path / "work"
    work.mkdir()
    db = work / "mlflow.db"
    cl = MlflowClient(f"sqlite:///{db}")
    for i in range(30):  # enough pages that a cut file loses some
        cl.create_registered_model(f"m{i}", description="x" * 2000)
    with open(db, "r+b") as f:
        f.truncate(db.stat().st_size // 2)
    assert main(["models", "--workdir", str(work)]) == 1
    err = capsys.readouterr().err
    assert "cannot be read (database disk image is malformed)" in err and "Traceback" not in err
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: t\ndata:\n  source: {bundled: iris}\nsteps: [data, tune, register]\n")
    assert main(["run", str(cfg), "--workdir", str(work)]) == 1
    assert f"the MLflow store {db} is damaged" in capsys.readouterr().err and not (work / "data").exists()
