"""Section 7 assembled: the noise-model subsections a-d in order, or those selected.

``run_section`` is what benchmarks/noise_models.py runs alone; ``run`` is section 7 of
benchmarks/quality.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from suite.noise import coloured, gaussian, per_sample, photon
from suite.noise.common import SUMMARY, RunFn, make_files
from suite.section import Context, Output

#: --only name -> (printed heading, Markdown heading, key in the section's data)
PARTS = {
    "per-sample": ("7a. per-sample levels", "### a. Per-sample levels (ring8)", "per_sample"),
    "coloured": ("7b. coloured noise", "### b. Coloured noise (ring8)", "coloured"),
    "photon": (
        "7c. photon noise",
        "### c. Photon noise (ring8 scaled into [-1, 1])",
        "photon",
    ),
    "noise-gaussian": (
        "7d. exact fits, analytic Gaussian model",
        "### d. Exact fits: Gaussian data, analytic denoiser",
        "gaussian",
    ),
}
INTRO = {
    "per-sample": per_sample.INTRO,
    "coloured": coloured.INTRO,
    "photon": photon.INTRO,
    "noise-gaussian": gaussian.INTRO,
}


def run_section(
    run: RunFn,
    vector: dict[str, str],
    seeds: int,
    photons: Sequence[int],
    out: Path,
    n_gauss: int = 100_000,
    parts: Sequence[str] = tuple(PARTS),
) -> tuple[str, dict]:
    """Section 7 (the subsections in ``parts``): its Markdown (subsections a-d) and numbers."""
    files = make_files(out, n_gauss)
    subsections: dict[str, Callable[[], tuple[str, dict]]] = {
        "per-sample": lambda: per_sample.section_per_sample(run, vector, seeds, out),
        "coloured": lambda: coloured.section_coloured(run, vector, seeds, out, files),
        "photon": lambda: photon.section_photon(run, vector, photons, out, files),
        "noise-gaussian": lambda: gaussian.section_gaussian(run, out, files),
    }
    t0 = time.perf_counter()
    md: list[str] = []
    data: dict = {}
    for name, (printed, heading, key) in PARTS.items():
        if name not in parts:
            continue
        print(printed, flush=True)
        t, data[key] = subsections[name]()
        md += [heading, "", INTRO[name], "", t, ""]
    data["seconds"] = time.perf_counter() - t0
    return "\n".join(md), data


def run(ctx: Context) -> Output:
    """Section 7 of the quality benchmark: the selected subsections (all without --only)."""
    print("7. noise models", flush=True)
    s = ctx.suite
    parts = [p for p in PARTS if p in ctx.selected]
    out, n_gauss = ctx.out / "noise", s.noise_gauss_samples
    md_noise, data = run_section(
        ctx.runner, s.vector, s.noise_seeds, s.photons, out, n_gauss, parts
    )
    md = [
        "## 7. Noise models: the right model against the naive white guess",
        "",
        SUMMARY,
        "",
        md_noise,
        "",
    ]
    return Output(md, {"noise_models": data}, {"res": data})


def figures(results_dir: Path, out: Output) -> list[tuple[str, str]]:
    """quality-photon.png when subsection c ran; [(title, file name)]."""
    if "photon" not in out.data["res"]:
        return []
    path = results_dir / "quality-photon.png"
    photon.photon_figure(path, out.data["res"]["photon"])
    return [("photon noise: swd vs photons at full scale", path.name)]
