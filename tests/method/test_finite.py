"""Non-finite numbers are failures: NaN weights, features, losses, latents or frames stop a generation with
:class:`NonFiniteError` (a RuntimeError: exit 1, not bad input) naming where they first appeared."""
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from anyi2v_lab.cli import _is_bad_input
from anyi2v_lab.method import AnyI2VConfig, generate
from anyi2v_lab.method.calls import EagerCalls
from anyi2v_lab.method.feature_bank import InversionCache
from anyi2v_lab.method.finite import FiniteTrail, NonFiniteError, check_finite, check_weights, first_non_finite
from anyi2v_lab.method.inversion import invert_cached
from anyi2v_lab.method.optimize import Passes, eager_passes
from anyi2v_lab.models.lora import LoraSpec, merge_lora
from anyi2v_lab.models.tiny import tiny_pipeline
from anyi2v_lab.trajectory import Trajectory

SMALL = dict(num_frames=4, num_inference_steps=3, inversion_timestep=21, load_feature_step=2, opt_step=1, opt_iters=2)
LAYER = "up_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q"


def moving():
    return Trajectory.single((20, 20, 60, 60), [(40, 40), (80, 40)], image_size=(128, 128), query_points=[(40, 40)])


def test_the_error_is_a_failure_while_running_not_bad_input():
    assert issubclass(NonFiniteError, RuntimeError) and not issubclass(NonFiniteError, ValueError)
    assert not _is_bad_input(NonFiniteError("x"))


def test_the_trail_names_the_first_non_finite_tensor_and_forgets_after_a_check():
    trail = FiniteTrail()
    trail.add(torch.ones(3), "a")
    trail.add(torch.tensor([1.0, float("inf")]), "b")
    trail.add(torch.tensor([float("nan")]), "c")
    with pytest.raises(NonFiniteError, match="first appeared in b$"):
        trail.check()
    trail.add(torch.ones(2), "d")
    trail.check()  # the earlier flags are gone
    with pytest.raises(NonFiniteError, match=r"in x \(1 NaN and 1 infinite of 3 values\); why"):
        check_finite(torch.tensor([float("nan"), float("-inf"), 0.0]), "x", "why")
    named = [("w0", torch.ones(2)), ("idx", torch.arange(3)), ("w1", torch.tensor([0.0, float("nan")]).half()),
             ("w2", torch.tensor([float("inf")]))]
    assert first_non_finite(named) == "w1" and first_non_finite(named[:2]) is None


class Counting(EagerCalls):
    """Eager calls that count the UNet and VAE calls made."""

    made = 0

    def inversion_denoiser(self, unet, latent, embeds):
        Counting.made += 1
        return super().inversion_denoiser(unet, latent, embeds)

    def decode(self, latents):
        Counting.made += 1
        return super().decode(latents)


def test_nan_weights_stop_before_any_work():
    pipe = tiny_pipeline(0)
    with torch.no_grad():
        pipe.unet.get_submodule(LAYER).weight[0, 0] = float("nan")
    with pytest.raises(NonFiniteError, match=rf"in the UNet's weights \({LAYER}.weight\); the model cannot run"):
        generate(pipe, np.zeros((128, 128, 3), np.uint8), "x", moving(), AnyI2VConfig(**SMALL), progress=False,
                 runtime=_runtime(Counting))
    assert Counting.made == 0
    layer = torch.nn.Linear(2, 2)
    with torch.no_grad():
        layer.bias[1] = float("inf")
    with pytest.raises(NonFiniteError, match=r"in the VAE's weights \(bias\) from here"):
        check_weights({"the VAE": layer}, "from here")


def test_a_nan_put_in_the_sampling_latents_names_the_step(tiny_pipe, image):
    def poison(x, ctx):
        return x * float("nan") if ctx.step_index == 1 else None
    for runtime in (None, _runtime(EagerCalls)):
        with pytest.raises(NonFiniteError,
                           match=r"first appeared in the latents after denoising step 1 \(timestep 334\)"):
            generate(tiny_pipe, image, "x", None, AnyI2VConfig(**SMALL), progress=False,
                     edits={"up_blocks.1.resnets.0.residual": poison}, runtime=runtime)


def test_an_accelerated_runtime_passes_through_the_same_checks(tiny_pipe, image):
    from anyi2v_lab.accel import Runtime

    def poison(x, ctx):
        return x * float("nan") if ctx.step_index == 2 else None
    with pytest.raises(NonFiniteError, match=r"the latents after denoising step 2 \(timestep 1\)"):
        generate(tiny_pipe, image, "x", moving(), AnyI2VConfig(**SMALL), progress=False, runtime=Runtime(),
                 edits={"up_blocks.1.resnets.0.residual": poison})


