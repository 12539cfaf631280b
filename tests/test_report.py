"""report.html: sections appear exactly when their data exist, show the run's numbers, and stay self-contained."""

from __future__ import annotations

import ast
import base64
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from markupsafe import Markup
from scipy import stats

from tests.conftest import run_cli
from tests.report_fixtures import FINDINGS, write_all, write_compare, write_findings, write_lr_find, write_tuning
from tunesmith.errors import BadInput
from tunesmith.recipe import Recipe, flatten
from tunesmith.report import SECTIONS, Section, plots, register_section, render_report, search_plots, write_report
from tunesmith.report.diagnosis import against_threshold
from tunesmith.report.files import RunFiles
from tunesmith.report.search import Tuning, importances
from tunesmith.report.tricks import trick_for

NETWORK = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)


def section_ids(html: str) -> list[str]:
    return re.findall(r'<section id="([^"]+)">', html)


def svg_images(html: str) -> list[bytes]:
    return [base64.b64decode(b) for b in re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', html)]


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tunesmith.fitting import fit

    return fit(data="iris", epochs=2, out=tmp_path_factory.mktemp("iris") / "run", progress=False).run_dir


def test_fit_writes_a_report_with_every_fit_section_and_nothing_else(iris_run: Path) -> None:
    html = (iris_run / "report.html").read_text()
    assert section_ids(html) == ["summary", "baselines", "recipe", "curves", "lr-schedule", "classification", "layers"]
    # curves: loss, accuracy, f1_macro; schedule; confusion matrix; layers: grad norm, activation std, dead units
    images = svg_images(html)
    assert len(images) == 8
    assert all(img.startswith(b"<?xml") and b"<svg" in img for img in images)
    metrics = json.loads((iris_run / "metrics.json").read_text())
    assert f'<td class="num">{metrics["test"]["accuracy"]:.4g}</td>' in html


def test_the_report_is_self_contained_and_printable(iris_run: Path) -> None:
    html = (iris_run / "report.html").read_text()
    assert not NETWORK.search(html)
    assert "<script" not in html and "<link" not in html and "@import" not in html
    assert "@media print" in html


def test_recipe_section_lists_non_default_fields_with_their_trick(iris_run: Path) -> None:
    html = (iris_run / "report.html").read_text()
    assert "<tr><td>model.family</td><td>mlp</td><td>auto</td><td>T10 family chosen by data</td></tr>" in html
    assert "<tr><td>train.epochs</td><td>2</td><td>none</td><td>—</td></tr>" in html
    assert "<td>train.momentum</td>" not in html  # left at its default


# Recipe fields that choose no catalog trick; a new field must be mapped in report/tricks.py or listed here.
NO_TRICK = {
    "name",
    "data.source",
    "data.target",
    "data.text",
    "data.time_as_feature",
    "data.group_as_feature",
    "data.val_size",
    "data.test_size",
    "model.custom",
    "train.epochs",
    "train.checkpoint",
}


def test_every_recipe_field_maps_to_a_catalog_trick_or_is_known_not_to() -> None:
    fields = flatten(Recipe().model_dump(mode="json"))
    unmapped = sorted(k for k in fields if trick_for(k) is None and k not in NO_TRICK)
    assert unmapped == [], f"map these recipe fields to catalog ids in tunesmith/report/tricks.py: {unmapped}"


def test_regression_report_shows_residuals_of_the_test_predictions(tmp_path: Path) -> None:
    from tunesmith.fitting import fit

    run = fit(data="diabetes", epochs=2, out=tmp_path / "run", progress=False).run_dir
    table = pd.read_csv(run / "test_predictions.csv")
    metrics = json.loads((run / "metrics.json").read_text())
    assert list(table.columns) == ["y_true", "y_pred"] and len(table) == metrics["data"]["test_rows"]
    rmse = float(np.sqrt(((table["y_pred"] - table["y_true"]) ** 2).mean()))
    assert rmse == pytest.approx(metrics["test"]["rmse"], rel=1e-4)  # predictions are in target units
    html = (run / "report.html").read_text()
    assert "regression" in section_ids(html) and "classification" not in section_ids(html)
    residuals = html.split('<section id="regression">')[1].split("</section>")[0]
    assert f'<td class="num">{rmse:.4g}</td>' in residuals
    for name in ("mae", "r2"):  # the fit's own numbers (train/metrics.py), not recomputed from the predictions
        assert f'<td class="num">{metrics["test"][name]:.4g}</td>' in residuals


def test_residuals_show_metrics_json_numbers_of_the_fold_whose_predictions_are_drawn(tmp_path: Path) -> None:
    for k in (1, 2):
        (tmp_path / f"fold-{k}").mkdir()
        pd.DataFrame({"y_true": [1.0, 2.0, 3.0], "y_pred": [1.5, 2.0, 2.5]}).to_csv(
            tmp_path / f"fold-{k}" / "test_predictions.csv", index=False
        )
    folds = [
        {"fold": 1, "val": {"loss": 0.9}, "test": {"loss": 0.8, "rmse": 1.111, "mae": 2.222, "r2": 0.3333}},
        {"fold": 2, "val": {"loss": 0.4}, "test": {"loss": 0.7, "rmse": 4.444, "mae": 5.555, "r2": 0.6666}},
    ]
    doc = {"task": "regression", "val": {"loss": 0.65}, "test": {"loss": 0.75, "rmse": 9.0}, "folds": folds}
    (tmp_path / "metrics.json").write_text(json.dumps(doc))
    residuals = render_report(tmp_path, sections=["regression"])
    assert "<th>rmse</th><th>mae</th><th>r2</th><th>rows</th>" in residuals
    assert '<td class="num">4.444</td><td class="num">5.555</td><td class="num">0.6666</td>' in residuals  # fold 2


def test_cv_curves_draw_every_fold_and_layers_come_from_the_best_fold(tmp_path: Path) -> None:
    for k, (val_loss, dead) in enumerate([(0.9, 0.5), (0.4, 0.25)], start=1):
        fold = tmp_path / f"fold-{k}"
        fold.mkdir()
        pd.DataFrame(
            {"epoch": [1, 2], "lr": [1e-3, 1e-3], "train_loss": [1.0, 0.8], "val_loss": [1.1, val_loss]}
        ).to_csv(fold / "history.csv", index=False)
        pd.DataFrame({"epoch": [1], "layer": ["0"], "type": ["ReLU"], "dead_frac": [dead]}).to_csv(
            fold / "layers.csv", index=False
        )
    folds = [{"fold": 1, "val": {"loss": 0.9}}, {"fold": 2, "val": {"loss": 0.4}}]
    (tmp_path / "metrics.json").write_text(
        json.dumps({"task": "classification", "val": {"loss": 0.65}, "folds": folds})
    )
    run = RunFiles(tmp_path)
    fig = plots.curves(run.histories, column="loss")
    assert sorted(line.get_label() for line in fig.axes[0].lines) == [
        "fold 1 train",
        "fold 1 val",
        "fold 2 train",
        "fold 2 val",
    ]
    assert run.layers is not None and run.layers["dead_frac"].tolist() == [0.25]  # fold 2 has the best val loss


def test_lr_range_test_marks_every_rule_and_the_suggestion(tmp_path: Path) -> None:
    found = write_lr_find(tmp_path)
    fig = plots.lr_range(found)
    marks = {line.get_label(): line.get_xdata()[0] for line in fig.axes[0].lines if ":" in line.get_label()}
    expected = {f"{rule}: {lr:.2g}": lr for rule, lr in found["suggestions"].items()}
    assert marks == {**expected, "suggestion: 0.003": 3e-3}
    html = render_report(tmp_path)
    assert section_ids(html) == ["lr-find"]
    assert '<td>valley</td><td class="num">0.003</td><td>← suggested</td>' in html
    assert "The rules disagree" in html


def test_tuning_sections_show_the_study(tmp_path: Path) -> None:
    write_tuning(tmp_path, n_trials=24)
    html = render_report(tmp_path)
    assert section_ids(html) == [
        "tuning",
        "tuning-stages",
        "tuning-axes",
        "tuning-curves",
        "tuning-importance",
        "tuning-parallel",
    ]
    assert 'class="error"' not in html
    assert "<td>refit</td>" in html and "<td>train.epochs=40</td><td>the winner was still improving" in html
    tuning = Tuning.of(RunFiles(tmp_path))
    assert [p.name for p in tuning.varied()] == ["width", "depth", "lr", "batch_size", "dropout", "weight_decay"]
    assert len(tuning.groups(min_trials=4)) == 3  # importances and parallel coordinates per stage


def test_axis_plot_draws_the_space_bounds_and_stars_the_best_trial(tmp_path: Path) -> None:
    write_tuning(tmp_path, n_trials=24)
    tuning = Tuning.of(RunFiles(tmp_path))
    lr = next(p for p in tuning.varied() if p.name == "lr")
    fig = search_plots.axis(lr, tuning.complete, metric="accuracy", maximize=True)
    ax = fig.axes[0]
    assert sorted(line.get_xdata()[0] for line in ax.lines) == [1e-4, 0.1]  # the space's bounds
    stage = tuning.complete[tuning.complete["params_lr"].notna()]
    best = stage.loc[stage["value"].idxmax()]
    star = ax.collections[-1].get_offsets()[0]
    assert star.tolist() == pytest.approx([best["params_lr"], best["value"]])
    assert ax.get_xscale() == "log"


def test_importances_rank_the_hyperparameter_that_drives_the_score_first(tmp_path: Path) -> None:
    write_tuning(tmp_path, n_trials=60)
    tuning = Tuning.of(RunFiles(tmp_path))
    _, part, params = next(g for g in tuning.groups(min_trials=4) if g[0] == "stage lr_batch")
    found = importances(tuning, part, params)
    assert set(found) == {"lr", "batch_size"}
    assert found["lr"] > 0.8 > found["batch_size"]  # the fixture's score depends on lr, barely on batch size


def test_doctor_section_orders_findings_by_severity_and_draws_value_against_threshold(tmp_path: Path) -> None:
    write_findings(tmp_path)
    html = render_report(tmp_path)
    order = [m for m in re.findall(r'badge-([a-z-]+)"', html)]
    assert order == ["fail", "warn", "info", "ok", "skipped"]
    assert "0.62 vs 0.4" in html and "4 values, plotted below" in html
    measured = [f for f in FINDINGS if "threshold" in f["evidence"]]
    fig = against_threshold(measured)
    ratios = fig.axes[0].collections[-1].get_offsets()[:, 0]
    assert ratios.tolist() == pytest.approx([3.0, 1.55, 0.25])
    assert len(svg_images(html)) == 2  # value vs threshold, and the per-layer series


def test_compare_section_shows_t_intervals_and_verdicts(tmp_path: Path) -> None:
    doc = write_compare(tmp_path)
    values = doc["variants"]["baseline"]["values"]
    low, high = doc["variants"]["baseline"]["ci95"]
    expected = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert (low, high) == pytest.approx(expected)
    html = render_report(tmp_path)
    assert section_ids(html) == ["compare"]
    assert "badge-better" in html and "badge-no-detectable-difference" in html
    assert f'<td class="num">{low:.4g}</td><td class="num">{high:.4g}</td>' in html


def test_compare_section_reads_the_intervals_compare_wrote(tmp_path: Path) -> None:
    doc = write_compare(tmp_path)
    doc["variants"]["baseline"].update(mean=0.5, std=0.25, ci95=[0.125, 0.875])  # not what the values give
    del doc["variants"]["leaky_relu"]["ci95"]  # the minimal shared contract: values, mean, std
    (tmp_path / "compare.json").write_text(json.dumps(doc))
    html = render_report(tmp_path)
    cells = '<td class="num">0.5</td><td class="num">0.25</td><td class="num">0.125</td><td class="num">0.875</td>'
    assert cells in html and 'class="error"' not in html
    assert '<td>leaky_relu</td><td class="num">5</td>' in html and "<td>—</td><td>—</td></tr>" in html


def test_a_broken_file_costs_only_its_own_section(tmp_path: Path) -> None:
    write_compare(tmp_path)
    (tmp_path / "findings.json").write_text("{not json")
    html = render_report(tmp_path)
    doctor = html.split('<section id="doctor">')[1].split("</section>")[0]
    assert 'class="error"' in doctor and "findings.json is not valid JSON" in doctor
    compare = html.split('<section id="compare">')[1].split("</section>")[0]
    assert 'class="error"' not in compare and len(svg_images(compare)) == 2


def test_text_from_the_run_directory_is_escaped(tmp_path: Path) -> None:
    evil = [{**FINDINGS[0], "summary": "<script>alert(1)</script>", "check": "<b>x</b>"}]
    (tmp_path / "findings.json").write_text(json.dumps(evil))
    html = render_report(tmp_path)
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_unknown_section_names_get_a_did_you_mean(tmp_path: Path) -> None:
    write_all(tmp_path)
    with pytest.raises(BadInput, match="Did you mean 'summary'"):
        write_report(tmp_path, sections=["sumary"])
    assert section_ids(render_report(tmp_path, sections=["compare", "doctor"])) == ["compare", "doctor"]


def test_cli_report_rewrites_the_page_and_refuses_what_is_not_a_run(tmp_path: Path) -> None:
    write_findings(tmp_path)
    done = run_cli("report", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(tmp_path / "report.html")
    assert section_ids((tmp_path / "report.html").read_text()) == ["doctor"]
    missing = run_cli("report", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "is not a directory" in missing.stderr and "Traceback" not in missing.stderr
    (tmp_path / "empty").mkdir()
    empty = run_cli("report", str(tmp_path / "empty"))
    assert empty.returncode == 2 and "holds none of the files a report shows" in empty.stderr


def test_sections_are_listed_in_page_order_and_users_append_after_them(tmp_path: Path) -> None:
    fit = [
        "summary",
        "baselines",
        "recipe",
        "text",
        "neck",
        "curves",
        "lr-schedule",
        "lr-find",
        "classification",
        "regression",
        "layers",
    ]
    tune = ["tuning-stages", "tuning-axes", "tuning-curves", "tuning-importance", "tuning-parallel"]
    assert list(SECTIONS) == ["failure", *fit, "compare", "doctor", "tuning", *tune]

    @register_section
    class Extra:
        name, title = "extra", "A user's section"

        def applies(self, run: RunFiles) -> bool:
            return True

        def render(self, run: RunFiles) -> Markup:
            return Markup("<p>extra</p>")

    try:
        write_findings(tmp_path)
        assert section_ids(render_report(tmp_path)) == ["doctor", "extra"]
        with pytest.raises(ValueError, match="'extra' is already registered"):
            register_section(Extra)
        section: Section = SECTIONS["extra"]
        assert section.title == "A user's section"
    finally:
        del SECTIONS["extra"]


def test_report_modules_never_import_the_report_package_back() -> None:
    """The page lists its sections explicitly: no module of the package imports `tunesmith.report` itself."""
    folder = Path(__file__).parents[1] / "src" / "tunesmith" / "report"
    back = []
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):  # `from . import x` is the package too
                names = ["tunesmith.report" if node.level == 1 and not node.module else node.module or ""]
            back += [f"{path.name}: {n}" for n in names if n == "tunesmith.report"]
    assert back == []
