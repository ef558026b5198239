import dataclasses
import json

import numpy as np
import pytest

from anyi2v_lab.method.config import AnyI2VConfig, ConfigError, check_seed, config_keys


def test_defaults_are_the_papers():
    c = AnyI2VConfig()
    assert (c.num_frames, c.num_inference_steps, c.guidance_scale, c.lr, c.opt_iters, c.pca_dim) == (
        16, 25, 8.0, 0.01, 5, 64)
    assert (c.opt_step, c.load_feature_step, c.compress_factor, c.inversion_timestep, c.adain_patch) == (
        5, 3, 4, 201, 4)
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


# ---------------------------------------------------------------- types: converted when parsed, or refused
@pytest.mark.parametrize("override,shown,expected", [
    ("opt_step=abc", "opt_step='abc'", "an integer"),                  # int
    ("num_frames=yes", "num_frames=True", "an integer"),               # YAML's bool is not an int
    ("num_frames=1.5", "num_frames=1.5", "an integer"),
    ("lr=fast", "lr='fast'", "a finite number"),                       # float
    ("guidance_scale=abc", "guidance_scale='abc'", "a finite number"),
    ("eta=.nan", "eta=nan", "a finite number"),
    ("inject_query=nope", "inject_query='nope'", "true or false"),     # bool
    ("kv_consistency=2", "kv_consistency=2", "true or false"),
    ("pca_dim=abc", "pca_dim='abc'", "an integer or none"),            # int | None
    ("adain_patch=[4]", "adain_patch=[4]", "an integer or none"),
    ("mask=nope", "mask='nope'", "one of 'semantic', 'static', 'none'"),  # Literal choices
    ("mask=null", "mask=None", "one of"),
    ("opt_layers=[1, 2]", "opt_layers=[1, 2]", "a list of layer names"),  # tuple of layer names
    ("res_layers={a: 1}", "res_layers={'a': 1}", "a list of layer names"),
])
def test_wrong_types_are_refused_naming_key_value_and_type(override, shown, expected):
    with pytest.raises(ConfigError) as e:
        AnyI2VConfig().with_overrides([override])
    assert str(e.value).startswith(f"{shown} is not {expected}") and "(default: " in str(e.value)


@pytest.mark.parametrize("override,key,value", [
    ("pca_dim=none", "pca_dim", None), ("pca_dim=None", "pca_dim", None), ("pca_dim=null", "pca_dim", None),
    ("adain_patch=~", "adain_patch", None), ("height=256", "height", 256),
    ("adain_eps=1e-5", "adain_eps", 1e-5),  # YAML 1.1 reads 1e-5 as text
    ("guidance_scale=7", "guidance_scale", 7.0), ("inject_query=no", "inject_query", False),
    ("vae_sample=On", "vae_sample", True), ("mask=none", "mask", "none"),
    ("opt_layers=a, b", "opt_layers", ("a", "b")), ("opt_layers=[a, b]", "opt_layers", ("a", "b")),
])
def test_text_values_are_converted_to_the_fields_type(override, key, value):
    got = getattr(AnyI2VConfig().with_overrides([override]), key)
    assert got == value and type(got) is type(value)


def test_config_files_are_converted_and_errors_name_the_file(tmp_path):
    (tmp_path / "ok.json").write_text(json.dumps({"num_frames": 8.0, "lr": "0.02", "pca_dim": "none",
                                                  "inject_query": "false", "opt_layers": "a,b"}))
    c = AnyI2VConfig.load(tmp_path / "ok.json")
    assert (c.num_frames, c.lr, c.pca_dim, c.inject_query, c.opt_layers) == (8, 0.02, None, False, ("a", "b"))
    assert type(c.num_frames) is int
    for name, text in [("bad.yaml", "lr: fast\n"), ("bad.json", '{"lr": "fast"}'),
                       ("run.json", '{"config": {"lr": "fast"}}')]:
        (tmp_path / name).write_text(text)
        with pytest.raises(ConfigError, match=rf"config file '.*{name}': lr='fast' is not a finite number"):
            AnyI2VConfig.load(tmp_path / name)
    (tmp_path / "broken.yaml").write_text("lr: [1\n")
    (tmp_path / "list.yaml").write_text("- lr\n")
    with pytest.raises(ConfigError, match="broken.yaml' cannot be read"):
        AnyI2VConfig.load(tmp_path / "broken.yaml")
    with pytest.raises(ConfigError, match="expected a mapping of settings, got list"):
        AnyI2VConfig.load(tmp_path / "list.yaml")
    with pytest.raises(ConfigError, match="does not exist"):
        AnyI2VConfig.load(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="is a folder"):
        AnyI2VConfig.load(tmp_path)


