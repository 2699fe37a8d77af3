"""The four figures of a report section, drawn from measured rows only (:mod:`.tables`).

Every figure names the dataset, preset, n, backbone(s) and seed(s) in its subtitle, the setting in its panel titles
or legend, and its axes in percent; legends say what bars, whiskers and markers are. A figure with nothing to show
is None (the summary says why).
"""

from __future__ import annotations

import math

import pandas as pd

from robench3d.report import style
from robench3d.report.tables import Section, model_order

__all__ = ["clean_vs_robust", "eps_curves", "robust_bars", "worst_case_bars"]

_MARKERS = {"oblivious": "o", "adaptive": "s", "transfer": "^", "query": "D"}


def _err(frame: pd.DataFrame) -> list[list[float]]:
    robust, lo, hi = (frame[c].astype(float) * 100 for c in ("robust", "lo", "hi"))
    return [(robust - lo).clip(lower=0).fillna(0).tolist(), (hi - robust).clip(lower=0).fillna(0).tolist()]


def _zero_marks(ax: object, xs: list[float], values: pd.Series, color: object, width: float) -> None:
    """A flat dash where a bar is exactly 0 (a zero-height bar is invisible otherwise)."""
    zero = [x for x, v in zip(xs, values.astype(float), strict=True) if v == 0]
    if zero:
        ax.bar(zero, [0.9] * len(zero), width * 0.92, color=color)  # type: ignore[attr-defined]


def _span(values: pd.Series) -> tuple[float, float]:
    """Axis limits (%) around ``values`` (%): rounded out to 5, padded, at least 20 points wide, within [0, 105]."""
    lo, hi = math.floor(values.min() / 5) * 5 - 5, math.ceil(values.max() / 5) * 5 + 5
    if hi - lo < 20:
        mid = (hi + lo) / 2
        lo, hi = mid - 10, mid + 10
    return max(0.0, lo), min(105.0, hi)


def _dashes(ax: object, xs: list[float], values: pd.Series, width: float) -> None:
    """Black dashes as wide as the bars at ``values`` (fractions): the clean accuracy of each bar's model."""
    ys = values.astype(float) * 100
    ax.hlines(ys, [x - width / 2 for x in xs], [x + width / 2 for x in xs], color="black",  # type: ignore[attr-defined]
              linewidth=1.8)


def _suptitle(fig: object, title: str, section: Section, frame: pd.DataFrame | None = None) -> None:
    width = fig.get_figwidth()  # type: ignore[attr-defined]
    fig.suptitle(f"{title}\n{style.wrap(section.subtitle(frame), width)}")  # type: ignore[attr-defined]


def robust_bars(section: Section, pa: pd.DataFrame) -> style.Plot | None:
    """Grouped bars of robust accuracy per attack, one colour per model, one panel per setting, Wilson whiskers."""
    if pa.empty:
        return None
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    settings = section.settings(pa)
    skipped = section.labelled("skipped")
    skipped = skipped[skipped["setting"].isin(settings) & skipped["model"].isin(set(pa["model"]))]
    attacks = sorted({*pa["attack"], *skipped["attack_label"]}, key=lambda a: ("(control)" in a, a))
    models = model_order(pa["model"])
    color = style.colors(models)
    width = 0.8 / len(models)
    clean = len(attacks) <= 4  # few groups: mark each bar's clean accuracy too
    with style.rc():
        fig, axes = style.new_figure(min(28.0, max(7.5, 1.6 + len(attacks) * max(0.55, 0.17 * len(models)))),
                                     1.7 + 2.7 * len(settings), nrows=len(settings), sharex=True, squeeze=False)
        for ax, setting in zip(axes[:, 0], settings, strict=True):
            cells = pa[pa["setting"] == setting]
            for i, model in enumerate(models):
                m = cells[cells["model"] == model].set_index("attack").reindex(attacks).dropna(subset=["robust"])
                xs = [attacks.index(a) - 0.4 + (i + 0.5) * width for a in m.index]
                bars = ax.bar(xs, m["robust"].astype(float) * 100, width * 0.92, color=color[model],
                              yerr=_err(m.reset_index()), capsize=min(3.0, 14 * width), ecolor="0.2",
                              error_kw={"elinewidth": 0.8})
                for bar, flag in zip(bars, m["unreliable"], strict=True):
                    if flag:
                        bar.set_hatch("///")
                _zero_marks(ax, xs, m["robust"], color[model], width)
                if clean:
                    _dashes(ax, xs, m["clean"], width * 0.8)
                gone = skipped[(skipped["setting"] == setting) & (skipped["model"] == model)]
                gx = [attacks.index(a) - 0.4 + (i + 0.5) * width for a in gone["attack_label"] if a in attacks]
                ax.plot(gx, [2.0] * len(gx), "x", color="0.45", markersize=4)
            ax.set_title(style.SETTING_TEXT.get(setting, setting), loc="left")
            ax.set_ylabel("robust accuracy (%)")
            ax.set_ylim(0, 105)
            ax.set_xlim(-0.6, len(attacks) - 0.4)
            ax.grid(axis="y", alpha=0.3)
            ax.set_axisbelow(True)
        bottom = axes[-1, 0]
        bottom.set_xticks(range(len(attacks)), attacks, rotation=35, ha="right", rotation_mode="anchor")
        bottom.set_xlabel("attack")
        handles = [Patch(color=color[m], label=m) for m in models]
        handles.append(Line2D([], [], color="0.2", marker="|", markersize=10, linestyle="none",
                              label="95% Wilson interval"))
        if not skipped.empty:
            handles.append(Line2D([], [], color="0.45", marker="x", linestyle="none",
                                  label="skipped (setting not supported)"))
        if pa["unreliable"].any():
            handles.append(Patch(facecolor="white", edgecolor="0.3", hatch="///", label="flagged unreliable"))
        if clean:
            handles.append(Line2D([], [], marker="_", color="black", linestyle="none", markersize=12,
                                  markeredgewidth=1.6, label="clean accuracy"))
        fig.legend(handles=handles, loc="outside lower center",
                   ncol=style.legend_columns([str(h.get_label()) for h in handles], fig.get_figwidth()),
                   title=f"bars: robust accuracy of each {section.model_kind} (a flat dash: 0%)")
        _suptitle(fig, "Robust accuracy per attack and defense", section)
    return style.Plot("robust_per_attack", "Robust accuracy per attack and defense", fig,
                      "Robust accuracy (correct on the clean cloud and after the attack, %) per attack; one panel "
                      "per threat setting, whiskers are 95% Wilson intervals over the n test clouds.")


