"""compare (T50): paired statistics, variants and bad input, shared seeds end to end, run directories, CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

from tests.conftest import run_cli
from tunesmith.cli import app
from tunesmith.comparison import CompareResult, SeedRun, compare, parse_vary
from tunesmith.comparison.stats import paired_verdict, smallest_detectable_effect
from tunesmith.errors import BadInput, TrainingDiverged
from tunesmith.fitting import fit

IRIS = {"data": "iris", "epochs": 10, "workers": 1, "progress": False}


# ---- statistics (no training) -------------------------------------------------------------------
def test_paired_verdict_is_the_t_interval_of_the_per_seed_differences() -> None:
    a = np.array([0.90, 0.92, 0.91, 0.93, 0.95])
    b = np.array([0.86, 0.89, 0.85, 0.88, 0.91])
    d = a - b
    half = stats.t.ppf(0.975, 4) * d.std(ddof=1) / np.sqrt(5)
    v = paired_verdict(a, b, higher_is_better=True, names=("new", "old"))
    assert v.diff == pytest.approx(d.mean()) and v.n == 5
    assert v.ci95 == pytest.approx((d.mean() - half, d.mean() + half))
    assert v.verdict == "better" and (v.a, v.b) == ("new", "old")
    # the same numbers as an error metric (lower is better): the higher variant is worse
    assert paired_verdict(a, b, higher_is_better=False).verdict == "worse"
    # noise around zero: the interval straddles it
    noise = paired_verdict(a, a + np.array([0.02, -0.03, 0.01, -0.01, 0.02]), higher_is_better=True)
    assert noise.verdict == "no detectable difference" and noise.ci95[0] < 0 < noise.ci95[1]


def test_identical_and_constant_differences_have_a_collapsed_interval() -> None:
    a = np.array([0.8, 0.9, 0.85])
    same = paired_verdict(a, a, higher_is_better=True)
    assert (same.diff, same.ci95, same.verdict) == (0.0, (0.0, 0.0), "no detectable difference")
    assert same.smallest_effect is None  # no spread to estimate it from: unknown, not "0 is detectable"
    one_row = paired_verdict([23 / 24, 1.0, 22 / 24], [22 / 24, 23 / 24, 21 / 24], higher_is_better=True)
    assert one_row.smallest_effect is None and one_row.verdict == "better"  # 1/24 up at every seed, round-off aside
    shifted = paired_verdict(a - 0.05, a, higher_is_better=True)
    assert shifted.verdict == "worse" and shifted.ci95 == pytest.approx((-0.05, -0.05))


def test_folds_are_averaged_within_a_seed_before_the_interval() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.9, 0.02, (4, 5)), rng.normal(0.9, 0.02, (4, 5))  # (seeds, folds)
    v = paired_verdict(a, b, higher_is_better=True)
    per_seed = (a - b).mean(axis=1)
    assert v.n == 4 and v.diff == pytest.approx(per_seed.mean())
    assert v.ci95[1] - v.ci95[0] == pytest.approx(2 * stats.t.ppf(0.975, 3) * per_seed.std(ddof=1) / 2)


def test_smallest_detectable_effect_is_detected_80_percent_of_the_time() -> None:
    rng = np.random.default_rng(1)
    for n in (3, 5, 10):
        effect = smallest_detectable_effect(1.0, n)
        assert effect == pytest.approx((stats.t.ppf(0.975, n - 1) + stats.t.ppf(0.8, n - 1)) / np.sqrt(n), rel=0.15)
        diffs = rng.normal(effect, 1.0, (20_000, n))
        power = (stats.ttest_1samp(diffs, 0.0, axis=1).pvalue < 0.05).mean()
        assert power == pytest.approx(0.8, abs=0.02)
    assert smallest_detectable_effect(1.0, 20) < smallest_detectable_effect(1.0, 5)  # more seeds, finer


def test_a_a_comparisons_are_called_different_about_5_percent_of_the_time() -> None:
    rng = np.random.default_rng(2)
    calls = [
        paired_verdict(rng.normal(0.9, 0.03, 5), rng.normal(0.9, 0.03, 5), higher_is_better=True).verdict
        for _ in range(600)
    ]
    assert 0.025 <= np.mean([c != "no detectable difference" for c in calls]) <= 0.08


# ---- variants and bad input (nothing is trained) ----------------------------------------------------
def test_parse_vary_reads_yaml_values_and_lists() -> None:
    assert parse_vary(["model.dropout=0,0.2,0.5"]) == {"model.dropout": [0, 0.2, 0.5]}
    assert parse_vary(["train.optimizer=adam,sgd", "data.augment.ops=[noise],[mixup]"]) == {
        "train.optimizer": ["adam", "sgd"],
        "data.augment.ops": [["noise"], ["mixup"]],
    }
    with pytest.raises(BadInput, match="KEY=V1,V2"):
        parse_vary(["model.dropout"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"variants": {"a": {}, "b": {"data.source": "wine"}}}, r"'b' differs from 'a' in data.source \('wine' vs"),
        ({"vary": {"data.cv": [0, 3]}}, "differs from .* in data.cv"),
        ({"variants": {"a": {}, "b": {"model.dropot": 0.3}}}, "Did you mean 'model.dropout'"),
        ({"variants": {"a": {}, "b": {}}, "seeds": 1}, "at least 2 distinct seeds"),
        ({"variants": {"a": {}, "b": {}}, "seeds": [4, 4]}, "at least 2 distinct seeds"),
        ({"vary": {"train.seed": [1, 2]}}, "sets the seed itself"),
        ({"variants": {"only": {}}}, "at least 2 variants"),
        ({"variants": {"a": {}, "b": {}}, "metric": "acuracy"}, "Did you mean 'accuracy'"),
        ({"variants": {"a": {}, "b": {}}, "vary": {"model.dropout": [0.1]}}, "either variants or vary"),
    ],
)
def test_bad_input_is_refused_before_any_training(tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(BadInput, match=message):
        compare(**{**IRIS, "out": tmp_path / "cmp", **kwargs})
    assert not (tmp_path / "cmp").exists()


# ---- end to end on iris ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def iris_cmp(tmp_path_factory: pytest.TempPathFactory) -> CompareResult:
    """A base and a 1-epoch change at 3 shared seeds, plus the base's first seed run again (determinism)."""
    out = tmp_path_factory.mktemp("cmp") / "out"
    return compare({"base": {}, "short": {"train.epochs": 1}}, seeds=3, out=out, **IRIS)


