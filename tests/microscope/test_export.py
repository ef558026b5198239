"""The figure set: files, provenance, a taken folder refused."""
import json

import pytest


def test_export_writes_figures_videos_and_provenance(micro_data, tmp_path):
    out = tmp_path / "figs"
    files = micro_data.export_figures(out, frames=[0, 3], frame=0, xy=(40, 40))
    for name in ("x0", "pca", "clusters", "self_attention", "cross_attention", "loss_masks"):
        assert (out / f"{name}.png").stat().st_size > 0 and (out / f"{name}.svg").stat().st_size > 0
    for name in ("video", "x0_steps", "pca_frames"):
        assert (out / f"{name}.mp4").stat().st_size > 0 and (out / f"{name}.gif").stat().st_size > 0
    assert set(files) == {p.name for p in out.iterdir()}
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["seed"] == 0 and prov["prompt"] == "a red square" and prov["config"]["num_frames"] == 4
    assert {"torch", "diffusers", "anyi2v_lab"} <= set(prov["versions"])
    assert any(n.endswith("attn1.query") for n in prov["hook_points"])
    att = prov["files"]["self_attention.png"]
    assert att["frames"] == [0, 3] and att["query_frame"] == 0 and att["steps"][0]["label"] == "sampling 2 (t=1)"
    assert att["hook_point"] == micro_data.points[0]
    assert att["query_cell"] == list(micro_data.cell_of(att["hook_point"], (40, 40)))
    assert [s["phase"] for s in prov["files"]["x0.png"]["steps"]] == ["sampling"] * 3
    assert len(prov["model_fingerprint"]) > 8 and prov["model"] is None
    with pytest.raises(FileExistsError, match="exists and is not empty.*overwrite=True"):
        micro_data.export_figures(out)
    micro_data.export_figures(out, overwrite=True, frames=[1])
    assert json.loads((out / "provenance.json").read_text())["files"]["pca.png"]["frames"] == [1]


def test_export_refuses_bad_selection_before_writing(micro_data, tmp_path):
    with pytest.raises(ValueError, match="out of range"):
        micro_data.export_figures(tmp_path / "a", frames=[7])
    with pytest.raises(ValueError, match="point="):
        micro_data.export_figures(tmp_path / "b", point="up_blocks.9.x")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
