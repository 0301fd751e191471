"""The data stage on the real local Ray: files, folders, globs, bundled sets, and bad input on purpose."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlops_ray.cli import main
from mlops_ray.config import load_config, parse_config
from mlops_ray.data import format_report, prepare
from mlops_ray.data.generate import generate_table
from mlops_ray.exceptions import DataError, SchemaError
from mlops_ray.runtime import Runtime

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCHEMA = {"columns": [
    {"name": "x", "type": "float", "min": 0, "max": 100},
    {"name": "n", "type": "int"},
    {"name": "color", "type": "category", "allowed": ["red", "green", "blue"]},
    {"name": "y", "type": "category", "nullable": False},
]}


def _cfg(path: str, **data: Any) -> Any:
    spec: dict[str, Any] = {"source": {"path": path}, "target": "y", "schema": SCHEMA,
                            "split": {"holdout_fraction": 0.25, "folds": 3}}
    spec.update(data)
    return parse_config({"name": "t", "seed": 3, "data": spec})


def _frame(n: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "x": rng.uniform(0, 100, n).round(3), "n": rng.integers(0, 9, n),
        "color": rng.choice(["red", "green", "blue"], n), "y": rng.choice(["yes", "no"], n),
    })


def test_bundled_breast_cancer(ray_session: str, runtime: Runtime) -> None:
    cfg = load_config(EXAMPLES / "breast_cancer.yaml")
    p = prepare(cfg, runtime)
    r = p.report
    assert r.rows_read == 569 == r.rows_clean and r.rows_rejected == 0 and r.reconciles()
    assert p.X_train.shape == (r.rows_train, 30) and p.X_holdout.shape == (r.rows_holdout, 30)
    assert p.features.classes == [0, 1] and p.task == "classification" and p.n_folds == 5
    assert set(np.unique(p.y_train)) == {0, 1}
    # Standard-scaled with training statistics: mean ~0 and std ~1 on the training rows.
    assert np.abs(p.X_train.mean(axis=0)).max() < 1e-6 and np.allclose(p.X_train.std(axis=0), 1.0, atol=1e-6)
    # The very same features reproduce the stored holdout matrix from the raw holdout rows.
    assert np.allclose(p.features.transform(p.holdout_frame), p.X_holdout)
    assert list(p.holdout_frame.columns) == p.features.input_columns  # inputs only: the label is y_holdout
    # Each holdout row's content hash, in holdout order: it is in the holdout under this seed, and the gate
    # asks which of these rows another split trained on.
    from mlops_ray.data.hashing import holdout_mask

    assert p.holdout_hashes is not None and len(p.holdout_hashes) == r.rows_holdout
    assert holdout_mask(p.holdout_hashes, cfg.seed, cfg.data.split.holdout_fraction).all()
    assert list(p.train_frame_sample.columns) == p.features.input_columns and len(p.train_frame_sample) == 5
    out = Path(r.output_dir)
    for name in ("features.json", "reference.json", "report.json", "rejects.parquet"):
        assert (out / name).is_file()
    ref = json.loads((out / "reference.json").read_text())
    assert ref["n_rows"] == r.rows_train and len(ref["columns"]) == 30
    assert sum(ref["columns"]["mean radius"]["counts"]) == r.rows_train
    again = prepare(cfg, runtime)
    assert again.fingerprint == p.fingerprint and np.array_equal(again.folds, p.folds)
    assert np.array_equal(again.X_train, p.X_train)


def test_csv_parquet_folder_and_glob_agree(ray_session: str, runtime: Runtime, tmp_path: Path) -> None:
    df = _frame(150)
    df.to_csv(tmp_path / "one.csv", index=False)
    shuffled = df.sample(frac=1.0, random_state=1)
    (tmp_path / "pq").mkdir()
    for i, part in enumerate((shuffled.iloc[:40], shuffled.iloc[40:90], shuffled.iloc[90:])):
        part.to_parquet(tmp_path / "pq" / f"part-{i}.parquet", index=False)
    (tmp_path / "csvs").mkdir()
    for i, part in enumerate((df.iloc[:70], df.iloc[70:])):
        part.to_csv(tmp_path / "csvs" / f"p{i}.csv", index=False)
    one = prepare(_cfg(str(tmp_path / "one.csv")), runtime)
    folder = prepare(_cfg(str(tmp_path / "pq")), runtime)
    glob = prepare(_cfg(str(tmp_path / "csvs" / "*.csv")), runtime)
    for p in (one, folder, glob):
        assert p.report.rows_read == 150 and p.report.rows_rejected == 0
    # The declared types reach the MLflow signature: an int column is an int input (a `long`).
    assert {f.name: f.raw_type for f in one.features.numeric} == {"x": "float", "n": "int"}
    assert one.features.signature_types() == {"x": "double", "n": "long", "color": "string"}
    # Same rows, however split into files, ordered or formatted: same fingerprint, split and matrices.
    assert one.fingerprint == folder.fingerprint == glob.fingerprint
    assert one.report.rows_train == folder.report.rows_train == glob.report.rows_train
    # Scales are merged from block partials in another order: equal to rounding error.
    assert np.allclose(one.X_train, folder.X_train, rtol=0, atol=1e-12) and np.array_equal(one.folds, glob.folds)
    # The columns in another order (an inferred schema follows the file): the same data, split the same way.
    df[list(reversed(df.columns))].to_csv(tmp_path / "reversed.csv", index=False)
    inferred = prepare(_cfg(str(tmp_path / "one.csv"), schema={}), runtime)
    rev = prepare(_cfg(str(tmp_path / "reversed.csv"), schema={}), runtime)
    assert rev.fingerprint == inferred.fingerprint and np.array_equal(rev.folds, inferred.folds)
    assert np.array_equal(rev.y_holdout, inferred.y_holdout)
    other_seed = prepare(parse_config({**_cfg(str(tmp_path / "one.csv")).model_dump(by_alias=True), "seed": 4}),
                         runtime)
    assert other_seed.fingerprint == one.fingerprint  # the content is the same; only the split moves
    assert not np.array_equal(other_seed.y_holdout, one.y_holdout) or other_seed.report.rows_holdout != \
        one.report.rows_holdout


def test_bad_rows_are_rejected_with_reasons(ray_session: str, runtime: Runtime, tmp_path: Path) -> None:
    text = (
        "x,n,color,y\n"
        "1.5,1,red,yes\n"
        "abc,2,red,no\n"      # wrong type
        "inf,3,blue,yes\n"    # non-finite
        ",4,green,no\n"       # missing: filled, kept
        "NaN,4,green,no\n"    # NaN text: missing, kept
        "150,5,red,yes\n"     # above max
        "2.5,6,purple,no\n"   # unknown category
        "3.5,7.5,red,no\n"    # an int column with a fraction
        "4.5,8,red,\n"        # missing label
    ) + "".join(f"{i}.0,{i % 9},{['red', 'green', 'blue'][i % 3]},{['yes', 'no'][i % 2]}\n" for i in range(40))
    (tmp_path / "bad.csv").write_text(text)
    p = prepare(_cfg(str(tmp_path / "bad.csv")), runtime)
    r = p.report
    assert r.rows_read == 49 and r.rows_rejected == 6 and r.rows_clean == 43 and r.reconciles()
    assert r.rejected_by_reason == {"wrong_type:x": 1, "non_finite:x": 1, "above_max:x": 1,
                                    "unknown_category:color": 1, "wrong_type:n": 1, "missing_target:y": 1}
    assert r.missing_filled == {"x": 2}
    rejects = pd.read_parquet(r.rejects_path)
    assert len(rejects) == 6 and set(rejects["_reject_reason"]) == set(r.rejected_by_reason)
    assert rejects.loc[rejects["_reject_reason"] == "wrong_type:x", "x"].tolist() == ["abc"]
    assert "rejected" in format_report(r) and "wrong_type:x" in format_report(r)


def test_csv_lines_of_the_wrong_field_count_are_quarantined(ray_session: str, runtime: Runtime,
                                                            tmp_path: Path) -> None:
    good = "".join(f"{i}.0,{i % 9},{['red', 'green', 'blue'][i % 3]},{['yes', 'no'][i % 2]}\n" for i in range(40))
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.csv").write_text("x,n,color,y\n" + good + "1.0,2,red\n" + good + "1.0,2,red,yes,extra\n")
    (tmp_path / "d" / "b.csv").write_text("x,n,color,y\n" + good)
    p = prepare(_cfg(str(tmp_path / "d")), runtime)
    r = p.report
    # Every line is counted once: 120 good rows, 2 malformed ones rejected with their text and file.
    assert r.rows_read == 122 and r.rows_clean == 120 and r.rejected_by_reason == {"malformed_line": 2}
    assert r.reconciles()
    rejects = pd.read_parquet(r.rejects_path)
    assert sorted(rejects["_raw_line"]) == ["1.0,2,red", "1.0,2,red,yes,extra"]
    assert set(rejects["_file"]) == {str(tmp_path / "d" / "a.csv")} and rejects["x"].isna().all()
    assert set(rejects["_reject_reason"]) == {"malformed_line"}
    # The same rows without the bad lines: the same data, so the same fingerprint.
    (tmp_path / "d" / "a.csv").write_text("x,n,color,y\n" + good + good)
    assert prepare(_cfg(str(tmp_path / "d")), runtime).fingerprint == p.fingerprint

    # Strict mode: the file fails, named, with the line quoted.
    (tmp_path / "d" / "a.csv").write_text("x,n,color,y\n" + good + "1.0,2,red\n")
    strict = _cfg(str(tmp_path / "d"), schema={**SCHEMA, "malformed_lines": "error"})
    with pytest.raises(DataError, match=r"a\.csv cannot be read: .*Expected 4 columns, got 3: 1\.0,2,red") as err:
        prepare(strict, runtime)
    # The error as raised in the read task: not Ray's RayTaskError(DataError) with the worker's traceback,
    # nor Ray Data's retry advice appended.
    assert type(err.value) is DataError and "Traceback" not in str(err.value) and "Failed to" not in str(err.value)
    out_dir = runtime.data_dir / "t"
    assert (out_dir / "features.json").is_file()  # a run that fails while reading leaves the last outputs
    # A header that does not match any line (a wrong delimiter): no valid rows, and the reason says why.
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "c.csv").write_text("x,n,color,y\n" + good.replace(",", ";").replace(";", ",", 1))
    with pytest.raises(DataError, match=r"no valid training rows .*malformed_line.: 40.*every rejected row, with "
                                         r"its reason, is in .*rejects\.parquet"):
        prepare(_cfg(str(tmp_path / "e")), runtime)
    rejects = pd.read_parquet(out_dir / "rejects.parquet")  # what the user needs most when nothing was valid
    assert len(rejects) == 40 and set(rejects["_reject_reason"]) == {"malformed_line"}
    assert not (out_dir / "features.json").exists()  # not left beside rejects of another run
    assert sorted(p.name for p in out_dir.iterdir()) == ["rejects.parquet"]  # no empty train/holdout folders


def test_inferred_types_follow_every_file_and_the_values(ray_session: str, runtime: Runtime, tmp_path: Path) -> None:
    def infer(path: Path, **data: Any) -> Any:
        return prepare(parse_config({"name": "inf", "seed": 3, "data": {"source": {"path": str(path)}, "target": "y",
                                                                         "split": {"folds": 3}, **data}}), runtime)

    rng = np.random.default_rng(1)
    whole = pd.DataFrame({"amount": rng.integers(0, 50, 60), "y": rng.choice(["a", "b"], 60)})
    decimals = pd.DataFrame({"amount": rng.uniform(0, 50, 60).round(2), "y": rng.choice(["a", "b"], 60)})
    # Whole numbers in the first file, decimals in the second (and the other way round): one float column.
    for first, second in ((whole, decimals), (decimals, whole)):
        (tmp_path / "f").mkdir(exist_ok=True)
        first.to_csv(tmp_path / "f" / "1.csv", index=False)
        second.to_csv(tmp_path / "f" / "2.csv", index=False)
        p = infer(tmp_path / "f")
        assert p.report.rows_rejected == 0 and p.features.feature_names_out == ["amount"]
    # One stray "?" in a number column: still a number column, and that row is a reject with its reason.
    text = decimals.astype(str)
    text.loc[7, "amount"] = "?"
    text.to_csv(tmp_path / "q.csv", index=True)  # with pandas' unnamed index column
    p = infer(tmp_path / "q.csv")
    assert p.features.feature_names_out == ["amount"] and p.report.rejected_by_reason == {"wrong_type:amount": 1}
    assert p.report.columns_ignored == [""] and "(a saved pandas index?)" in format_report(p.report)
    # The same in Parquet: pandas stores a non-default index as __index_level_0__ (the row order of a file
    # sorted by the label would leak it): ignored and listed, never a feature.
    decimals.sample(frac=1.0, random_state=0).to_parquet(tmp_path / "shuffled.parquet")
    p = infer(tmp_path / "shuffled.parquet")
    assert p.features.feature_names_out == ["amount"] and p.report.columns_ignored == ["__index_level_0__"]
    with pytest.raises(DataError, match=r"data.task is regression but target 'y' is (str|category) .*\['a', 'b'\]"):
        infer(tmp_path / "shuffled.parquet", task="regression")  # was "UserCodeException ... corrupt input"
    decimals.assign(y=decimals["amount"] / 7).to_parquet(tmp_path / "continuous.parquet")
    with pytest.raises(DataError, match=r"classification but target 'y' holds fractional numbers .*regression"):
        infer(tmp_path / "continuous.parquet", task="classification")  # was 60 one-row "classes"
    # A CSV is text: in a number column pandas' null words ("n/a", "NA", "null") are missing values and a
    # stray "?" a wrong_type reject; in a text column only "" is missing ("NA" stays a category, as in
    # Parquet); a date column is a category of its text.
    odd = pd.DataFrame({"amount": [float(i) for i in range(60)], "cat": ["NA", "null", "x"] * 20,
                        "day": [f"2024-01-{1 + i % 28:02d}" for i in range(60)], "y": ["a", "b"] * 30})
    odd = odd.astype({"amount": object})
    odd.loc[5, "amount"] = "n/a"
    odd.loc[6, "amount"] = ""
    odd.loc[8, "amount"] = "?"
    odd.to_csv(tmp_path / "odd.csv", index=False)
    p = infer(tmp_path / "odd.csv")
    assert p.report.rejected_by_reason == {"wrong_type:amount": 1}
    assert p.report.missing_filled == {"amount": 2}
    assert sorted(c.name for c in p.features.categorical) == ["cat", "day"]
    assert {"cat=NA", "cat=null"} <= set(p.features.feature_names_out)
    # A column with no value at all: ignored and listed in Parquet as in CSV (a typed all-null Parquet column
    # was an error, the same column in a CSV ignored).
    decimals.assign(empty=np.nan).to_parquet(tmp_path / "empty_col.parquet")
    decimals.assign(empty=np.nan).to_csv(tmp_path / "empty_col.csv", index=False)
    pq_run, csv_run = infer(tmp_path / "empty_col.parquet"), infer(tmp_path / "empty_col.csv")
    assert pq_run.report.columns_ignored == csv_run.report.columns_ignored == ["empty"]
    assert pq_run.report.fingerprint == csv_run.report.fingerprint
    # A ';'-separated export (Excel in most of Europe): the hint names the setting, and the setting reads it.
    decimals.to_csv(tmp_path / "semi.csv", sep=";", index=False)
    with pytest.raises(SchemaError, match=r"looks ';'-separated: set data.source.delimiter: ';'"):
        infer(tmp_path / "semi.csv")
    p = prepare(parse_config({"name": "inf", "seed": 3, "data": {
        "source": {"path": str(tmp_path / "semi.csv"), "delimiter": ";"}, "target": "y", "split": {"folds": 3}}}),
        runtime)
    assert p.features.feature_names_out == ["amount"] and p.report.rows_rejected == 0
    (tmp_path / "header_only.csv").write_text("amount,y\n")
    with pytest.raises(SchemaError, match=r"no value in the input .*header but no rows"):
        infer(tmp_path / "header_only.csv")
    # Input that cannot be read right: said before any work, naming the file and the column.
    (tmp_path / "dup.csv").write_text("x,x,y\n1,2,a\n3,4,b\n")
    with pytest.raises(DataError, match=r"dup\.csv has the column name\(s\) \['x'\] more than once"):
        infer(tmp_path / "dup.csv")
    whole.assign(_row_hash=1).to_csv(tmp_path / "r.csv", index=False)
    with pytest.raises(SchemaError, match=r"\['_row_hash'\] in .*r\.csv use names the data stage reserves"):
        infer(tmp_path / "r.csv")
    with pytest.raises(SchemaError, match=r"data\.features\.columns names \['amuont'\], which are not feature"):
        infer(tmp_path / "f", features={"columns": {"amuont": "minmax"}})
    with pytest.raises(SchemaError, match=r"'onehot' does not apply to numeric column 'amount'"):
        infer(tmp_path / "f", features={"columns": {"amount": "onehot"}})
    # A number column named like a one-hot output of another column would overwrite it.
    pd.DataFrame({"cat=a": rng.uniform(0, 1, 60), "cat": rng.choice(["a", "b"], 60),
                  "y": rng.choice(["a", "b"], 60)}).to_csv(tmp_path / "c.csv", index=False)
    with pytest.raises(SchemaError, match=r"feature name\(s\) \['cat=a'\] come out twice"):
        infer(tmp_path / "c.csv")
    # A column with no value at all: ignored when the schema is inferred (an empty CSV column); declared but
    # absent from every file, an error that says so (was "the cleaning rules dropped every training row").
    whole.assign(blank="").to_csv(tmp_path / "blank.csv", index=False)
    p = infer(tmp_path / "blank.csv")
    assert p.features.feature_names_out == ["amount"] and p.report.columns_ignored == ["blank"]
    declared = {"columns": [{"name": "amount"}, {"name": "ghost", "type": "category", "required": False},
                            {"name": "y", "type": "category"}]}
    with pytest.raises(DataError, match=r"\['ghost'\] have no value in any training row .* data\.schema\.columns"):
        infer(tmp_path / "f", schema=declared)
    # Fewer training rows than folds: said, rather than a CV over the folds that happen to have rows.
    whole.head(4).to_csv(tmp_path / "few.csv", index=False)
    with pytest.raises(DataError, match=r"only \d of the 5 folds \(data\.split\.folds\) hold training rows"):
        prepare(parse_config({"name": "few", "data": {"source": {"path": str(tmp_path / "few.csv")}, "target": "y",
                                                     "split": {"folds": 5, "holdout_fraction": 0.05}}}), runtime)


def test_parquet_nan_inf_and_drop_rules(ray_session: str, runtime: Runtime, tmp_path: Path) -> None:
    df = _frame(60)
    x = df["x"].to_numpy(dtype=float).copy()
    x[0], x[1], x[2] = math.nan, math.inf, -math.inf  # a real float NaN (not a null) and both infinities
    n = pa.array(df["n"].to_numpy(), mask=np.arange(60) == 3)
    pq.write_table(pa.table({"x": pa.array(x), "n": n, "color": df["color"].tolist(), "y": df["y"].tolist()}),
                   tmp_path / "t.parquet")
    p = prepare(_cfg(str(tmp_path / "t.parquet")), runtime)
    assert p.report.rejected_by_reason == {"non_finite:x": 2} and p.report.missing_filled == {"n": 1, "x": 1}
    strict = _cfg(str(tmp_path / "t.parquet"), clean={"numeric_missing": {"strategy": "drop"}})
    strict.data.schema_.nan = "reject"
    q = prepare(strict, runtime)
    assert q.report.rejected_by_reason == {"non_finite:x": 3, "dropped_missing:n": 1}
    assert q.report.rows_dropped_missing == 1 and q.report.reconciles()
    assert set(pd.read_parquet(q.report.rejects_path)["_reject_reason"]) == {"non_finite:x", "dropped_missing:n"}


def test_generated_table_rejects_exactly_the_injected_faults(ray_session: str, runtime: Runtime,
                                                             tmp_path: Path) -> None:
    s = generate_table(tmp_path / "gen", 8000, seed=11, files=3)
    cfg = load_config(EXAMPLES / "synthetic.yaml", {"data.source.path": str(tmp_path / "gen")})
    p = prepare(cfg, runtime)
    assert p.report.rejected_by_reason == s.faults
    assert p.report.rows_read == 8000 and p.report.reconciles()
    assert "cat_1=__other__" in p.features.feature_names_out  # max_categories: 10 of 20 products
    assert p.features.numeric[4].clip_high is not None  # num_4 uses the IQR rule
    assert sum(p.report.outliers_handled.values()) > 0 and sum(p.report.missing_filled.values()) > 0


def test_unknown_categories_at_transform_time(ray_session: str, runtime: Runtime, tmp_path: Path) -> None:
    _frame(80).to_parquet(tmp_path / "t.parquet", index=False)
    free = {"columns": [c if c["name"] != "color" else {"name": "color", "type": "category"}
                        for c in SCHEMA["columns"]]}
    p = prepare(_cfg(str(tmp_path / "t.parquet"), schema=free), runtime)
    out = p.features.transform(pd.DataFrame({"x": [1.0], "n": [1], "color": ["ultraviolet"]}))
    names = p.features.feature_names_out
    assert all(out[0, names.index(f"color={c}")] == 0.0 for c in ("red", "green", "blue"))


def test_missing_column_fails_before_any_work(ray_session: str, runtime: Runtime, tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    _frame(10).to_csv(tmp_path / "d" / "a.csv", index=False)
    _frame(10).drop(columns=["n"]).to_csv(tmp_path / "d" / "b.csv", index=False)
    with pytest.raises(SchemaError, match=r"\['n'\] missing in .*b\.csv"):
        prepare(_cfg(str(tmp_path / "d")), runtime)
    assert not (runtime.data_dir / "t").exists()


def test_empty_and_corrupt_files(ray_session: str, runtime: Runtime, tmp_path: Path) -> None:
    (tmp_path / "e").mkdir()
    _frame(10).to_csv(tmp_path / "e" / "a.csv", index=False)
    (tmp_path / "e" / "empty.csv").write_text("")
    with pytest.raises(DataError, match=r"empty\.csv is empty"):
        prepare(_cfg(str(tmp_path / "e")), runtime)
    (tmp_path / "h").mkdir()
    (tmp_path / "h" / "header.csv").write_text("x,n,color,y\n")
    with pytest.raises(DataError, match="no rows"):
        prepare(_cfg(str(tmp_path / "h")), runtime)
    (tmp_path / "c").mkdir()
    _frame(10).to_parquet(tmp_path / "c" / "good.parquet", index=False)
    (tmp_path / "c" / "bad.parquet").write_bytes(b"PAR1 this is not a parquet file")
    with pytest.raises(DataError, match=r"bad\.parquet is corrupt"):
        prepare(_cfg(str(tmp_path / "c")), runtime)
    # A valid footer over damaged pages fails in the Ray read, still as a DataError.
    good = (tmp_path / "c" / "good.parquet").read_bytes()
    (tmp_path / "c" / "bad.parquet").write_bytes(good[:4] + b"\x00" * (len(good) - 4 - 300) + good[-300:])
    with pytest.raises(DataError):
        prepare(_cfg(str(tmp_path / "c")), runtime)


def test_all_rows_rejected_is_an_error(ray_session: str, runtime: Runtime, tmp_path: Path) -> None:
    pq.write_table(pa.table({"x": [-1.0, -2.0], "n": [1, 2], "color": ["red", "red"], "y": ["a", "b"]}),
                   tmp_path / "neg.parquet")
    with pytest.raises(DataError, match="below_min:x"):
        prepare(_cfg(str(tmp_path / "neg.parquet")), runtime)


def test_cli_data_command(ray_session: str, runtime: Runtime, tmp_path: Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    _frame(50).to_csv(tmp_path / "a.csv", index=False)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"name": "cli", "data": {"source": {"path": "a.csv"}, "target": "y",
                                                       "schema": SCHEMA}}))
    assert main(["data", str(cfg), "--workdir", str(runtime.workdir)]) == 0
    out = capsys.readouterr().out
    assert "rows read" in out and "fingerprint" in out and "reconciles     yes" in out
    assert (runtime.data_dir / "cli" / "features.json").is_file()
    assert main(["data", str(cfg), "--workdir", str(runtime.workdir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows_read"] == 50


@pytest.mark.parametrize(("name", "task", "n_classes"), [("iris", "classification", 3), ("diabetes", "regression", 0)])
def test_other_bundled_sets(ray_session: str, runtime: Runtime, name: str, task: str, n_classes: int) -> None:
    cfg = parse_config({"name": name, "data": {"source": {"bundled": name}, "split": {"folds": 3}}})
    p = prepare(cfg, runtime)
    assert p.task == task and p.report.rows_rejected == 0 and p.report.reconciles()
    if task == "classification":
        assert p.features.classes == list(range(n_classes))
        for k in range(3):  # stratified: every fold holds every class
            assert set(p.y_train[p.folds == k]) == set(range(n_classes))
    else:
        assert p.features.classes is None and p.y_train.dtype == np.float64
        tgt = p.reference["target"]
        assert tgt["kind"] == "numeric" and sum(tgt["counts"]) == p.report.rows_train


def test_a_wrong_path_fails_before_ray_starts(tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "p.yaml").write_text("name: np\ndata:\n  source: {path: nothere.csv}\n  target: y\n")
    for cmd in (["run", str(tmp_path / "p.yaml")], ["data", str(tmp_path / "p.yaml")]):
        done = subprocess.run([sys.executable, "-m", "mlops_ray.cli", *cmd, "--workdir", str(tmp_path / "w")],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 1 and "nothere.csv' does not exist" in done.stderr, done.stderr
        assert "Ray" not in done.stderr and not (tmp_path / "w").exists()
    # A typo in the tune section: the same, before the data stage and Ray (it used to wait for both).
    (tmp_path / "t.yaml").write_text("name: np\ndata:\n  source: {bundled: iris}\ntune:\n  model: {estimator: "
                                     "sklearn.ensemble.RandomForestClassifier, params: {n_estimator: 5}}\n")
    done = subprocess.run([sys.executable, "-m", "mlops_ray.cli", "run", str(tmp_path / "t.yaml"), "--steps",
                           "data,tune", "--workdir", str(tmp_path / "w")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "tune.model.params.n_estimator: " in done.stderr, done.stderr
    assert "Ray" not in done.stderr and not (tmp_path / "w").exists()
    # A typo in the gate's thresholds: the same (it surfaced after the whole search).
    (tmp_path / "g.yaml").write_text("name: np\ndata:\n  source: {bundled: iris}\n"
                                     "registry:\n  gate: {thresholds: {acuracy: 0.9}}\n")
    done = subprocess.run([sys.executable, "-m", "mlops_ray.cli", "register", str(tmp_path / "g.yaml"), "--workdir",
                           str(tmp_path / "w")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "registry.gate.thresholds: unknown metric(s) ['acuracy']" in done.stderr
    assert "Ray" not in done.stderr and not (tmp_path / "w").exists()


def test_two_runs_on_one_workdir_take_turns(ray_session: str, runtime: Runtime, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """They wrote part files into the same folders and each read back the other's rows (twice the rows):
    a run waits while another holds the pipeline's data folder."""
    import threading

    from mlops_ray.locks import exclusive

    _frame(300).to_csv(tmp_path / "d.csv", index=False)
    cfg = _cfg(str(tmp_path / "d.csv"))
    alone = prepare(cfg, runtime)
    out: list[Any] = []
    with exclusive(runtime.data_dir / ".t.lock", "test"):  # another command's data stage, mid-way
        worker = threading.Thread(target=lambda: out.append(prepare(cfg, runtime)))
        worker.start()
        worker.join(timeout=8)
        assert worker.is_alive() and not out  # waiting, not writing beside the other run
    worker.join(timeout=120)
    assert len(out[0].y_holdout) == len(alone.y_holdout) and out[0].fingerprint == alone.fingerprint
    assert len(pd.read_parquet(runtime.data_dir / "t" / "holdout")) == len(alone.y_holdout)
    assert "waiting for another command's data stage of 't'" in capsys.readouterr().out
