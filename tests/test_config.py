import json

import pytest

from anyi2v_lab.method.config import AnyI2VConfig, ConfigError


def test_defaults_are_the_papers():
    c = AnyI2VConfig()
    assert (c.num_frames, c.num_inference_steps, c.guidance_scale, c.lr, c.opt_iters, c.pca_dim) == (16, 25, 8.0, 0.01, 5, 64)
    assert (c.opt_step, c.load_feature_step, c.compress_factor, c.inversion_timestep, c.adain_patch) == (5, 3, 4, 201, 4)
    assert c.opt_layers == ("up_blocks.1.attentions.1.transformer_blocks.0.attn1",
                            "up_blocks.2.attentions.0.transformer_blocks.0.attn1")
    assert len(c.res_layers) == 4 and len(c.attn_layers) == 4 and c.kv_consistency and c.mask == "semantic"
    assert c.eta == 0.0  # deterministic DDIM, as the reference samples


def test_round_trips_and_overrides(tmp_path):
    c = AnyI2VConfig().with_overrides(["lr=0.02", "pca_dim=null", "mask=static", "opt_layers=[a, b]"])
    assert (c.lr, c.pca_dim, c.mask, c.opt_layers) == (0.02, None, "static", ("a", "b"))
    (tmp_path / "c.json").write_text(json.dumps({"config": c.to_dict()}))
    assert AnyI2VConfig.load(tmp_path / "c.json") == c
    (tmp_path / "c.yaml").write_text("lr: 0.05\nkv_consistency: false\n")
    assert AnyI2VConfig.load(tmp_path / "c.yaml") == AnyI2VConfig(lr=0.05, kv_consistency=False)


@pytest.mark.parametrize("bad,match", [
    (dict(mask="nope"), "mask='nope'"), (dict(num_frames=0), "num_frames=0"), (dict(adain_patch=1), "adain_patch=1"),
    (dict(inversion_timestep=1000), "inversion_timestep"), (dict(height=100), "height=100"),
    (dict(guidance_scale=0.5), "guidance_scale"), (dict(pca_dim=0), "pca_dim=0"), (dict(eta=1.5), "eta=1.5"),
])
def test_validation(bad, match):
    with pytest.raises(ConfigError, match=match):
        AnyI2VConfig(**bad)


def test_unknown_keys_suggest():
    with pytest.raises(ConfigError, match="did you mean 'pca_dim'"):
        AnyI2VConfig.from_dict({"pca_dims": 3})
    with pytest.raises(ConfigError, match="key=value"):
        AnyI2VConfig().with_overrides(["lr"])


def test_replace_checks_as_a_new_config_does():
    c = AnyI2VConfig().replace(opt_layers=["a", "b"], lr=0.02)  # a YAML list becomes the field's tuple
    assert c.opt_layers == ("a", "b") and c.lr == 0.02 and c == AnyI2VConfig(opt_layers=("a", "b"), lr=0.02)
    with pytest.raises(ConfigError, match="did you mean 'lr'"):
        AnyI2VConfig().replace(lrr=0.02)
    with pytest.raises(ConfigError, match="eta=1.5"):
        AnyI2VConfig().replace(eta=1.5)
