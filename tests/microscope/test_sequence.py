"""The microscope on a Wan transformer: per-latent-frame grids in one PCA basis, attention over all tokens."""
import numpy as np
import pytest
import torch

from anyi2v_lab.hooks import run_with_cache
from anyi2v_lab.microscope import MicroscopeData
from anyi2v_lab.microscope.pca import SharedPCA
from anyi2v_lab.microscope.sequence import latent_frame_of, sequence_views, video_frames_of

Q, OUT = "blocks.0.attn1.query", "blocks.1.output"


def test_latent_frames_cover_the_video_as_the_causal_vae_encodes_it():
    spans = [video_frames_of(j) for j in range(5)]  # 17 frames: 1 + 4 x 4
    assert [list(s) for s in spans[:2]] == [[0], [1, 2, 3, 4]] and list(spans[-1]) == [13, 14, 15, 16]
    assert [f for s in spans for f in s] == list(range(17))
    assert all(latent_frame_of(f) == j for j, s in enumerate(spans) for f in s)
    with pytest.raises(ValueError, match="video_frame=-1"):
        latent_frame_of(-1)


@pytest.fixture(scope="module")
def wan_capture(tiny_wan_pipe):
    # 9 frames at 64 px: 3 latent frames of 4 x 4 tokens; the latent output skips the VAE decode
    _, cache = run_with_cache(tiny_wan_pipe, prompt="a red ball", height=64, width=64, num_frames=9,
                              num_inference_steps=2, guidance_scale=1.0, max_sequence_length=16,
                              output_type="latent", generator=torch.Generator().manual_seed(0),
                              names=["b0.sa.q", "b0.sa.k", "b1.o", "b1.x.p"], branch="cond")
    return cache


def test_pca_rgb_per_latent_frame_in_one_basis(wan_capture, tiny_wan):
    data = MicroscopeData(**sequence_views(wan_capture, tiny_wan), num_clusters=3)
    assert data.points == [Q, OUT] and data.attention_points == [Q] and data.num_frames == 3
    entries = wan_capture.entries(OUT)  # each (1, F, h, w, C)
    pca = SharedPCA(torch.cat([e.tensor[0].reshape(-1, 24) for e in entries]))  # one basis, fitted independently
    for step, e in zip(data.steps, entries):
        expected = pca.rgb(e.tensor[0].reshape(-1, 24)).reshape(3, 4, 4, 3)
        np.testing.assert_array_equal(data.pca_rgb(OUT, step), expected)
        assert data.clusters(OUT, step).shape == (3, 4, 4)
    assert [(s.index, s.timestep) for s in data.steps] == [(e.step_index, e.timestep) for e in entries]
    assert entries[0].timestep == 1000.0 and 0 < entries[1].timestep < 1000  # flow matching's float timesteps


def test_attention_from_a_point_spans_every_latent_frame(wan_capture, tiny_wan):
    data = MicroscopeData(**sequence_views(wan_capture, tiny_wan), num_clusters=3)
    step = data.steps[1]
    got = data.self_attention(Q, step, frame=1, cell=(2, 3), head=1)  # (F, h, w)
    q = wan_capture.get(Q, step=1)[0]  # (F, h, w, C), heads of 12 channels
    k = wan_capture.get("blocks.0.attn1.key", step=1)[0]
    logits = (k[..., 12:] * q[1, 2, 3, 12:]).sum(-1) / 12 ** 0.5
    expected = logits.flatten().softmax(0).view(3, 4, 4)
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-5, atol=1e-7)
    assert got.sum() == pytest.approx(1.0, abs=1e-5) and got[0].sum() > 0 and got[2].sum() > 0


def test_cross_attention_lands_on_the_token_grid(wan_capture, tiny_wan):
    views = sequence_views(wan_capture, tiny_wan)
    assert views["grids"]["blocks.1.attn2.probs"] == (4, 4)
    data = MicroscopeData(**views, words=["a", "red", "ball"], num_clusters=3)
    maps = data.cross_attention_words()
    assert maps.shape == (3, 3, 4, 4) and np.isfinite(maps).all()


def test_a_capture_that_is_not_a_sequence_is_refused():
    from anyi2v_lab.hooks.cache import ActivationCache, Entry

    cache = ActivationCache()
    cache.add(Entry(name="blocks.0.output", tensor=torch.zeros(1, 3, 16, 24), timestep=1.0, step_index=0,
                    phase="sampling", branches=("cond",), frames=(0, 1, 2)))
    with pytest.raises(ValueError, match=r"blocks\.0\.output: expected \(F, h, w, C\)"):
        sequence_views(cache)
