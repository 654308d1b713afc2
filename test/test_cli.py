import json
import subprocess
import sys

from motion_agent.cli import main


def test_demo_writes_bvh_features_preview_and_summary(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--kind", "walk", "jump", "--seconds", "2"]) == 0
    out = capsys.readouterr().out
    assert "nothing is served" in out  # never pretends to be the agent
    summary = json.loads((tmp_path / "demo.json").read_text())
    assert set(summary) == {"walk", "jump"}
    assert all(entry["round_trip_error_mm"] < 1.0 for entry in summary.values())
    for name in ("walk.bvh", "jump.bvh", "walk_features.npy", "demo.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_bad_config_is_one_clear_line(tmp_path, capsys):
    config = tmp_path / "motion.yaml"
    config.write_text("features:\n  fsp: 20\nexport: {}\n")
    assert main(["demo", "--out", str(tmp_path), "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "fsp" in err and "Traceback" not in err


def test_help_explains_itself():
    result = subprocess.run(
        [sys.executable, "-m", "motion_agent.cli", "demo", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "BVH" in result.stdout
