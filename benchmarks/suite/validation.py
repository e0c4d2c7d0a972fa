"""Section 8: knowing whether it helped, without clean held-out data.

Every method of section 1 plus the ambient method (Daras et al., one stage on clean ∪ noisy,
noisy samples by the ambient loss at σ ≥ τ) and SFBD pretrained on that ambient mixture
(``sfbd.pretrain=ambient``), at the same budget, on every set of the suite and the same
seeds. Per method and stage: swd (against the clean hold-out, what a user does not have),
``val_noisy`` (the ambient loss on held-out noisy samples, what a user has), ``val_clean``
(the clean loss on the same draws: what ``val_noisy`` estimates), ``copy_rate`` and
``nn_ratio`` (memorisation of the clean set). Then, per set, whether ``val_noisy`` ranks the
(method, stage) pairs as swd and ``val_clean`` do (Kendall's τ over the seed means), and how
often the stage it picks as best is swd's best stage.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import kendalltau

from suite.data import dataset_base
from suite.runner import Runner
from suite.section import Context, Output
from suite.settings import METHODS
from suite.tables import fmt, listing, mean_of, table

AMBIENT = "ambient"  # the ambient method's registered name
#: label -> the overrides of each compared method
COMPARED = {
    **{m: {"method": m} for m in METHODS},
    AMBIENT: {"method": AMBIENT},
    "sfbd+ambient-pretrain": {"method": "sfbd", "sfbd.pretrain": AMBIENT},
}
KEYS = ("swd", "val_noisy", "val_clean", "copy_rate", "nn_ratio")


def run_methods(ctx: Context) -> dict[str, dict[str, list[list[dict]]]]:
    """{dataset: {label: [stages per seed]}}; section 1's runs are reused (the same runs)."""
    runner: Runner = ctx.runner
    res: dict[str, dict[str, list[list[dict]]]] = {}
    for ds in ctx.suite.datasets:
        base = dataset_base(ctx.suite, ds, ctx.files)
        res[ds] = {label: [] for label in COMPARED}
        for seed in range(ctx.image_seeds if ds == "digits" else ctx.seeds):
            for label, ov in COMPARED.items():
                over = {**base, **ov, "seed": str(seed), "data.noise_seed": str(seed)}
                stages, _ = runner(f"{ds}-{label}-s{seed}", over)
                res[ds][label].append(stages)
    return res


def _stage_means(runs: list[list[dict]], key: str) -> list[float]:
    """The seed mean of ``key`` at each stage (nan where a stage lacks it)."""
    out = []
    for k in range(len(runs[0])):
        vals = [r[k]["metrics"].get(key, math.nan) for r in runs]
        out.append(mean_of([v for v in vals if v == v]) if any(v == v for v in vals) else math.nan)
    return out


def stage_table(res: dict[str, dict[str, list[list[dict]]]]) -> str:
    """Per set, method and stage: the seed means of swd, val_noisy, val_clean, copy_rate."""
    rows = []
    for ds, by in res.items():
        for label, runs in by.items():
            for k in range(len(runs[0])):
                name = label if len(runs[0]) == 1 else f"{label} k={k}"
                cells = [fmt([r[k]["metrics"].get(key, math.nan) for r in runs]) for key in KEYS]
                rows.append([ds, name, *cells])
    return table(["dataset", "method", *KEYS], rows)


def pairs(by: dict[str, list[list[dict]]], key: str) -> list[float]:
    """One value per (method, stage) pair: the seed mean of ``key``."""
    return [v for runs in by.values() for v in _stage_means(runs, key)]


def agreement(by: dict[str, list[list[dict]]]) -> dict[str, float]:
    """Kendall's τ of val_noisy against swd and against val_clean over the (method, stage)
    pairs, and the fraction of iterative runs whose best stage by val_noisy is swd's."""
    noisy, swd, clean = (np.array(pairs(by, k)) for k in ("val_noisy", "swd", "val_clean"))
    ok = np.isfinite(noisy) & np.isfinite(swd) & np.isfinite(clean)
    tau_swd = kendalltau(noisy[ok], swd[ok]).statistic if ok.sum() > 2 else math.nan
    tau_clean = kendalltau(noisy[ok], clean[ok]).statistic if ok.sum() > 2 else math.nan
    same, total = 0, 0
    for runs in by.values():
        for r in runs:
            if len(r) < 2:
                continue
            vn = [s["metrics"].get("val_noisy", math.inf) for s in r]
            vs = [s["metrics"].get("swd", math.inf) for s in r]
            same += int(np.argmin(vn) == np.argmin(vs))
            total += 1
    return {
        "kendall_val_noisy_swd": float(tau_swd),
        "kendall_val_noisy_val_clean": float(tau_clean),
        "best_stage_agrees": same / total if total else math.nan,
        "pairs": int(ok.sum()),
    }


def agreement_table(agree: dict[str, dict[str, float]]) -> str:
    rows = [
        [
            ds,
            str(a["pairs"]),
            f"{a['kendall_val_noisy_val_clean']:.2f}",
            f"{a['kendall_val_noisy_swd']:.2f}",
            f"{a['best_stage_agrees']:.2f}",
        ]
        for ds, a in agree.items()
    ]
    head = ["dataset", "(method, stage) pairs", "τ(val_noisy, val_clean)", "τ(val_noisy, swd)"]
    return table([*head, "best stage by val_noisy = by swd"], rows)


def sentences(res: dict[str, dict[str, list[list[dict]]]], agree: dict[str, dict]) -> str:
    """What the numbers say: which final swd is lowest per set, and copy rates."""
    lowest, copies = [], []
    for ds, by in res.items():
        finals = {lab: mean_of([r[-1]["metrics"]["swd"] for r in runs]) for lab, runs in by.items()}
        honest = {lab: v for lab, v in finals.items() if lab != "oracle"}
        best = min(honest, key=honest.get)
        lowest.append(f"{ds} {best} ({honest[best]:.4f})")
        rate = {lab: mean_of([r[-1]["metrics"].get("copy_rate", math.nan) for r in runs])
                for lab, runs in by.items()}  # fmt: skip
        copies.append(f"{ds}: clean-only {rate['clean-only']:.2f}, sfbd {rate['sfbd']:.2f}, "
                      f"{AMBIENT} {rate[AMBIENT]:.2f}")  # fmt: skip
    taus = [a["kendall_val_noisy_swd"] for a in agree.values()]
    return (
        f"Lowest final swd without the oracle: {listing(lowest)}. Final copy_rate: "
        f"{'; '.join(copies)}. Kendall's τ between val_noisy and swd over the (method, stage) "
        f"pairs ranges {min(taus):.2f}–{max(taus):.2f} across the sets."
    )


def run(ctx: Context) -> Output:
    print("8. knowing whether it helped: ambient, memorisation, val_noisy", flush=True)
    res = run_methods(ctx)
    t_stages = stage_table(res)
    agree = {ds: agreement(by) for ds, by in res.items()}
    t_agree = agreement_table(agree)
    said = sentences(res, agree)
    print(t_stages + "\n\n" + t_agree + "\n\n" + said + "\n", flush=True)
    summary = {
        "validation": {
            "finals": {
                ds: {
                    lab: {k: [r[-1]["metrics"].get(k) for r in runs] for k in KEYS}
                    for lab, runs in by.items()
                }  # fmt: skip
                for ds, by in res.items()
            },
            "agreement": agree,
        }
    }
    md = ["## 8. Knowing whether it helped", "", __doc__.split("\n\n", 1)[1].strip(), ""]
    md += [t_stages, "", t_agree, "", said, ""]
    return Output(md, summary, {"res": res})