class NaNLoss(EagerCalls):
    """Calls whose optimisation loss turns NaN at iteration 1 of denoising step 1 (a runtime may replace the passes)."""

    @contextmanager
    def optimisation_passes(self, inputs):
        with eager_passes(inputs) as passes:
            iterations = iter(range(100))

            def loss(captured, fits):
                parts, previews = passes.loss(captured, fits)
                if (inputs.step_index, next(iterations)) == (1, 1):
                    parts.loss = parts.loss * float("nan")
                return parts, previews
            yield Passes(passes.forward, passes.fit, loss)


class NaNDecode(EagerCalls):
    def decode(self, latents):
        return super().decode(latents) * float("nan")


def _runtime(calls_class):
    class Bound:
        def bind(self, pipe):
            return calls_class(pipe)
    return Bound()


def test_a_nan_loss_names_the_optimisation_step_and_iteration(tiny_pipe, image):
    with pytest.raises(NonFiniteError, match="first appeared in the alignment loss of the optimisation before "
                                             "denoising step 1, iteration 1$"):
        generate(tiny_pipe, image, "x", moving(), AnyI2VConfig(**SMALL), progress=False, runtime=_runtime(NaNLoss))


def test_nan_decoded_frames_are_named(tiny_pipe, image):
    with pytest.raises(NonFiniteError, match="non-finite values in the decoded frames .*VAE"):
        generate(tiny_pipe, image, "x", None, AnyI2VConfig(**SMALL), progress=False, runtime=_runtime(NaNDecode))


def test_nan_inverted_features_are_named_and_not_cached(tiny_pipe, image):
    from anyi2v_lab.conditions import load_condition

    cfg = AnyI2VConfig(**SMALL)
    pixels = load_condition(image, size=(128, 128)).pixels
    embeds = tiny_pipe.encode_prompt("x", "cpu", 1, False)[0]
    cache = InversionCache()
    bank = invert_cached(tiny_pipe, pixels, "x", embeds, cfg, cache=cache, progress=False)
    layer = sorted(bank.queries)[0]
    bank.queries[layer] = bank.queries[layer] * float("nan")
    with pytest.raises(NonFiniteError, match=f"the inverted query features of {layer}"):
        generate(tiny_pipe, image, "x", None, cfg, progress=False, features=bank)

    def nan_eps(unet, latent, embeds):
        return lambda x, t: torch.full_like(x, float("nan"))
    with pytest.raises(NonFiniteError, match="the inverted residual features of"):
        invert_cached(tiny_pipe, pixels, "another prompt", embeds, cfg, cache=cache, progress=False, denoiser=nan_eps)
    assert len(cache) == 1  # only the finite bank


def _lora(pipe, tmp_path, value):
    w = pipe.unet.get_submodule(LAYER).weight
    down, up = torch.full((4, w.shape[1]), 0.1), torch.full((w.shape[0], 4), 0.1)
    up[3, 2] = value
    path = tmp_path / "style.safetensors"
    save_file({f"unet.{LAYER}.lora_A.weight": down, f"unet.{LAYER}.lora_B.weight": up}, path)
    return path


def test_a_nan_lora_is_refused_before_any_weight_changes(tmp_path):
    pipe = tiny_pipeline(0)
    before = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    with pytest.raises(NonFiniteError,
                       match=rf"style.safetensors'.*factors of unet.{LAYER} \(up\); nothing was merged"):
        merge_lora(pipe, LoraSpec(_lora(pipe, tmp_path, float("nan"))))
    assert all(torch.equal(before[k], v) for k, v in pipe.unet.state_dict().items())


def test_a_merge_that_overflows_is_named(tmp_path):
    pipe = tiny_pipeline(0)
    with pytest.raises(NonFiniteError, match=rf"merging it made unet.{LAYER}.weight non-finite"):
        merge_lora(pipe, LoraSpec(_lora(pipe, tmp_path, 3e38), scale=1e10))


def test_nan_weights_on_disk_are_refused_when_the_model_loads(tmp_path):
    from anyi2v_lab.models.loading import load_pipeline
    from anyi2v_lab.models.tiny import tiny_components
    from helpers.tiny_files import save_base

    parts = tiny_components(0)
    with torch.no_grad():
        parts["vae"].decoder.conv_out.weight[0, 0, 0, 0] = float("inf")
    base = save_base(parts, tmp_path / "base")
    parts["motion_adapter"].save_pretrained(tmp_path / "adapter")
    with pytest.raises(NonFiniteError, match=r"in the VAE's weights \(decoder.conv_out.weight\) \(loaded from base="):
        load_pipeline(base, motion_adapter=tmp_path / "adapter", device="cpu", progress=False)