def eps_curves(section: Section, sp: pd.DataFrame) -> style.Plot | None:
    """Robust accuracy against the swept eps, one line per (model, attack), one panel per setting."""
    if sp.empty:
        return None
    settings = section.settings(sp)
    lines = sorted(set(zip(sp["model"], sp["attack"], sp["rest"], strict=True)))
    if len(lines) == sp["model"].nunique():  # one line per model: the colours of the other figures
        by_model = style.colors(model_order(section.ok()["model"]))
        color = {" ".join(x): by_model[x[0]] for x in lines}
    else:
        color = style.colors([" ".join(x) for x in lines])
    norms = ", ".join(sorted(set(sp["norm"]) - {""})) or "the attack's norm"
    with style.rc():
        fig, axes = style.new_figure(min(20.0, 1.5 + 4.6 * len(settings)), 4.6, ncols=len(settings),
                                     squeeze=False, sharey=True)
        for ax, setting in zip(axes[0], settings, strict=True):
            cells = sp[sp["setting"] == setting]
            for model, attack, rest in lines:
                c = cells[(cells["model"] == model) & (cells["attack"] == attack) & (cells["rest"] == rest)]
                if c.empty:
                    continue
                c = c.sort_values("eps")
                label = f"{model} / {attack}" + (f" ({rest})" if rest else "")
                ax.errorbar(c["eps"], c["robust"].astype(float) * 100, yerr=_err(c), marker="o", markersize=4,
                            capsize=3, color=color[" ".join((model, attack, rest))], label=label)
            ax.set_title(style.SETTING_TEXT.get(setting, setting), loc="left", wrap=True)
            ax.set_xlabel(f"ε, attack budget ({norms} norm, point coordinates)")
            ax.set_ylim(0, 105)
            ax.grid(alpha=0.3)
        axes[0, 0].set_ylabel("robust accuracy (%)")
        handles, labels = axes[0, 0].get_legend_handles_labels()
        for ax in axes[0, 1:]:
            for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
                if lab not in labels:
                    handles.append(h)
                    labels.append(lab)
        fig.legend(handles, labels, loc="outside lower center", ncol=style.legend_columns(labels, fig.get_figwidth()),
                   title=f"{section.model_kind} / attack (whiskers: 95% Wilson intervals)")
        _suptitle(fig, "Robust accuracy against the attack budget", section, section.ok())
    return style.Plot("robust_vs_eps", "Robust accuracy against the attack budget", fig,
                      "Robust accuracy (%) of the swept cells against the swept eps; whiskers are 95% Wilson "
                      "intervals.")


