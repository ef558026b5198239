"""Inversion of the condition on a tiny Wan: the latent, the inverse flow ODE and the captured features."""
import torch

from anyi2v_lab.hooks import run_with_cache
from anyi2v_lab.method.wan.config import WanAnyI2VConfig
from anyi2v_lab.method.wan.inversion import encode_condition, feature_names, invert_flow


def test_the_condition_encodes_as_one_normalised_latent_frame(tiny_wan_pipe):
    pixels = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    latent = encode_condition(tiny_wan_pipe.vae, pixels)
    assert latent.shape == (1, 16, 1, 4, 4) and latent.dtype == torch.float32
    vae = tiny_wan_pipe.vae
    with torch.no_grad():
        raw = vae.encode(pixels[:, :, None]).latent_dist.mode()
    mean = torch.tensor(vae.config.latents_mean).view(1, 16, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std).view(1, 16, 1, 1, 1)
    torch.testing.assert_close(latent, (raw - mean) / std)


def test_inverse_flow_euler_steps_and_features_at_the_end(tiny_wan):
    cfg = WanAnyI2VConfig(num_frames=1, height=32, width=32, num_inference_steps=4, inject_steps=1, opt_steps=0,
                          inject_blocks=(1,), inversion_sigma=0.3, inversion_steps=3)
    g = torch.Generator().manual_seed(0)
    latent, embeds = torch.randn(1, 16, 1, 4, 4, generator=g), torch.randn(1, 16, 32, generator=g)
    inv = invert_flow(tiny_wan, latent, embeds, cfg)
    x = latent.clone()  # the ODE by hand: sigma 0 -> 0.1 -> 0.2 -> 0.3, v at the step's start
    with torch.no_grad():
        for a in (0.0, 0.1, 0.2):
            x = x + 0.1 * tiny_wan(x, torch.tensor([a * 1000]), embeds, return_dict=False)[0]
    torch.testing.assert_close(inv.latent, x)
    names = feature_names(cfg)
    _, cache = run_with_cache(tiny_wan, inv.latent, torch.tensor([300.0]), embeds, names=names)
    for name in names:
        torch.testing.assert_close(inv.tensors[name], cache[name][0, 0])
        assert inv.tensors[name].shape == (2, 2, 24)
    assert inv.sigma == 0.3
