import json

from sfbd.cli.demo import run_demo


def test_quick_demo_writes_its_outputs(tmp_path):
    results = run_demo(tmp_path, quick=True, progress=False)
    assert set(results) == {"sfbd", "clean-only"}
    for name in (
        "comparison.png",
        "sfbd/metrics.json",
        "sfbd/stages.png",
        "sfbd/metrics.png",
        "clean-only/metrics.json",
        "sfbd/samples/stage-02.png",
    ):
        assert (tmp_path / name).is_file(), name
    stages = json.loads((tmp_path / "sfbd" / "metrics.json").read_text())["stages"]
    assert [s["iteration"] for s in stages] == [0, 1, 2]
    assert all({"swd", "mmd"} <= set(s["metrics"]) for s in stages)
    assert all("denoise_psnr" in s["metrics"] for s in stages[1:])