def test_file_and_overrides_are_checked_together(tmp_path):
    (tmp_path / "quick.yaml").write_text("num_inference_steps: 4\n")  # alone: opt_step 5 lies past the last step
    with pytest.raises(ConfigError, match="quick.yaml': opt_step=5 must lie in 0..3"):
        AnyI2VConfig.load(tmp_path / "quick.yaml")
    c = AnyI2VConfig.load(tmp_path / "quick.yaml", overrides=["opt_step=3", "load_feature_step=2"])
    assert (c.num_inference_steps, c.opt_step, c.load_feature_step) == (4, 3, 2)


def test_construction_takes_typed_values_only():
    for bad in (dict(pca_dim="64"), dict(num_frames=True), dict(lr="0.01"), dict(inject_query="yes"),
                dict(opt_layers="up_blocks.1"), dict(mask=None), dict(guidance_scale=float("inf"))):
        with pytest.raises(ConfigError, match=f"{next(iter(bad))}="):
            AnyI2VConfig(**bad)
    c = AnyI2VConfig(guidance_scale=7, opt_layers=["a"], num_frames=np.int64(8), debias=np.bool_(False))
    assert type(c.guidance_scale) is float and c.opt_layers == ("a",) and type(c.num_frames) is int
    assert c.debias is False
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.lr = 0.5


SWITCH = {"load_feature_step": "injection", "opt_step": "optimisation"}


@pytest.mark.parametrize("key", ["load_feature_step", "opt_step"])
def test_windows_lie_within_the_steps(key):
    with pytest.raises(ConfigError, match=rf"{key}=-1 must lie in 0..24"):
        AnyI2VConfig(**{key: -1})  # a negative window used to switch the mechanism off silently
    with pytest.raises(ConfigError, match=rf"{key}=25 must lie in 0..24"):
        AnyI2VConfig(**{key: 25})
    assert getattr(AnyI2VConfig(**{key: 0}), key) == 0 and getattr(AnyI2VConfig(**{key: 24}), key) == 24


@pytest.mark.parametrize("key", ["load_feature_step", "opt_step"])
def test_a_negative_window_is_refused_naming_the_switch(key, tmp_path):
    """On construction and on every way of parsing; the message names the explicit switch."""
    fix = rf"to turn .* off, set {SWITCH[key]}=false"
    (tmp_path / "c.yaml").write_text(f"{key}: -1\n")
    for make in (lambda: AnyI2VConfig(**{key: -1}), lambda: AnyI2VConfig.from_dict({key: "-1"}),
                 lambda: AnyI2VConfig().with_overrides([f"{key}=-1"]), lambda: AnyI2VConfig().replace(**{key: -1}),
                 lambda: AnyI2VConfig.load(tmp_path / "c.yaml")):
        with pytest.raises(ConfigError, match=rf"{key}=-1 must lie in 0..24: .*{fix}"):
            make()
    with pytest.raises(ConfigError, match=rf"{key}=-1 must lie"):  # "off" is the switch, never a negative window
        AnyI2VConfig(**{key: -1, SWITCH[key]: False})


@pytest.mark.parametrize("key", ["load_feature_step", "opt_step"])
def test_a_switched_off_window_is_not_held_to_the_steps(key):
    c = AnyI2VConfig.from_dict({"num_inference_steps": 2, "load_feature_step": 1, "opt_step": 1, key: 30,
                                SWITCH[key]: "off"})
    assert getattr(c, SWITCH[key]) is False and getattr(c, key) == 30
    with pytest.raises(ConfigError, match=rf"{key}=30 must lie in 0..1"):
        c.replace(**{SWITCH[key]: True})


def test_switches_are_typed_and_explicit():
    assert AnyI2VConfig().injects and AnyI2VConfig().inverts
    c = AnyI2VConfig().with_overrides(["injection=no", "optimisation=false"])
    assert (c.injection, c.optimisation, c.injects, c.inverts) == (False, False, False, False)
    assert c.inject_residual and c.inject_query and c.kv_consistency  # the parts keep their values
    kv_only = AnyI2VConfig(inject_residual=False, inject_query=False)
    assert kv_only.injects and not kv_only.inverts
    assert not AnyI2VConfig(inject_residual=False, inject_query=False, kv_consistency=False).injects
    with pytest.raises(ConfigError, match="injection='maybe' is not true or false"):
        AnyI2VConfig.from_dict({"injection": "maybe"})
    with pytest.raises(ConfigError, match="optimisation=0 is not true or false"):
        AnyI2VConfig(optimisation=0)


def test_every_key_is_described():
    keys = config_keys()
    assert [k for k, *_ in keys] == [f.name for f in dataclasses.fields(AnyI2VConfig)]
    kinds = dict((k, t) for k, t, _, _ in keys)
    assert (kinds["num_frames"], kinds["lr"], kinds["vae_sample"], kinds["pca_dim"]) == ("int", "float", "bool",
                                                                                        "int or none")
    assert kinds["mask"] == "one of semantic|static|none" and kinds["opt_layers"] == "list of layer names"
    assert all(meaning for *_, meaning in keys) and dict((k, d) for k, _, d, _ in keys)["lr"] == 0.01


