"""The inversion cache's key: any change of any weight, of the VAE, the text encoder or the scheduler gives a
fresh inversion; an unchanged model hits the cache."""
import pytest
import torch
from diffusers import DDIMScheduler

from anyi2v_lab.conditions import load_condition
from anyi2v_lab.method import AnyI2VConfig, generate
from anyi2v_lab.method.feature_bank import (
    FeatureBank,
    InversionCache,
    device_sums,
    model_fingerprint,
    scheduler_fingerprint,
    tensor_fingerprint,
)
from anyi2v_lab.method.inversion import clear_inversion_cache, invert_cached, shared_inversion_cache
from anyi2v_lab.models.lora import LoraSpec, merge_lora
from anyi2v_lab.models.tiny import tiny_pipeline

CFG = AnyI2VConfig(num_frames=2, num_inference_steps=2, inversion_timestep=21, load_feature_step=1, opt_step=1,
                   inversion_schedule="fast", fast_inversion_steps=3)
PROMPT = "a red square"
TO_Q = [f"up_blocks.{b}.attentions.{j}.transformer_blocks.0.attn1.to_q" for b in (1, 2, 3) for j in (0, 1, 2)]


@pytest.fixture
def pipe():
    """A fresh tiny pipeline: the tests edit it in place."""
    return tiny_pipeline(seed=0)


@pytest.fixture(scope="module")
def pixels():
    return load_condition(torch.linspace(0, 255, 128 * 128 * 3).reshape(128, 128, 3).byte().numpy(),
                          size=(128, 128)).pixels


def bank_of(pipe, pixels, cache):
    embeds = pipe.encode_prompt(PROMPT, "cpu", 1, False)[0]
    return invert_cached(pipe, pixels, PROMPT, embeds, CFG, cache=cache, progress=False)


def same(a: FeatureBank, b: FeatureBank) -> bool:
    return all(torch.equal(x[k], y[k]) for x, y in ((a.residuals, b.residuals), (a.queries, b.queries)) for k in x)


def assert_fresh_after(pipe, pixels, edit):
    """``edit(pipe)`` between two cached inversions: the second is a new inversion of the edited model,
    equal to an uncached one, and not the stale bank."""
    cache = InversionCache()
    before = bank_of(pipe, pixels, cache)
    edit(pipe)
    after = bank_of(pipe, pixels, cache)
    assert len(cache) == 2 and after is not before
    assert same(after, bank_of(pipe, pixels, None))
    return before, after


def test_weight_edit_through_data_gives_a_fresh_inversion(pipe, pixels):
    """The audit's case: every up-block attn1.to_q scaled by 1.5 through ``.data``, which bumps no
    version counter of the parameter."""
    def edit(pipe):
        for name in TO_Q:
            weight = pipe.unet.get_submodule(name).weight
            version = weight._version
            weight.data.mul_(1.5)
            assert weight._version == version
    before, after = assert_fresh_after(pipe, pixels, edit)
    changed = max((before.queries[k] - after.queries[k]).abs().max().item() for k in before.queries)
    assert changed > 1e-3


def test_weight_edit_under_no_grad_gives_a_fresh_inversion(pipe, pixels):
    def edit(pipe):
        with torch.no_grad():
            pipe.unet.get_submodule(TO_Q[0]).weight.mul_(1.5)
    before, after = assert_fresh_after(pipe, pixels, edit)
    assert not same(before, after)


def test_merged_lora_gives_a_fresh_inversion(pipe, pixels):
    g = torch.Generator().manual_seed(1)
    layer = TO_Q[1]
    features = pipe.unet.get_submodule(layer).weight.shape[1]
    sd = {f"unet.{layer}.lora_A.weight": torch.randn(2, features, generator=g),
          f"unet.{layer}.lora_B.weight": torch.randn(features, 2, generator=g)}
    before, after = assert_fresh_after(pipe, pixels, lambda p: merge_lora(p, LoraSpec("file.safetensors", 0.8), sd=sd))
    assert not same(before, after)


@pytest.mark.parametrize("change", [dict(beta_schedule="scaled_linear"), dict(timestep_spacing="trailing")])
def test_new_scheduler_gives_a_fresh_inversion(pipe, pixels, change):
    def edit(pipe):
        pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config, **change)
    assert_fresh_after(pipe, pixels, edit)


def last_norm(pipe) -> str:
    return [n for n, m in pipe.text_encoder.named_modules() if isinstance(m, torch.nn.LayerNorm)][-1]


def test_vae_and_text_encoder_edits_give_fresh_inversions(pipe, pixels):
    assert_fresh_after(pipe, pixels, lambda p: p.vae.encoder.conv_in.weight.data.mul_(1.1))
    assert_fresh_after(pipe, pixels, lambda p: p.text_encoder.get_submodule(last_norm(p)).weight.data.mul_(1.1))