@pytest.fixture(scope="module")
def wine_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of two finished wine runs (seeds 0 and 1)."""
    folder = tmp_path_factory.mktemp("wine")
    for seed in (0, 1):
        fit(data="wine", epochs=1, seed=seed, out=folder / f"seed-{seed}", progress=False)
    return folder


def test_compare_json_follows_the_contract_and_the_run_directories(iris_cmp: CompareResult) -> None:
    out = iris_cmp.out
    assert out is not None
    doc = json.loads((out / "compare.json").read_text())
    assert (doc["metric"], doc["higher_is_better"], doc["seeds"], doc["folds"]) == ("accuracy", True, [0, 1, 2], 1)
    for name in ("base", "short"):
        variant = doc["variants"][name]
        runs = [json.loads((out / name / f"seed-{s}" / "metrics.json").read_text()) for s in range(3)]
        assert [r["seed"] for r in runs] == [0, 1, 2]
        assert variant["values"] == [r["val"]["accuracy"] for r in runs]
        assert variant["mean"] == pytest.approx(np.mean(variant["values"]))
        assert variant["std"] == pytest.approx(np.std(variant["values"], ddof=1))
        assert variant["test_mean"] == pytest.approx(np.mean([r["test"]["accuracy"] for r in runs]))
    [short] = doc["verdicts"]
    assert (short["a"], short["b"], short["n"]) == ("short", "base", 3)
    assert short["diff"] == pytest.approx(doc["variants"]["short"]["mean"] - doc["variants"]["base"]["mean"])
    assert short["verdict"] == "worse" and short["ci95"][1] < 0  # 1 epoch instead of 10 costs accuracy
    assert "compare" in (out / "report.html").read_text()  # the report's comparison section


def test_the_same_seed_run_twice_agrees_exactly(iris_cmp: CompareResult) -> None:
    """Paired design: the same seed means the same split and init, so a repeat gives the very same numbers."""
    out = iris_cmp.out
    assert out is not None
    first, again = (json.loads((out / "base" / d / "metrics.json").read_text()) for d in ("seed-0", "seed-0-repeat"))
    assert first["val"] == again["val"] and first["test"] == again["test"]
    check = iris_cmp.determinism
    assert check is not None and check.deterministic and check.diffs["accuracy"] == 0.0
    assert iris_cmp.values("base").std() > 0  # ...while different seeds do differ


def test_table_has_one_row_per_variant(iris_cmp: CompareResult) -> None:
    table = iris_cmp.table
    assert list(table.index) == ["base", "short"]
    assert list(table.columns) == ["mean", "std", "ci95_low", "ci95_high", "test", "seconds", "seeds"]
    assert (table["ci95_low"] <= table["mean"]).all() and (table["mean"] <= table["ci95_high"]).all()
    assert table.at["short", "mean"] < table.at["base", "mean"] and (table["seconds"] > 0).all()
    with pytest.raises(BadInput, match="Did you mean 'short'"):
        iris_cmp.verdict("shrt", "base")


def test_existing_run_directories_compare_like_the_original(iris_cmp: CompareResult, tmp_path: Path) -> None:
    out = iris_cmp.out
    assert out is not None
    again = compare([out / "short", out / "base"], out=tmp_path / "again", progress=False)
    assert again.variants == ["short", "base"] and again.seeds == [0, 1, 2]
    original, reread = iris_cmp.verdict("short", "base"), again.verdict("short", "base")
    assert (reread.diff, reread.ci95, reread.verdict) == (original.diff, original.ci95, original.verdict)
    [flipped] = again.verdicts  # every variant against the first one given: base - short
    assert (flipped.a, flipped.b, flipped.diff) == ("base", "short", -original.diff)
    assert again.determinism is not None and again.determinism.deterministic  # base/seed-0-repeat is read too


def test_run_directories_from_different_data_are_refused(
    iris_cmp: CompareResult, wine_runs: Path, tmp_path: Path
) -> None:
    out = iris_cmp.out
    assert out is not None
    with pytest.raises(BadInput, match=r"in data.source \('wine' vs 'iris'\)"):
        compare([out / "base", wine_runs], out=tmp_path / "x", progress=False)
    with pytest.raises(BadInput, match="at least 2 seeds shared"):  # one run each: a single seed
        compare([out / "base" / "seed-0", out / "short" / "seed-0"], out=tmp_path / "y", progress=False)
    with pytest.raises(BadInput, match="do not apply"):
        compare([out / "base", out / "short"], epochs=3, out=tmp_path / "z", progress=False)


def test_resume_reuses_finished_runs_and_refuses_another_recipe(iris_cmp: CompareResult, tmp_path: Path) -> None:
    assert iris_cmp.out is not None
    out = tmp_path / "cmp"
    shutil.copytree(iris_cmp.out, out)
    (out / "short" / "seed-2" / "metrics.json").unlink()  # as if interrupted before this run finished
    stamp = (out / "base" / "seed-0" / "metrics.json").stat().st_mtime_ns
    variants = {"base": {}, "short": {"train.epochs": 1}}
    with pytest.raises(BadInput, match="not empty"):
        compare(variants, seeds=3, out=out, **IRIS)
    again = compare(variants, seeds=3, out=out, resume=True, **IRIS)
    assert (out / "base" / "seed-0" / "metrics.json").stat().st_mtime_ns == stamp  # read back, not retrained
    assert np.array_equal(again.values("short"), iris_cmp.values("short"))  # the rerun seed gives the same number
    with pytest.raises(BadInput, match=r"train.epochs=1, but this comparison asks for 2"):
        compare({"base": {}, "short": {"train.epochs": 2}}, seeds=3, out=out, resume=True, **IRIS)


def test_cv_pairs_every_seed_and_fold(tmp_path: Path) -> None:
    res = compare(
        {"base": {}, "wide": {"model.width": 64}},
        cv=2,
        seeds=2,
        out=tmp_path / "cv",
        check_determinism=False,
        **{**IRIS, "epochs": 2},
    )
    doc = json.loads((tmp_path / "cv" / "compare.json").read_text())
    assert doc["folds"] == 2 and doc["units"] == [[0, 1], [0, 2], [1, 1], [1, 2]]
    run = json.loads((tmp_path / "cv" / "wide" / "seed-1" / "metrics.json").read_text())
    assert doc["variants"]["wide"]["values"][2:] == [f["val"]["accuracy"] for f in run["folds"]]
    assert res.values("base").shape == (2, 2) and res.verdicts[0].n == 2  # the seed is the independent unit


def test_a_nondeterministic_setup_is_reported_with_its_size(tmp_path: Path) -> None:
    def record(variant: str, seed: int, acc: float, loss: float) -> SeedRun:
        metrics = {"task": "classification", "seconds": 1.0, "seed": seed, "val": {"accuracy": acc, "loss": loss}}
        return SeedRun(variant, seed, tmp_path, metrics)

    records = [
        record("a", 0, 0.90, 0.30),
        record("a", 0, 0.88, 0.31),
        record("a", 1, 0.94, 0.2),
        record("b", 0, 0.91, 0.3),
        record("b", 1, 0.93, 0.2),
    ]
    res = CompareResult(records)
    check = res.determinism
    assert check is not None and not check.deterministic
    assert check.diffs["accuracy"] == pytest.approx(0.02) and check.diffs["loss"] == pytest.approx(0.01)
    text = check.describe("accuracy", 0.0283)
    assert "NONDETERMINISTIC" in text and "71% of the seed-to-seed std" in text
    assert res.values("a").ravel().tolist() == [0.90, 0.94]  # the first run of a seed counts, the repeat checks


def _seed_runs(task: str, val: dict[str, list[float]], path: Path) -> list[SeedRun]:
    """Variants a and b at seeds 0..n-1: val[metric] holds a's values, then b's."""
    n = len(next(iter(val.values()))) // 2
    return [
        SeedRun(v, seed, path, {"task": task, "seconds": 1.0, "val": {k: xs[i * n + seed] for k, xs in val.items()}})
        for i, v in enumerate("ab")
        for seed in range(n)
    ]


@pytest.mark.parametrize(
    ("task", "metric", "higher"),
    [("classification", "accuracy", True), ("regression", "rmse", False), ("reconstruction", "loss", False)],
)
def test_the_default_metric_is_the_registry_default_of_the_task(
    tmp_path: Path, task: str, metric: str, higher: bool
) -> None:
    val = {name: [0.5, 0.6, 0.7, 0.4, 0.55, 0.75] for name in ("loss", "accuracy", "rmse", "mae", "r2")}
    res = CompareResult(_seed_runs(task, val, tmp_path))
    assert (res.metric, res.higher_is_better) == (metric, higher)
    assert res.to_dict()["metric"] == metric  # reconstruction is judged by its loss, as tune judges it


def test_compare_json_holds_each_variant_s_interval_from_the_per_seed_values(tmp_path: Path) -> None:
    a, b = [0.90, 0.92, 0.91, 0.95], [0.86, 0.89, 0.85, 0.91]
    doc = CompareResult(_seed_runs("classification", {"accuracy": a + b, "loss": a + b}, tmp_path)).to_dict()
    expected = stats.t.interval(0.95, 3, loc=np.mean(a), scale=stats.sem(a))
    assert doc["variants"]["a"]["ci95"] == pytest.approx(expected)
    assert doc["variants"]["a"]["std"] == pytest.approx(np.std(a, ddof=1))


def test_an_unknown_metric_lists_the_registry_names(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"'metric' parameter of compare must be one of loss, accuracy, f1_macro, rmse"):
        compare({"a": {}, "b": {}}, metric="rsme", out=tmp_path / "cmp", **IRIS)
    assert not (tmp_path / "cmp").exists()


def test_a_diverging_variant_names_itself_and_its_seed(tmp_path: Path) -> None:
    with pytest.raises(TrainingDiverged, match=r"Variant 'huge' at seed 0"):
        compare(
            {"huge": {"train.lr": 1e12, "train.schedule": "constant"}, "ok": {}},
            seeds=2,
            out=tmp_path / "d",
            check_determinism=False,
            **{**IRIS, "epochs": 2},
        )


def test_ts_compare_stays_the_function_after_its_package_is_imported() -> None:
    import tunesmith as ts
    import tunesmith.comparison  # the import that would shadow a same-named module

    assert ts.compare is compare and ts.compare is compare


# ---- command line ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--vary", "data.source=iris,wine"], "differs from"),
        (["--vary", "model.dropout=0,0.5", "--set", "model.dropot=0.1"], "Did you mean 'model.dropout'"),
        (["--vary", "model.dropout=0,0.5", "--seeds", "1"], "at least 2 distinct seeds"),
    ],
)
def test_cli_bad_input_exits_2_with_one_paragraph(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["compare", "--data", "iris", "--out", str(tmp_path / "c"), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_cli_refuses_run_directories_from_different_data_with_exit_2(iris_cmp: CompareResult, wine_runs: Path) -> None:
    out = iris_cmp.out
    assert out is not None
    result = CliRunner().invoke(app, ["compare", str(out / "base"), str(wine_runs)])
    assert result.exit_code == 2 and "differs from" in result.output


@pytest.mark.slow
def test_cli_vary_in_two_worker_processes(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    done = run_cli(
        "compare",
        "--data",
        "iris",
        "--vary",
        "train.epochs=4,1",
        "--seeds",
        "2",
        "--workers",
        "2",
        "--out",
        str(out),
        "--quiet",
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads((out / "compare.json").read_text())
    assert list(doc["variants"]) == ["train.epochs=4", "train.epochs=1"] and doc["seeds"] == [0, 1]
    assert "train.epochs=1 vs train.epochs=4" in done.stdout and "deterministic: train.epochs=4" in done.stdout
    env = json.loads((out / "train.epochs=4" / "seed-0" / "env.json").read_text())
    assert env["torch_threads"] == 1  # each worker trains on one core


@pytest.mark.slow
def test_two_lanes_give_the_single_thread_results_in_job_order(tmp_path: Path) -> None:
    import torch

    threads = torch.get_num_threads()
    common = {**IRIS, "seeds": 3, "check_determinism": False, "overrides": {"train.threads": 1}}
    variants = {"base": {}, "wide": {"model.width": 64}}
    alone = compare(variants, out=tmp_path / "one", **common)
    lanes = compare(variants, out=tmp_path / "two", **{**common, "workers": 2})
    assert [(r.variant, r.seed) for r in lanes.records] == [(r.variant, r.seed) for r in alone.records]
    assert [r.metrics["val"] for r in lanes.records] == [r.metrics["val"] for r in alone.records]
    assert torch.get_num_threads() == threads  # the lane in this process gives its thread count back


@pytest.mark.slow
def test_a_failed_run_in_a_worker_stops_the_run_in_this_process(tmp_path: Path) -> None:
    # Job 0 ("huge", diverges) goes to the spawned worker; job 1 ("long") trains in this process meanwhile.
    long = {"train.epochs": 5000, "train.early_stopping.patience": None}
    with pytest.raises(TrainingDiverged, match=r"Variant 'huge' at seed 0"):
        compare(
            {"huge": {"train.lr": 1e12, "train.schedule": "constant"}, "long": long},
            seeds=2,
            out=tmp_path / "d",
            check_determinism=False,
            **{**IRIS, "workers": 2},
        )
    epochs = len((tmp_path / "d" / "long" / "seed-0" / "history.csv").read_text().splitlines()) - 1
    assert 0 < epochs < 5000  # stopped at its next batch, not trained to the end
    assert not (tmp_path / "d" / "long" / "seed-1").exists()  # and nothing new was started


@pytest.mark.slow
def test_a_failed_run_in_this_process_stops_the_worker_before_its_queued_run(tmp_path: Path) -> None:
    # Job 0 ("long") is queued for the worker while it starts; job 1 diverges here first.
    with pytest.raises(TrainingDiverged, match=r"Variant 'huge' at seed 0"):
        compare(
            {"long": {"train.epochs": 5000}, "huge": {"train.lr": 1e12, "train.schedule": "constant"}},
            seeds=2,
            out=tmp_path / "d",
            check_determinism=False,
            **{**IRIS, "workers": 2},
        )
    assert not (tmp_path / "d" / "long").exists()
