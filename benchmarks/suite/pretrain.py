"""Section 6: pretraining on a *similar* dataset instead of a clean subset (seed 0).

`data.pretrain`, no clean samples: SFBD with it, pretrain-only and noisy-only, per iteration,
on ring8 (pretrained on 6 of its 8 modes) and digits (pretrained on other images of only the
digits 0-4). The clean-subset, noisy-only and oracle runs are section 1's seed-0 runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from sfbd import report
from suite.data import DIGITS_PRETRAIN_CLASSES, DataFiles, dataset_base
from suite.plots import last_samples, style
from suite.runner import Runner, final
from suite.section import Context, Output
from suite.settings import COLORS, METHODS, Suite
from suite.tables import below, table

SIMILAR = {
    "ring8": "2,000 fresh ring8 samples from only 6 of its 8 modes (none at 270° and 315°)",
    "digits": f"the images of the digits {min(DIGITS_PRETRAIN_CLASSES)}–"
    f"{max(DIGITS_PRETRAIN_CLASSES)} among the third of scikit-learn's digits that the problem "
    "does not use",
}
PRETRAIN_RUNS = ("sfbd+pretrain", "sfbd", "pretrain-only", "clean-only", "noisy-only", "oracle")
PRETRAIN_LABELS = {
    "sfbd+pretrain": "sfbd, pretrained on the similar set (0 clean)",
    "sfbd": "sfbd, clean subset",
    "pretrain-only": "pretrain-only (similar set, 0 clean)",
}


def section_pretrain(
    runner: Runner, suite: Suite, files: DataFiles, sfbd_std: dict[str, float | None] | None
) -> tuple[str, dict[str, dict[str, list[dict]]], dict[str, dict[str, Path]], list[str]]:
    """Section 6 (seed 0): SFBD pretrained on a similar set vs on a clean subset, baselines.

    The clean-subset runs are section 1's seed-0 runs (same configuration, reused).
    ``sfbd_std``: section 1's seed std of SFBD per dataset (None with one seed), or None when
    section 1 did not run (--only).
    """
    res: dict[str, dict[str, list[dict]]] = {}
    dirs: dict[str, dict[str, Path]] = {}
    for ds in suite.pretrain_sets:
        base = {**dataset_base(suite, ds, files), "seed": "0", "data.noise_seed": "0"}
        similar = {"data.pretrain": str(files.similar(ds)), "data.clean_fraction": "0"}
        overrides = {
            "sfbd+pretrain": {**base, "method": "sfbd", **similar},
            "pretrain-only": {**base, "method": "clean-only", **similar},
            **{m: {**base, "method": m} for m in METHODS},
        }
        res[ds], dirs[ds] = {}, {}
        for name in PRETRAIN_RUNS:
            res[ds][name], dirs[ds][name] = runner(f"{ds}-{name}-s0", overrides[name])
    rows = []
    for ds, by in res.items():
        for name in ("sfbd+pretrain", "sfbd"):
            for st in by[name]:
                m = st["metrics"]
                rows.append(
                    [
                        ds,
                        f"{PRETRAIN_LABELS[name]} k={st['iteration']}",
                        f"{m['swd']:.4f}",
                        f"{m['mmd']:.2e}",
                        f"{m['denoise_psnr']:.2f}" if "denoise_psnr" in m else "–",
                    ]
                )
        for name in ("pretrain-only", "clean-only", "noisy-only", "oracle"):
            st = by[name]
            rows.append(
                [
                    ds,
                    PRETRAIN_LABELS.get(name, name),
                    f"{final(st):.4f}",
                    f"{final(st, 'mmd'):.2e}",
                    "–",
                ]
            )
    header = ["dataset", "method (seed 0)", "swd", "mmd", "denoise_psnr (dB)"]
    sentences = []
    for ds, by in res.items():
        p, s = final(by["sfbd+pretrain"]), final(by["sfbd"])
        p0 = float(by["sfbd+pretrain"][0]["metrics"]["swd"])
        po, n, c = final(by["pretrain-only"]), final(by["noisy-only"]), final(by["clean-only"])
        std = None if sfbd_std is None else sfbd_std.get(ds)
        if sfbd_std is None:
            scale = "section 1 did not run (--only), no spread to judge the difference by"
        elif std is None:
            scale = "one seed, no spread to judge the difference by"
        else:
            size = "more" if abs(p - s) > std else "less"
            scale = f"{size} than the seed std of SFBD in section 1 ({std:.4f})"
        better = "better" if p < s else "worse"
        sentences.append(
            f"{ds}: SFBD pretrained on the similar set with no clean samples goes from swd "
            f"{p0:.4f} at k=0 to {p:.4f}, {below(p, po)} pretrain-only ({po:.4f}) and "
            f"{below(p, n)} noisy-only ({n:.4f}); it ends {better} than SFBD with the clean "
            f"subset ({s:.4f}; a difference of {abs(p - s):.4f}, {scale}), whose clean-only "
            f"baseline reaches {c:.4f}."
        )
    return table(header, rows), res, dirs, sentences


def pretrain_figure(path: Path, res: dict[str, dict[str, list[dict]]]) -> None:
    """swd vs k: SFBD pretrained on the similar set and on the clean subset; dashed baselines."""
    n = len(res)
    fig = Figure(figsize=(max(4.2 * n, 7.0), 3.8))
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, (ds, by) in zip(axes, res.items(), strict=True):
        for name, color, marker in (
            ("sfbd+pretrain", "tab:purple", "o"),
            ("sfbd", "tab:blue", "s"),
        ):
            swd = [s["metrics"]["swd"] for s in by[name]]
            ax.plot(range(len(swd)), swd, marker=marker, color=color, label=PRETRAIN_LABELS[name])
        for name in ("pretrain-only", "clean-only", "noisy-only", "oracle"):
            ax.axhline(final(by[name]), linestyle="--", color=COLORS[name], label=name)
        ax.set_xticks(range(len(by["sfbd"])))
        style(ax, f"{ds}: pretraining on a similar set (seed 0)", "iteration k", "swd")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0.0, 0.12, 1.0, 1.0))
    report.save_figure(path, fig)


def pretrain_sample_figures(
    results_dir: Path, files: DataFiles, dirs: dict[str, dict[str, Path]]
) -> list[tuple[str, str]]:
    """The similar set next to the final samples of the runs pretrained on it (section 6)."""
    figs = []
    for ds, by in dirs.items():
        panels = [
            ("similar set", np.load(files.similar(ds))),
            ("pretrain-only", last_samples(by["pretrain-only"])),
            ("sfbd+pretrain (final)", last_samples(by["sfbd+pretrain"])),
            ("sfbd, clean subset (final)", last_samples(by["sfbd"])),
        ]
        path = results_dir / f"quality-pretrain-{ds}-samples.png"
        if ds == "digits":
            report.image_panels_png(path, [(t, a[:64]) for t, a in panels], nrow=8)
        else:
            report.scatter_panels_png(path, panels, max_points=1000)
        figs.append((f"{ds}: the similar pretraining set and final samples (seed 0)", path.name))
    return figs


def run(ctx: Context) -> Output:
    print("6. pretraining on a similar dataset", flush=True)
    t, data, dirs, s = section_pretrain(ctx.runner, ctx.suite, ctx.files, ctx.sfbd_std)
    print(t + "\n\n" + "\n".join(s) + "\n", flush=True)
    md = [
        "## 6. Pretraining on a similar dataset instead of a clean subset",
        "",
        "`data.pretrain` = clean samples of a *similar* distribution and `data.clean_fraction=0`"
        ": SFBD pretrains (stage 0) on them and updates on E_k alone; pretrain-only is "
        "clean-only on them with SFBD's total step budget. Similar sets: "
        + "; ".join(f"{ds}: {SIMILAR[ds]}" for ds in ctx.suite.pretrain_sets)
        + ". The clean-subset, noisy-only and oracle rows are section 1's seed-0 runs.",
        "",
        t,
        "",
        *[f"- {x}" for x in s],
        "",
    ]
    summary = {
        "pretrain": {
            ds: {name: [st["metrics"] for st in stages] for name, stages in by.items()}
            for ds, by in data.items()
        }
    }
    return Output(md, summary, {"res": data, "dirs": dirs})


def figures(results_dir: Path, files: DataFiles, out: Output) -> list[tuple[str, str]]:
    """quality-pretrain.png and the samples figures; [(title, file name)]."""
    path = results_dir / "quality-pretrain.png"
    pretrain_figure(path, out.data["res"])
    figs = [("pretraining on a similar set vs a clean subset: swd vs k", path.name)]
    return figs + pretrain_sample_figures(results_dir, files, out.data["dirs"])