def test_unchanged_model_hits_the_cache(pipe, pixels, image):
    cache = InversionCache()
    first = bank_of(pipe, pixels, cache)
    pipe.scheduler.set_timesteps(7)  # a generation's step state is not the scheduler's config
    assert bank_of(pipe, pixels, cache) is first
    generate(pipe, image, PROMPT, None, CFG, progress=False)  # hooks attached and removed
    assert bank_of(pipe, pixels, cache) is first
    weight = pipe.unet.get_submodule(TO_Q[0]).weight
    saved = weight.detach().clone()
    weight.data.mul_(2)
    assert bank_of(pipe, pixels, cache) is not first
    weight.data.copy_(saved)  # the key is exact: undoing an edit finds the old bank again
    assert bank_of(pipe, pixels, cache) is first and len(cache) == 2


def test_generations_share_the_process_cache_until_it_is_cleared(pipe, pixels, image):
    """``generate`` inverts into the shared cache; ``clear_inversion_cache`` makes the next one invert again."""
    clear_inversion_cache()
    generate(pipe, image, PROMPT, None, CFG, progress=False)
    assert len(shared_inversion_cache) == 1
    embeds = pipe.encode_prompt(PROMPT, "cpu", 1, False)[0]
    first = invert_cached(pipe, pixels, PROMPT, embeds, CFG, progress=False)  # the default cache
    assert invert_cached(pipe, pixels, PROMPT, embeds, CFG, progress=False) is first
    assert len(shared_inversion_cache) == 2
    clear_inversion_cache()
    assert len(shared_inversion_cache) == 0
    again = invert_cached(pipe, pixels, PROMPT, embeds, CFG, progress=False)
    assert again is not first and same(again, first)
    clear_inversion_cache()


def test_fingerprint_sees_one_bit_of_any_tensor(pipe):
    """A one-bit change of one element, in parameters and buffers across the model."""
    unet = pipe.unet
    tensors = [*unet.parameters()]
    tensors = [*tensors[:: len(tensors) // 12], tensors[-1], *unet.buffers()]
    assert any(not isinstance(t, torch.nn.Parameter) for t in tensors)
    key = model_fingerprint(unet)
    for t in tensors:
        words = t.data.reshape(-1).view(torch.int32)
        k = words.numel() // 2
        words[k] ^= 1
        assert model_fingerprint(unet) != key
        words[k] ^= 1
    assert model_fingerprint(unet) == key


def test_fingerprint_sees_the_set_of_tensors_and_adapter_state(pipe):
    """An unmerged adapter adds parameters (peft wraps a layer with lora_A/lora_B); its scale and its
    switch live outside the tensors (a stand-in with peft's attribute names here)."""
    class Adapter(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lora_A, self.lora_B = torch.nn.Linear(4, 2, bias=False), torch.nn.Linear(2, 4, bias=False)
            self.scaling, self.active_adapters, self.disable_adapters = {"default": 1.0}, ["default"], False

    unet, keys = pipe.unet, set()
    keys.add(model_fingerprint(unet))
    adapter = Adapter()
    unet.get_submodule(TO_Q[0]).add_module("adapter", adapter)
    keys.add(model_fingerprint(unet))
    adapter.scaling["default"] = 0.5
    keys.add(model_fingerprint(unet))
    adapter.disable_adapters = True
    keys.add(model_fingerprint(unet))
    del unet.get_submodule(TO_Q[0]).adapter
    keys.add(model_fingerprint(unet))
    assert len(keys) == 4  # the last is the first again


def test_device_sums_see_every_element_and_its_place():
    """The accelerator path, run on the CPU with a small chunk so that tensors span chunks."""
    g = torch.Generator().manual_seed(0)
    tensors = [torch.randn(5, 3, generator=g), torch.randn(7, generator=g).half(), torch.tensor([True, False]),
               torch.randn(4, generator=g).bfloat16(), torch.arange(3)]
    sums = device_sums(tensors, chunk=4)
    assert len(sums) == 4 + 3 + 1 + 1  # chunks of 4 per width: 15 fp32, 7+4 16-bit, 2 bool, 3 int64 elements
    for t in tensors:
        words = t.view(torch.uint8 if t.dtype == torch.bool else {2: torch.int16, 4: torch.int32, 8: torch.int64}[
            t.element_size()]).reshape(-1)
        for k in range(words.numel()):
            words[k] ^= 1
            assert not (device_sums(tensors, chunk=4) == sums).all(), (t.dtype, k)
            words[k] ^= 1
    first = tensors[0].reshape(-1)
    first[[0, 1]] = first[[1, 0]]  # a swap keeps the values but not their places
    assert not (device_sums(tensors, chunk=4) == sums).all()
    assert (device_sums([t.clone() for t in tensors], chunk=4) == device_sums(tensors, chunk=4)).all()


def test_tensor_and_scheduler_fingerprints():
    x = torch.randn(2, 6)
    assert tensor_fingerprint(x) == tensor_fingerprint(x.clone())
    assert tensor_fingerprint(x) != tensor_fingerprint(x.reshape(3, 4))  # same bytes, another shape
    assert tensor_fingerprint(x.bfloat16()) != tensor_fingerprint(x.half())
    a = DDIMScheduler(beta_schedule="linear")
    b = DDIMScheduler.from_config(a.config)
    b.set_timesteps(5)
    assert scheduler_fingerprint(a) == scheduler_fingerprint(b)
    b.alphas_cumprod[3] += 1e-4
    assert scheduler_fingerprint(a) != scheduler_fingerprint(b)
