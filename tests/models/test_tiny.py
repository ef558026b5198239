"""The tiny model written as real weights come loads through load_pipeline's real-weights path."""
import torch

from anyi2v_lab.models.loading import load_pipeline
from anyi2v_lab.models.tiny import ORIGINAL_LAYOUT_SPEC, tiny_pipeline, write_tiny_weights


def test_written_tiny_weights_load_as_base_checkpoint_and_motion_module(tmp_path, capsys):
    paths = write_tiny_weights(tmp_path, seed=3)
    assert "Writing model shards" not in capsys.readouterr().err  # no progress bar in a notebook cell
    assert paths["checkpoint"].suffix == ".safetensors" and (paths["base"] / "tokenizer").is_dir()
    pipe = load_pipeline(paths["base"], checkpoint=paths["checkpoint"], motion_adapter=paths["motion_adapter"],
                         device="cpu", progress=False)
    assert pipe.load_report.replaced == ("unet", "vae", "text_encoder")
    want = tiny_pipeline(3, ORIGINAL_LAYOUT_SPEC).unet.state_dict()
    got = pipe.unet.state_dict()
    assert want.keys() == got.keys() and all(torch.equal(got[k], v) for k, v in want.items())