def test_unparseable_override_is_a_config_error():
    with pytest.raises(ConfigError, match=r"override 'opt_layers=\[a': the value '\[a' cannot be parsed"):
        AnyI2VConfig().with_overrides(["opt_layers=[a"])


# ---------------------------------------------------------------- limits: stated in the message
@pytest.mark.parametrize("override,message", [
    ("num_inference_steps=100000", "num_inference_steps=100000 must lie in 1..1000: DDIM takes at most one step "
                                   "per training timestep of the scheduler (1000; paper: 25)"),
    ("num_frames=100000", "num_frames=100000 must lie in 1..32: an AnimateDiff motion module embeds at most 32 "
                          "frame positions"),
    ("num_frames=0", "num_frames=0 must lie in 1..32"),
    ("height=8192", "height=8192 must be a multiple of 8 (the VAE downsamples by 8) in 8..2048"),
    ("width=8192", "width=8192 must be a multiple of 8 (the VAE downsamples by 8) in 8..2048"),
    ("fast_inversion_steps=5000", "fast_inversion_steps=5000 must lie in 1..1000"),
])
def test_steps_frames_and_sizes_are_bounded_and_the_bound_is_stated(override, message):
    with pytest.raises(ConfigError) as e:
        AnyI2VConfig().with_overrides([override])
    assert message in str(e.value)


def test_the_bounds_themselves_are_accepted():
    c = AnyI2VConfig(num_frames=32, num_inference_steps=1000, fast_inversion_steps=1000, height=2048, width=2048)
    assert (c.num_frames, c.num_inference_steps, c.height) == (32, 1000, 2048)


@pytest.mark.parametrize("seed", [2**64, -1, 10**30, "7", 1.0, True])
def test_seeds_outside_torchs_range_are_refused_naming_the_range(seed):
    with pytest.raises(ConfigError) as e:
        check_seed(seed, "--seed")
    assert f"--seed={seed!r} must be an integer in 0..18446744073709551615 (2**64 - 1)" in str(e.value)
    assert check_seed(0) == 0 and check_seed(2**64 - 1) == 2**64 - 1


def test_a_model_frame_bound_and_a_bad_seed_are_refused_before_any_work(tiny_pipe, image, monkeypatch):
    from anyi2v_lab.method import generate

    def boom(*a, **k):
        raise AssertionError("work started before the inputs were checked")
    monkeypatch.setattr(tiny_pipe, "encode_prompt", boom)
    with pytest.raises(ConfigError, match=r"seed=18446744073709551616 must be an integer in 0\.\."):
        generate(tiny_pipe, image, "x", None, AnyI2VConfig(**SMALL), seed=2**64, progress=False)
    tiny_pipe.unet.register_to_config(motion_max_seq_length=8)  # an adapter of fewer positions (v1: 24)
    try:
        with pytest.raises(ConfigError, match=r"num_frames=16 must lie in 1\.\.8: this model's motion module embeds "
                                              r"at most 8 frame positions"):
            generate(tiny_pipe, image, "x", None, AnyI2VConfig(**{**SMALL, "num_frames": 16}), progress=False)
    finally:
        tiny_pipe.unet.register_to_config(motion_max_seq_length=32)


# ---------------------------------------------------------------- switches: the mechanism is really off
SMALL = dict(num_frames=4, num_inference_steps=3, inversion_timestep=21, load_feature_step=2, opt_step=1, opt_iters=2)


def test_injection_off_is_generating_without_injection(tiny_pipe, image):
    from anyi2v_lab.method import generate

    cfg = AnyI2VConfig(**SMALL)
    off = generate(tiny_pipe, image, "a red square", None, cfg.replace(injection=False), seed=1, progress=False)
    plain = generate(tiny_pipe, image, "a red square", None, cfg, seed=1, progress=False, inject=False)
    on = generate(tiny_pipe, image, "a red square", None, cfg, seed=1, progress=False)
    assert np.array_equal(off.video, plain.video) and np.abs(on.video - off.video).max() > 1e-3
    assert off.features is None  # nothing is inverted for injection that is off


def test_optimisation_off_runs_no_iteration(tiny_pipe, image):
    from anyi2v_lab.method import generate
    from anyi2v_lab.trajectory import Trajectory

    traj = Trajectory.single((20, 20, 60, 60), [(40, 40), (80, 40)], image_size=(128, 128), query_points=[(40, 40)])
    cfg = AnyI2VConfig(**SMALL)
    off = generate(tiny_pipe, image, "a red square", traj, cfg.replace(optimisation=False), seed=1, progress=False)
    on = generate(tiny_pipe, image, "a red square", traj, cfg, seed=1, progress=False)
    without = generate(tiny_pipe, image, "a red square", None, cfg, seed=1, progress=False)
    assert off.record.iterations == [] and len(on.record.iterations) == 2 * 2
    assert np.array_equal(off.video, without.video) and np.abs(on.video - off.video).max() > 1e-3
