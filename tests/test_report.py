"""``robench3d report``: figures, markdown and HTML from a synthetic results folder and from leaderboard files.

The results folder is written through :class:`ResultsStore` (rows in the schema, per-sample outcomes), so the
tests need no model and run in about a second each.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from robench3d.cli import main
from robench3d.evaluation.results import ResultsStore, aggregate
from robench3d.leaderboard import board, outcomes
from robench3d.report import draw, from_leaderboard, from_results
from robench3d.report.tables import wilson
from robench3d.schema import read_table, write_table

N = 8
IDS = [f"test/cloud_{i:02d}" for i in range(N)]
#: (defense, attack, setting) -> per-example robust flags; clean-correct clouds are 0..6 for every defense.
CELLS = {
    ("none", "fgsm", "oblivious"): "10100110", ("none", "pgd_linf", "oblivious"): "10000110",
    ("none", "fgsm", "adaptive"): "10100110", ("none", "pgd_linf", "adaptive"): "00000010",
    ("srs", "fgsm", "oblivious"): "11101110", ("srs", "pgd_linf", "oblivious"): "11001110",
    ("srs", "fgsm", "adaptive"): "10101110", ("srs", "pgd_linf", "adaptive"): "10001010",
    ("none", "noise", "oblivious"): "11111110", ("srs", "noise", "oblivious"): "11111110",
}


def _row(defense: str, attack: str, setting: str, bits: str, **extra: Any) -> dict[str, Any]:
    hits = bits.count("1")
    lo, hi = wilson(hits, N)
    return {"schema_version": 2, "source": "measured", "status": "ok", "dataset": "shapes",
            "dataset_version": "shapes-2/tiny", "backbone": "pointnet:test", "defense": defense, "attack": attack,
            "preset": "quick", "setting": setting, "surrogate": "", "targeted": False, "seed": 0, "n_examples": N,
            "eot_samples": 1, "test_subset": "first", "overrides": "", "sweep": "", "norm": "linf", "eps": 0.05,
            "metric_convention": "robustbench", "clean_acc": 7 / 8, "robust_acc": hits / N, "robust_acc_ci_low": lo,
            "robust_acc_ci_high": hi, "is_control": attack == "noise", "unreliable": False,
            "config_hash": f"{defense}-{attack}-{setting}", **extra}


def _samples(bits: str) -> pd.DataFrame:
    return pd.DataFrame({"example_id": IDS, "correct": [b == "1" for b in bits]})


def make_results(root: Path, *, sweep: bool = False) -> Path:
    store = ResultsStore(root)
    for (defense, attack, setting), bits in CELLS.items():
        store.put(_row(defense, attack, setting, bits), _samples(bits))
    store.put(_row("none", "simba", "oblivious", "", status="skipped", reason="query only", clean_acc=None,
                   robust_acc=None, robust_acc_ci_low=None, robust_acc_ci_high=None))
    if sweep:
        for eps, bits in ((0.01, "11100110"), (0.02, "10100110"), (0.05, "10000010")):
            store.put(_row("none", "pgd_linf", "adaptive", bits, sweep=json.dumps({"attack.pgd_linf.eps": eps})),
                      _samples(bits))
    return root


@pytest.fixture
def results(tmp_path: Path) -> Path:
    return make_results(tmp_path / "run")


def test_report_writes_pngs_markdown_and_html(results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--results", str(results), "--format", "all", "-q"]) == 0
    out = results / "report"
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["shapes-quick-clean_vs_robust.png", "shapes-quick-robust_per_attack.png",
                    "shapes-quick-worst_case.png"]
    assert all((out / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    md = (out / "report.md").read_text()
    for p in pngs:
        assert f"]({p})" in md
    assert "### Summary per defense and setting" in md and "No swept rows" in md  # no sweep: a line, no plot
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and "<script>" in page and 'class="sortable"' in page
    assert "src=\"http" not in page and "href=\"http" not in page  # self-contained
    assert str(out / "report.md") in capsys.readouterr().out


def test_figures_carry_titles_labels_and_no_overlapping_ticks(results: Path) -> None:
    (rep,) = draw(from_results(results))
    names = [p.name for p in rep.plots]
    assert names == ["robust_per_attack", "clean_vs_robust", "worst_case"]
    for plot in rep.plots:
        title = plot.figure._suptitle.get_text()
        for part in ("dataset shapes", "preset quick", "n = 8", "pointnet:test", "seed 0"):
            assert part in title, (plot.name, title)
        assert plot.figure.legends, plot.name
        for ax in plot.figure.axes:
            assert "(%)" in ax.get_ylabel()
    bars = rep.plots[0].figure
    assert [ax.get_title(loc="left").split(":")[0] for ax in bars.axes] == ["oblivious", "adaptive"]
    renderer = bars.canvas.get_renderer()
    ticks = [t.get_window_extent(renderer) for t in bars.axes[-1].get_xticklabels() if t.get_text()]
    assert [t.get_text() for t in bars.axes[-1].get_xticklabels()] == ["fgsm", "pgd_linf", "simba",
                                                                        "noise (control)"]
    assert not any(a.overlaps(b) for i, a in enumerate(ticks) for b in ticks[i + 1:])
    legend = [t.get_text() for t in bars.legends[0].get_texts()]
    assert {"none", "srs", "95% Wilson interval", "skipped (setting not supported)"} <= set(legend)
    scatter = rep.plots[1].figure.axes[0]
    assert scatter.get_xlabel() == "clean accuracy (%)"
    labels = [t for t in scatter.texts]
    boxes = [t.get_window_extent(rep.plots[1].figure.canvas.get_renderer()) for t in labels]
    assert len(labels) == 4 and not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_worst_case_is_the_per_example_and_over_attacks(results: Path) -> None:
    (rep,) = draw(from_results(results))
    got = rep.summary.set_index(["model", "setting"])["worst"]
    for (defense, setting), value in got.items():
        flags = [np.array([b == "1" for b in bits]) for (d, a, s), bits in CELLS.items()
                 if d == defense and s == setting and a != "noise"]
        assert value == pytest.approx(np.logical_and.reduce(flags).mean())
    store = ResultsStore(results)
    expected = aggregate(store, store.load().to_dict("records")).set_index(["defense", "setting"])["worst_case_acc"]
    for key, value in expected.items():
        assert got[key] == pytest.approx(value)


def test_leaderboard_companion_keeps_the_worst_case_and_leaves_rows_alone(results: Path, tmp_path: Path) -> None:
    boards = tmp_path / "boards"
    board.update(results, boards)
    csv = boards / "shapes" / "quick" / "oblivious.csv"
    before = csv.read_text()
    companion = outcomes.companion_path(csv)
    assert companion == boards / "shapes" / "quick" / "samples" / "oblivious.csv" and companion.exists()
    text = companion.read_text()
    board.update(results, boards)  # idempotent, rows untouched, companions not taken for boards
    assert csv.read_text() == before and companion.read_text() == text
    assert all("samples" not in str(p) for p in board.validate_all(boards))
    from_board = draw(from_leaderboard(boards / "shapes" / "quick"))[0].summary
    from_run = draw(from_results(results))[0].summary
    pd.testing.assert_frame_equal(from_board, from_run)


def test_stale_or_missing_outcomes_leave_the_worst_case_out(results: Path, tmp_path: Path) -> None:
    boards = tmp_path / "boards"
    board.update(results, boards)
    csv = boards / "shapes" / "quick" / "adaptive.csv"
    frame = read_table(csv)
    frame.loc[frame["defense"] == "srs", "config_hash"] = "changed"
    write_table(frame, csv)
    outcomes.companion_path(boards / "shapes" / "quick" / "oblivious.csv").unlink()
    data = from_leaderboard(boards / "shapes" / "quick")
    assert any("config_hash differs" in n for n in data.notes) and any("no per-example" in n for n in data.notes)
    (rep,) = draw(data)
    assert rep.summary["worst"].notna().tolist() == [True, False, False, False]  # none/adaptive only
    assert any("Worst case not shown" in n for n in rep.notes)


def test_reported_rows_never_enter_measured_plots(results: Path, tmp_path: Path) -> None:
    boards = tmp_path / "boards"
    board.update(results, boards)
    csv = boards / "shapes" / "quick" / "oblivious.csv"
    paper = {"schema_version": 2, "source": "reported: Someone 2024 (arXiv:2401.00001), Table 1", "status": "ok",
             "dataset": "shapes", "dataset_version": "shapes (as published)", "backbone": "pointnet (paper)",
             "defense": "paperdefense", "attack": "fgsm", "preset": "quick", "setting": "oblivious",
             "targeted": False, "metric_convention": "all-samples", "reported_clean_acc": 0.99,
             "reported_robust_acc": 0.97}
    write_table(pd.concat([read_table(csv), pd.DataFrame([paper])], ignore_index=True), csv)
    board.validate_all(boards)
    out = tmp_path / "rep"
    assert main(["report", "--leaderboard", str(csv), "--out", str(out), "--format", "all", "-q"]) == 0
    (rep,) = draw(from_leaderboard(csv))
    assert "paperdefense" not in set(rep.per_attack["model"]) | set(rep.summary["model"])
    for plot in rep.plots:
        texts = [t.get_text() for leg in plot.figure.legends for t in leg.get_texts()]
        texts += [t.get_text() for ax in plot.figure.axes for t in ax.texts]
        assert not any("paperdefense" in t or "pointnet (paper)" in t for t in texts), plot.name
    page = (out / "report.html").read_text()
    measured, reported = page.split('class="block reported"')
    assert "paperdefense" not in measured and "paperdefense" in reported and "reported, as published" in reported
    assert "### Reported rows (as published" in (out / "report.md").read_text()


def test_swept_rows_give_the_eps_plot(tmp_path: Path) -> None:
    (rep,) = draw(from_results(make_results(tmp_path / "run", sweep=True)))
    plot = next(p for p in rep.plots if p.name == "robust_vs_eps")
    ax = plot.figure.axes[0]
    assert ax.get_xlabel().startswith("ε") and ax.get_ylabel() == "robust accuracy (%)"
    assert ax.get_title(loc="left").startswith("adaptive")
    (bars,) = ax.containers  # one errorbar line: none / pgd_linf
    line = bars.lines[0]
    assert list(line.get_xdata()) == [0.01, 0.02, 0.05] and list(line.get_ydata()) == [62.5, 50.0, 25.0]
    assert not any("No swept rows" in n for n in rep.notes)
    # the swept cells stay out of the per-attack bars and the aggregates
    assert rep.summary.set_index(["model", "setting"]).loc[("none", "adaptive"), "attacks"] == 2


@pytest.mark.parametrize("case", ["missing", "empty", "corrupt", "schema", "no_rows", "leaderboard"])
def test_bad_input_exits_2_without_traceback(case: str, tmp_path: Path, results: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "bad"
    target.mkdir()
    if case == "missing":
        target = tmp_path / "nowhere"
    elif case == "empty":
        (target / "results.csv").write_text("")
    elif case == "corrupt":
        (target / "results.csv").write_bytes(b'a,b\n"1,2\n\xff\xfe\x00')
    elif case == "schema":
        (target / "results.csv").write_text((results / "results.csv").read_text().replace(",ok,", ",okay,", 1))
    elif case == "no_rows":
        (target / "results.csv").write_text((results / "results.csv").read_text().splitlines()[0] + "\n")
    flag = "--leaderboard" if case == "leaderboard" else "--results"
    assert main(["report", flag, str(target), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("robench3d report: error:") and "Traceback" not in err
    assert not (target / "report").exists()


def test_several_defenses_on_several_backbones_get_one_section_per_backbone() -> None:
    import pandas as pd

    from robench3d.report.tables import sections

    def rows(pairs: list[tuple[str, str]]) -> pd.DataFrame:
        return pd.DataFrame([{"dataset": "shapes", "preset": "quick", "backbone": b, "defense": d} for b, d in pairs])

    empty = pd.DataFrame(columns=["dataset", "preset"])
    split = sections(rows([("a:cpu", "none"), ("a:cpu", "sor"), ("b:cpu", "none"), ("b:cpu", "sor")]), empty)
    assert [s.backbone for s in split] == ["a:cpu", "b:cpu"] and split[0].title == "shapes / quick / a:cpu"
    assert len({s.slug for s in split}) == 2
    (one,) = sections(rows([("a:cpu", "none"), ("b:cpu", "none")]), empty)  # the backbones board stays whole
    assert one.backbone == "" and one.title == "shapes / quick"
