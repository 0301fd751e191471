"""The Serve application over real HTTP: protocols, validation, auth, ids, metrics, docs, CLI, and fault tolerance
(one app with 2 model replicas, reused by every test here; the replica-kill test runs last)."""

from __future__ import annotations

import gzip
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from mlops_ray.runtime import resolve_runtime
from tests.integration.serve_support import Load, make_config, make_model, rows

PORT = 18040  # Serve's HTTP port is fixed per Ray cluster: every Serve test module uses this one
MODEL = "clf"


@pytest.fixture(scope="module")
def app(ray_session: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    from mlops_ray.registry import save_fitted_model
    from mlops_ray.serve import deploy, shutdown
    from mlops_ray.serve.auth import read_tokens

    root = tmp_path_factory.mktemp("serve_app")
    rt = resolve_runtime(None, workdir=root / "work", tracking_uri=f"sqlite:///{root / 'work' / 'mlflow.db'}")
    rt.ensure_dirs()
    cfg = make_config(PORT, str(rt.workdir), max_body_bytes=8192, max_rows_per_request=50, body_timeout_s=3)
    folder = save_fitted_model(make_model(0), root / "model-v1")  # the registry's saver: a local source
    dep = deploy(cfg, rt, model=MODEL, version="1", source=str(folder), num_replicas=2)  # 2: see the fault test
    tokens = read_tokens(rt.serve_dir, token_env="UNSET_T", admin_token_env="UNSET_A", env=lambda _: None)
    try:
        yield SimpleNamespace(rt=rt, cfg=cfg, dep=dep, url=dep.url, token=tokens.token, admin=tokens.admin_token,
                              auth={"Authorization": f"Bearer {tokens.token}"})
    finally:
        shutdown(rt, stop_head=False)


def post(app: SimpleNamespace, path: str, body: Any = None, *, raw: bytes | None = None,
         headers: dict[str, str] | None = None) -> httpx.Response:
    h = {**app.auth, **(headers or {})}
    if raw is not None:
        return httpx.post(app.url + path, content=raw, headers={**h, "Content-Type": "application/json"}, timeout=30)
    return httpx.post(app.url + path, json=body, headers=h, timeout=30)


def test_first_deploy_prints_token_once_and_stores_it_0600(app: SimpleNamespace) -> None:
    assert app.dep.token == app.token and app.dep.decision["action"] == "deploy"
    assert (app.rt.serve_dir / "tokens.json").stat().st_mode & 0o777 == 0o600


def test_a_deploy_asking_for_another_port_is_refused(app: SimpleNamespace, tmp_path: Path) -> None:
    """Serve keeps the port it started with: recording the new one would point status/predict at nothing."""
    from mlops_ray.exceptions import ServeError
    from mlops_ray.registry import save_fitted_model
    from mlops_ray.serve import deploy

    other = make_config(PORT + 1, str(app.rt.workdir), app_name=app.cfg.serve.app_name)
    folder = save_fitted_model(make_model(0), tmp_path / "model-v9")
    with pytest.raises(ServeError, match=f"already serves application .* at {app.url}"):
        deploy(other, app.rt, model=MODEL, version="9", source=str(folder))
    renamed = make_config(PORT, str(app.rt.workdir), app_name="another-name")
    with pytest.raises(ServeError, match="Serve cannot move it"):  # one ingress owns "/": refused up front
        deploy(renamed, app.rt, model=MODEL, version="9", source=str(folder))
    assert json.loads((app.rt.serve_dir / "endpoint.json").read_text())["url"] == app.url


def test_a_bad_model_folder_is_one_clear_line(app: SimpleNamespace, tmp_path: Path) -> None:
    from mlops_ray.exceptions import ServeError
    from mlops_ray.serve import deploy

    with pytest.raises(ServeError, match=r"source '.*nope' is not a model folder"):  # before anything starts
        deploy(app.cfg, app.rt, model=MODEL, version="8", source=str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ServeError, match=r"version 8 of .* did not start: RegistryError: ") as err:
        deploy(app.cfg, app.rt, model=MODEL, version="8", source=str(tmp_path / "empty"))
    assert 'File "' not in str(err.value) and "\n" not in str(err.value)  # the error, not Serve's traceback
    assert post(app, f"/v1/models/{MODEL}/predict", {"rows": rows(1)}).json()["model_version"] == "1"


def test_a_deploy_bringing_other_tokens_is_refused(app: SimpleNamespace, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The running ingress keeps its tokens: a deploy with others would leave clients with 403s, silently."""
    from mlops_ray.exceptions import ServeError
    from mlops_ray.registry import save_fitted_model
    from mlops_ray.serve import deploy

    folder = save_fitted_model(make_model(0), tmp_path / "model-v7")
    monkeypatch.setenv(app.cfg.serve.auth.token_env, "a-new-token")
    monkeypatch.setenv(app.cfg.serve.auth.admin_token_env, "a-new-admin-token")
    with pytest.raises(ServeError, match=r"keeps the tokens it started with.*`mlops-ray shutdown`"):
        deploy(app.cfg, app.rt, model=MODEL, version="7", source=str(folder))
    assert post(app, f"/v1/models/{MODEL}/predict", {"rows": rows(1)}).json()["model_version"] == "1"


def test_v1_predict_returns_predictions_probabilities_and_ids(app: SimpleNamespace) -> None:
    r = post(app, f"/v1/models/{MODEL}/predict", {"rows": rows(3)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_name"] == MODEL and body["model_version"] == "1"
    assert len(body["predictions"]) == 3 and set(body["predictions"]) <= {"neg", "pos"}
    assert body["classes"] == ["neg", "pos"] and all(abs(sum(p) - 1) < 1e-9 for p in body["probabilities"])
    assert r.headers["x-request-id"] == body["request_id"] and r.headers["x-model-version"] == "1"
    mine = post(app, f"/v1/models/{MODEL}/predict", {"rows": rows(1)}, headers={"X-Request-ID": "my-id-1"})
    assert mine.json()["request_id"] == "my-id-1" and mine.headers["x-request-id"] == "my-id-1"


def test_batch_predictions_match_the_model(app: SimpleNamespace) -> None:
    import pandas as pd

    data = rows(40, seed=7)
    r = post(app, f"/v1/models/{MODEL}/predict", {"rows": data})
    expected = make_model(0).predict(pd.DataFrame(data))
    assert r.json()["predictions"] == list(expected)


def test_open_inference_protocol_v2(app: SimpleNamespace) -> None:
    assert httpx.get(app.url + "/v2/health/live").json() == {"live": True}
    assert httpx.get(app.url + "/v2/health/ready").status_code == 200
    assert httpx.get(f"{app.url}/v2/models/{MODEL}/ready").json()["ready"] is True
    assert httpx.get(f"{app.url}/v2/models/nope/ready").status_code == 404
    meta = httpx.get(f"{app.url}/v2/models/{MODEL}", headers=app.auth).json()
    assert [i["name"] for i in meta["inputs"]] == ["x0", "x1", "x2", "color"]
    data = rows(2)
    body = {"id": "req-7", "inputs": [
        {"name": c, "shape": [2], "datatype": "BYTES" if c == "color" else "FP64", "data": [d[c] for d in data]}
        for c in ("x0", "x1", "x2", "color")]}
    r = post(app, f"/v2/models/{MODEL}/infer", body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["id"] == "req-7" and out["model_version"] == "1"
    assert out["outputs"][0]["shape"] == [2] and out["outputs"][1]["shape"] == [2, 2]
    only = post(app, f"/v2/models/{MODEL}/infer", {**body, "outputs": [{"name": "probabilities"}]}).json()
    assert [o["name"] for o in only["outputs"]] == ["probabilities"]
    assert post(app, f"/v2/models/{MODEL}/infer", {**body, "outputs": [{"name": "logits"}]}).status_code == 400


def test_v2_server_metadata_and_version_routes(app: SimpleNamespace) -> None:
    assert httpx.get(app.url + "/v2").json()["name"] == "mlops-ray"
    assert httpx.get(f"{app.url}/v2/models/{MODEL}/versions/1/ready").json() == {"name": MODEL, "version": "1",
                                                                                  "ready": True}
    assert httpx.get(f"{app.url}/v2/models/{MODEL}/versions/9/ready").status_code == 404
    meta = httpx.get(f"{app.url}/v2/models/{MODEL}/versions/1", headers=app.auth)
    assert meta.status_code == 200 and meta.headers["x-model-version"] == "1" and len(meta.json()["inputs"]) == 4
    body = {"inputs": [{"name": c, "shape": [1], "datatype": "BYTES" if c == "color" else "FP64",
                        "data": [rows(1)[0][c]]} for c in ("x0", "x1", "x2", "color")]}
    r = post(app, f"/v2/models/{MODEL}/versions/1/infer", body)
    assert r.status_code == 200 and r.json()["model_version"] == "1"
    r = post(app, f"/v2/models/{MODEL}/versions/9/infer", body)
    assert r.status_code == 404 and "version '9' of 'clf' is not deployed here; deployed: ['1']" in r.json()["error"]


def test_health_and_metadata_answers_carry_a_request_id(app: SimpleNamespace) -> None:
    for path in ("/v2/health/live", "/v2/health/ready", f"/v2/models/{MODEL}/ready", "/v2", "/metrics"):
        r = httpx.get(app.url + path)
        assert r.status_code == 200 and r.headers["x-request-id"], path  # Serve's proxy assigns one
        mine = httpx.get(app.url + path, headers={"X-Request-ID": "mine-2"})
        assert mine.headers.get_list("x-request-id") == ["mine-2"], path  # echoed once, not doubled


def test_invocations_csv_and_compressed_bodies(app: SimpleNamespace) -> None:
    data = rows(3)
    cols = ["color", "x0", "x1", "x2"]
    want = post(app, "/invocations", {"dataframe_records": data}).json()["predictions"]
    csv = "\n".join([",".join(cols)] + [",".join(str(d[c]) for c in cols) for d in data]).encode()
    r = httpx.post(app.url + "/invocations", content=csv, headers={**app.auth, "Content-Type": "text/csv"})
    assert r.status_code == 200 and r.json()["predictions"] == want, r.text
    bad = httpx.post(app.url + "/invocations", content=b"x0,x1\n1,2\n",
                     headers={**app.auth, "Content-Type": "text/csv"})
    assert bad.status_code == 422 and "missing feature(s)" in bad.json()["error"]
    gz = {**app.auth, "Content-Type": "application/json", "Content-Encoding": "gzip"}
    r = httpx.post(f"{app.url}/v1/models/{MODEL}/predict", content=gzip.compress(json.dumps({"rows": data}).encode()),
                   headers=gz)
    assert r.status_code == 200 and r.json()["predictions"] == [w["prediction"] for w in want]
    bomb = httpx.post(f"{app.url}/v1/models/{MODEL}/predict", content=gzip.compress(b" " * 100_000), headers=gz)
    assert bomb.status_code == 413 and "inflates to more than 8192 bytes" in bomb.json()["error"]


def test_mlflow_invocations_formats(app: SimpleNamespace) -> None:
    data = rows(2)
    cols = ["x0", "x1", "x2", "color"]
    bodies = [
        {"dataframe_split": {"columns": cols, "data": [[d[c] for c in cols] for d in data]}},
        {"dataframe_records": data},
        {"instances": data},
        {"inputs": {c: [d[c] for d in data] for c in cols}},
    ]
    answers = []
    for b in bodies:
        r = post(app, "/invocations", b)
        assert r.status_code == 200, (b, r.text)
        answers.append(r.json()["predictions"])
    assert all(a == answers[0] for a in answers)
    # One record per row, as `mlflow models serve` answers for the registered pyfunc.
    v1 = post(app, f"/v1/models/{MODEL}/predict", {"rows": data}).json()
    assert answers[0] == [{"prediction": p, **{f"proba_{c}": q for c, q in zip(v1["classes"], pr, strict=True)}}
                          for p, pr in zip(v1["predictions"], v1["probabilities"], strict=True)]


@pytest.mark.parametrize(("body", "raw", "status", "text"), [
    ({"rows": [{"x0": 1.0, "x1": 2.0, "color": "red"}]}, None, 422, "missing feature(s) ['x2']"),
    ({"rows": [{**rows(1)[0], "extra": 1}]}, None, 422, "unknown feature(s) ['extra']"),
    ({"rows": [{**rows(1)[0], "x1": "high"}]}, None, 422, "feature 'x1' (row 0) must be a number"),
    (None, b'{"rows": [{"x0": 1, "x1": 1, "x2": NaN, "color": "red"}]}', 422, "feature 'x2' (row 0) is nan"),
    (None, b'{"rows": [{"x0": Infinity, "x1": 1, "x2": 1, "color": "red"}]}', 422, "'x0' (row 0) is inf"),
    ({"rows": []}, None, 422, "empty batch"),
    ({"rows": rows(51)}, None, 413, "max_rows_per_request"),
    (None, b'{"rows": [' + b'{"x0": 1.0}, ' * 800 + b"]}", 413, "max_body_bytes"),
    (None, b'{"rows": [{"x0": 1.0', 400, "malformed JSON"),
])
def test_bad_requests_are_4xx_naming_the_problem(app: SimpleNamespace, body: Any, raw: bytes | None, status: int,
                                                 text: str) -> None:
    r = post(app, f"/v1/models/{MODEL}/predict", body, raw=raw)
    assert r.status_code == status, r.text
    assert text in r.json()["error"] and r.json()["request_id"] == r.headers["x-request-id"]


def _version_errors(app: SimpleNamespace) -> int:
    st = httpx.get(f"{app.url}/admin/status", headers={"Authorization": f"Bearer {app.admin}"}).json()
    return int(st["models"][MODEL]["window_stats"].get("1", {}).get("errors", 0))


def test_hostile_bodies_are_client_errors_never_counted_against_the_model(app: SimpleNamespace) -> None:
    """Found by sending them: these were 503s recorded against the version (a canary rolled back), or a
    plain-text 500, or a body buffered whole before the size check, or a connection held open."""
    import socket

    errors = _version_errors(app)
    url = f"{app.url}/v1/models/{MODEL}/predict"
    deep = post(app, f"/v2/models/{MODEL}/infer", raw=b'{"inputs":' + b"[" * 3000 + b"]" * 3000 + b"}")
    assert deep.status_code == 400 and "nested too deeply" in deep.json()["error"], deep.text
    digits = post(app, f"/v1/models/{MODEL}/predict", raw=b'{"rows": [{"x0": ' + b"9" * 5000 + b"}]}")
    assert digits.status_code == 400, digits.text
    r = httpx.post(app.url + "/invocations", content=b"x0,x1,x2,color\n" + b"1" * 7000 + b",1,1,red\n",
                   headers={**app.auth, "Content-Type": "text/csv"})
    assert r.status_code in (400, 422), r.text
    xml = httpx.post(url, content=b"<rows/>", headers={**app.auth, "Content-Type": "application/xml"})
    assert xml.status_code == 415 and "application/json" in xml.json()["error"]
    form = httpx.post(url, content=json.dumps({"rows": rows(1)}).encode(),
                      headers={**app.auth, "Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 415 and "-H 'Content-Type: application/json'" in form.json()["error"]
    # A name from the URL that no HTTP header can carry as is: the JSON 404, its header percent-encoded.
    emoji = httpx.post(f"{app.url}/v1/models/%F0%9F%98%80/predict", json={"rows": rows(1)}, headers=app.auth)
    assert emoji.status_code == 404 and "is not served here" in emoji.json()["error"]
    assert emoji.headers["x-model-name"] == "%F0%9F%98%80"
    # A chunked body (no Content-Length) is cut off at the limit, not read whole first.
    chunks = (b'{"rows": [' + b" " * 1000 for _ in range(50))
    big = httpx.post(url, content=chunks, headers={**app.auth, "Content-Type": "application/json"})
    assert big.status_code == 413 and "over 8192 bytes" in big.json()["error"]
    # A body shorter than its Content-Length: a 408 once serve.body_timeout_s (3 s here) has passed.
    host, port = app.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(f"POST /v1/models/{MODEL}/predict HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {app.token}\r\n"
                     "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"rows\"".encode())
        answer = ""
        while "}" not in answer:  # headers and body may come in separate segments
            chunk = sock.recv(4096).decode(errors="replace")
            if not chunk:
                break
            answer += chunk
    assert answer.startswith("HTTP/1.1 408") and "serve.body_timeout_s" in answer, answer[:300]
    assert _version_errors(app) == errors  # none of it was the model's failure


def test_request_ids_of_any_length_are_echoed_once(app: SimpleNamespace) -> None:
    url = f"{app.url}/v1/models/{MODEL}/predict"
    long_id = "x" * 300
    r = httpx.post(url, json={"rows": rows(1)}, headers={**app.auth, "X-Request-ID": long_id})
    assert r.headers.get_list("x-request-id") == [long_id] and r.json()["request_id"] == long_id
    r = httpx.post(url, json={"rows": rows(1)}, headers={**app.auth, "X-Request-ID": ""})
    assert len(r.headers.get_list("x-request-id")) == 1 and r.json()["request_id"]


def test_bad_requests_leave_the_replicas_healthy(app: SimpleNamespace) -> None:
    for _ in range(3):
        post(app, f"/v1/models/{MODEL}/predict", raw=b"{not json")
    assert post(app, f"/v1/models/{MODEL}/predict", {"rows": rows(1)}).status_code == 200


def test_auth_on_predict_and_admin_routes(app: SimpleNamespace) -> None:
    url = f"{app.url}/v1/models/{MODEL}/predict"
    unauth = httpx.post(url, json={"rows": rows(1)})
    assert unauth.status_code == 401 and unauth.headers["www-authenticate"] == "Bearer"
    assert httpx.post(url, json={"rows": rows(1)}, headers={"Authorization": "Bearer nope"}).status_code == 403
    assert httpx.get(f"{app.url}/admin/status", headers=app.auth).status_code == 403
    st = httpx.get(f"{app.url}/admin/status", headers={"Authorization": f"Bearer {app.admin}"})
    assert st.status_code == 200 and st.json()["models"][MODEL]["stable"] == "1"
    r = httpx.post(f"{app.url}/admin/models/{MODEL}/rollback", headers={"Authorization": f"Bearer {app.admin}"})
    assert r.status_code == 409 and "nothing to roll back" in r.json()["error"]
    assert {"error", "field", "status", "request_id", "model_name", "model_version"} <= set(r.json())  # one shape


def test_unknown_model_is_404(app: SimpleNamespace) -> None:
    r = post(app, "/v1/models/other/predict", {"rows": rows(1)})
    assert r.status_code == 404 and "'other' is not served" in r.json()["error"]
    for i in range(3):  # made-up names share one metric label: a client cannot grow the label set
        post(app, f"/v1/models/made-up-{i}/predict", {"rows": rows(1)})
    text = httpx.get(app.url + "/metrics").text
    assert 'model="<unknown>"' in text and "made-up-" not in text


def test_unknown_route_and_wrong_method_carry_a_request_id(app: SimpleNamespace) -> None:
    r = httpx.get(f"{app.url}/v1/models/{MODEL}/predict", headers=app.auth)
    assert r.status_code == 405 and r.headers["allow"] == "POST" and r.json()["error"] == "Method Not Allowed"
    assert r.json()["request_id"] == r.headers["x-request-id"]
    r = httpx.get(f"{app.url}/no/such/route", headers={"X-Request-ID": "mine-1"})
    assert r.status_code == 404 and r.json() == {"error": "Not Found", "field": None, "status": 404,
                                                  "request_id": "mine-1", "model_name": None, "model_version": None}


def test_openapi_docs(app: SimpleNamespace) -> None:
    assert httpx.get(app.url + "/docs").status_code == 200
    paths = httpx.get(app.url + "/openapi.json").json()["paths"]
    assert {"/v1/models/{name}/predict", "/v2/models/{name}/infer", "/invocations", "/metrics"} <= set(paths)


def test_prometheus_metrics_per_version(app: SimpleNamespace) -> None:
    post(app, f"/v1/models/{MODEL}/predict", {"rows": rows(2)})
    text = httpx.get(app.url + "/metrics").text
    assert 'mlops_ray_requests_total{code="200",model="clf",route="v1",version="1"}' in text
    assert 'mlops_ray_request_errors_total{kind="client",model="clf",route="v1",version="1"}' in text
    assert 'mlops_ray_batch_size_count{model="clf",version="1"}' in text
    assert 'mlops_ray_request_latency_seconds_bucket{le="0.1",model="clf",route="v1",version="1"}' in text


def test_feedback_labels_are_scored_and_logged(app: SimpleNamespace) -> None:
    r = post(app, f"/v1/models/{MODEL}/predict", {"rows": rows(1)})
    rid, pred = r.json()["request_id"], r.json()["predictions"][0]
    fb = post(app, f"/v1/models/{MODEL}/feedback", {"request_ids": [rid, "never-sent"], "labels": [pred, pred]})
    assert fb.status_code == 200 and fb.json()["matched_recent"] == 1
    assert fb.json()["unknown_ids"] == ["never-sent"]  # reported back, not silently ignored
    assert list(Path(app.rt.monitor_dir).rglob("*.parquet"))  # monitor's feedback store got it
    # A request of three rows: "<id>#k" labels row k, and a row it does not have is unknown, logged or not.
    three = post(app, f"/v1/models/{MODEL}/predict", {"rows": rows(3)}).json()
    ids = [three["request_id"], f"{three['request_id']}#2", f"{three['request_id']}#5"]
    fb = post(app, f"/v1/models/{MODEL}/feedback", {"request_ids": ids, "labels": [
        three["predictions"][0], three["predictions"][2], three["predictions"][0]]})
    assert fb.json()["matched_recent"] == 2 and fb.json()["unknown_ids"] == [ids[2]]
    # A label the model cannot predict would count as a wrong answer and could trigger a retrain: refused.
    bad = post(app, f"/v1/models/{MODEL}/feedback", {"request_ids": [rid], "labels": ["seven"]})
    assert bad.status_code == 422 and "not one of the model's classes" in bad.json()["error"]
    xml = httpx.post(f"{app.url}/v1/models/{MODEL}/feedback", content=json.dumps({"request_ids": [rid], "labels": [
        pred]}).encode(), headers={**app.auth, "Content-Type": "application/xml"})
    assert xml.status_code == 415
    twice = post(app, f"/v1/models/{MODEL}/feedback", {"request_ids": [rid, rid], "labels": [pred, "other"]})
    assert twice.status_code == 422 and "two different labels" in twice.json()["error"]
    many = post(app, f"/v1/models/{MODEL}/feedback", {"request_ids": ["a"] * 51, "labels": [pred] * 51})
    assert many.status_code == 413 and "max_rows_per_request" in many.json()["error"]
    huge = post(app, f"/v1/models/{MODEL}/predict", {"rows": [{**rows(1)[0], "x1": 10 ** 400}]})
    assert huge.status_code == 422 and "too large" in huge.json()["error"]  # bad input is never a 5xx


def test_cli_status_and_predict(app: SimpleNamespace, capsys: pytest.CaptureFixture[str]) -> None:
    from mlops_ray.cli import main

    wd = str(app.rt.workdir)
    assert main(["status", "--workdir", wd, "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    v1 = st["models"][MODEL]["versions"]["1"]
    assert v1["traffic"] == 100.0 and v1["replicas"].get("RUNNING") == 2
    assert v1["app_status"] == "RUNNING"  # the status's value, not "ApplicationStatus.RUNNING"
    assert main(["predict", MODEL, "--workdir", wd, "--json", json.dumps(rows(2))]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model_version"] == "1" and len(out["predictions"]) == 2
    assert main(["predict", MODEL, "--workdir", wd, "--json", '[{"x0": 1}]']) == 1
    assert "missing feature(s)" in capsys.readouterr().err
    stored = app.rt.serve_dir / "tokens.json"
    stored.rename(stored.with_suffix(".away"))
    try:  # no token anywhere: the 401 says where one would have come from
        assert main(["predict", MODEL, "--workdir", wd, "--json", json.dumps(rows(1))]) == 1
        assert f"no token found: pass --token, set MLOPS_RAY_TOKEN, or restore {stored}" in capsys.readouterr().err
    finally:
        stored.with_suffix(".away").rename(stored)


def test_status_lists_a_version_app_nothing_routes_to(app: SimpleNamespace,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """What a deploy killed mid-way leaves: an application holding CPUs that `status` did not show."""
    from ray import serve

    from mlops_ray.cli import main
    from mlops_ray.serve.controller import model_options, version_app_name
    from mlops_ray.serve.model_server import model_app

    orphan = version_app_name(app.dep.app_name, MODEL, "9")
    serve.run(model_app(MODEL, "9", app.dep.source, model_options(app.cfg, app.rt), app.cfg.serve, 1),
              name=orphan, route_prefix=None)
    try:
        assert main(["status", "--workdir", str(app.rt.workdir)]) == 0
        out = capsys.readouterr().out
        assert f"not routed (left by an interrupted deploy, holding CPUs): {orphan}" in out
    finally:
        serve.delete(orphan)


# ------------------------------------------------------------------ fault tolerance (last: it kills a replica)

MAX_LOST = 3  # the goal is none: a prediction is retried on the other replica when its replica dies


def replica_pids(app: str) -> list[int]:
    """PIDs of the live replicas of a version's deployment (Serve names them SERVE_REPLICA::<app>#<dep>#<id>)."""
    import ray

    pids = []
    for a in ray.util.list_named_actors(all_namespaces=True):
        if a["namespace"] == "serve" and a["name"].startswith(f"SERVE_REPLICA::{app}#ModelServer#"):
            try:
                h = ray.get_actor(a["name"], namespace="serve")
                pids.append(int(ray.get(h.__ray_call__.remote(lambda _self: os.getpid()), timeout=10)))
            except Exception:  # dead or not started yet
                continue
    return pids


def running_replicas(app: str) -> int:
    from ray import serve

    st = serve.status().applications.get(app)
    if st is None:
        return 0
    return sum(n for d in st.deployments.values() for s, n in d.replica_states.items() if str(s).endswith("RUNNING"))


@pytest.mark.slow
def test_killing_a_replica_under_load_loses_at_most_a_handful(app: SimpleNamespace) -> None:
    vapp = app.dep.version_app
    pids = replica_pids(vapp)
    assert len(pids) == 2 and running_replicas(vapp) == 2
    with Load(app.url, app.token, MODEL, threads=4, pause_s=0.005) as load:
        time.sleep(1.5)
        before = load.result.total
        os.kill(pids[0], signal.SIGKILL)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            now = set(replica_pids(vapp))
            if len(now) == 2 and pids[0] not in now and running_replicas(vapp) == 2:
                break
            time.sleep(0.5)
        recovered_at = load.result.total
        time.sleep(1.0)
    res = load.result
    assert pids[0] not in replica_pids(vapp) and running_replicas(vapp) == 2, "the replica count did not recover"
    lost = res.total - res.codes[200]
    assert lost <= MAX_LOST, (res.codes, res.failures[:5])
    assert recovered_at > before and res.codes[200] > 100