def clean_vs_robust(section: Section, summ: pd.DataFrame) -> style.Plot | None:
    """Clean against mean robust accuracy, one labelled point per (model, setting)."""
    summ = summ.dropna(subset=["mean_robust"])
    if summ.empty:
        return None
    from matplotlib.lines import Line2D

    models = model_order(summ["model"])
    color = style.colors(models)
    settings = section.settings(summ)
    x, y = summ["clean"] * 100, summ["mean_robust"] * 100
    (x0, x1), (y0, y1) = _span(x), _span(y)
    with style.rc():
        fig, ax = style.new_figure(8.5, 6.2)
        d0, d1 = max(x0, y0), min(x1, y1)
        if d0 < d1:
            ax.plot([d0, d1], [d0, d1], "--", color="0.6", linewidth=0.8)
        for _, r in summ.iterrows():
            ax.plot(r["clean"] * 100, r["mean_robust"] * 100, _MARKERS.get(r["setting"], "o"),
                    color=color[r["model"]], markersize=7, markeredgecolor="black", markeredgewidth=0.5)
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_xlabel("clean accuracy (%)")
        ax.set_ylabel("mean robust accuracy over the attacks (%)")
        ax.grid(alpha=0.3)
        handles = [Line2D([], [], marker="o", color=color[m], linestyle="none", markeredgecolor="black",
                          markeredgewidth=0.5, label=m) for m in models]
        handles += [Line2D([], [], marker=_MARKERS.get(s, "o"), color="0.5", linestyle="none", label=s)
                    for s in settings]
        handles.append(Line2D([], [], linestyle="--", color="0.6", label="robust = clean"))
        fig.legend(handles=handles, loc="outside lower center",
                   ncol=style.legend_columns([str(h.get_label()) for h in handles], fig.get_figwidth()),
                   title=f"colour: {section.model_kind}; marker: setting; label: {section.model_kind}, setting")
        _suptitle(fig, "Clean against mean robust accuracy", section)
        style.place_labels(fig, ax, [(r["clean"] * 100, r["mean_robust"] * 100, f"{r['model']}, {r['setting']}")
                                     for _, r in summ.iterrows()])
    return style.Plot("clean_vs_robust", "Clean against mean robust accuracy", fig,
                      "One point per defense and setting: clean accuracy against robust accuracy averaged over the "
                      "setting's attacks (controls excluded); the dashed line is robust = clean.")


def worst_case_bars(section: Section, summ: pd.DataFrame) -> style.Plot | None:
    """Per-example worst case per model and setting (bars, Wilson whiskers), with the mean and clean accuracy."""
    summ = summ.dropna(subset=["worst"])
    if summ.empty:
        return None
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    models = model_order(summ["model"])
    settings = section.settings(summ)
    color = style.colors(settings, palette="Set2")
    width = 0.8 / len(settings)
    with style.rc():
        fig, ax = style.new_figure(min(18.0, max(7.5, 2.4 + len(summ) * 0.45 + len(models) * 0.3)), 5.6)
        for j, setting in enumerate(settings):
            s = summ[summ["setting"] == setting].set_index("model").reindex(models).dropna(subset=["worst"])
            xs = [models.index(m) - 0.4 + (j + 0.5) * width for m in s.index]
            err = _err(s.rename(columns={"worst": "robust", "worst_lo": "lo", "worst_hi": "hi"}))
            ax.bar(xs, s["worst"] * 100, width * 0.9, color=color[setting], yerr=err, capsize=3, ecolor="0.2",
                   error_kw={"elinewidth": 0.8})
            _zero_marks(ax, xs, s["worst"], color[setting], width)
            ax.plot(xs, s["mean_robust"] * 100, "D", color="black", markersize=4, linestyle="none")
            _dashes(ax, xs, s["clean"], width * 0.8)
        rotate = max(len(m) for m in models) * len(settings) > 14
        ax.set_xticks(range(len(models)), models, rotation=30 if rotate else 0, ha="right" if rotate else "center",
                      rotation_mode="anchor")
        ax.set_xlabel(section.model_kind)
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(0, 105)
        ax.set_xlim(-0.6, len(models) - 0.4)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
        handles = [Patch(color=color[s], label=f"worst case, {s}") for s in settings]
        handles += [Line2D([], [], marker="D", color="black", linestyle="none", markersize=4,
                           label="mean robust accuracy over the attacks"),
                    Line2D([], [], marker="_", color="black", linestyle="none", markersize=14, markeredgewidth=1.6,
                           label="clean accuracy"),
                    Line2D([], [], color="0.2", marker="|", markersize=10, linestyle="none",
                           label="95% Wilson interval")]
        fig.legend(handles=handles, loc="outside lower center",
                   ncol=style.legend_columns([str(h.get_label()) for h in handles], fig.get_figwidth(), most=3),
                   title="a flat dash at 0: a worst case of 0%")
        _suptitle(fig, "Per-example worst case: clouds robust to every attack of the setting", section)
    return style.Plot("worst_case", "Per-example worst case", fig,
                      "Bars: the fraction of the n test clouds that stay correct under every attack of the setting "
                      "(controls excluded), from per-example outcomes; diamonds: the mean over attacks; dashes: "
                      "clean accuracy.")
