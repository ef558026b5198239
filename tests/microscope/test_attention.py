"""Self-attention from a point and cross-attention per word, against direct computations on the captured tensors."""
import numpy as np
import pytest
import torch

from anyi2v_lab.hooks import run_with_cache
from anyi2v_lab.microscope import MicroscopeData
from anyi2v_lab.microscope.attention import attention_from_point

LAYER = "up_blocks.2.attentions.0.transformer_blocks.0.attn1"
CROSS = "up_blocks.2.attentions.0.transformer_blocks.0.attn2"


@pytest.fixture(scope="module")
def one_forward(tiny_pipe, unet_inputs_module):
    sample, t, ehs = unet_inputs_module
    names = [f"{LAYER}.query", f"{LAYER}.key", f"{LAYER}.probs", f"{CROSS}.probs"]
    _, cache = run_with_cache(tiny_pipe.unet, sample, t, encoder_hidden_states=ehs, names=names)
    data = MicroscopeData.from_cache(cache, tiny_pipe, prompt="a red square")
    return cache, data


@pytest.fixture(scope="module")
def unet_inputs_module(tiny_pipe):
    from anyi2v_lab.layout import per_frame

    g = torch.Generator().manual_seed(0)
    sample = torch.randn(1, 4, 3, 16, 16, generator=g)
    cond = tiny_pipe.encode_prompt("a red square", "cpu", 1, False)[0]
    return sample, 500, per_frame(cond, 3)


def test_self_attention_within_a_frame_is_the_layers_own_attention(one_forward):
    cache, data = one_forward
    step = data.feature_steps(f"{LAYER}.query")[0]
    probs = cache[f"{LAYER}.probs"][0]  # (F, heads, N, N): what the layer computed
    h, w = data.grid(f"{LAYER}.query")
    for frame, cell, head in ((0, (2, 3), None), (2, (7, 0), 1), (1, (4, 4), 0)):
        ours = data.self_attention(f"{LAYER}.query", step, frame, cell, head=head, within_frame=True)
        row = probs[frame, :, cell[0] * w + cell[1]]
        expected = row.mean(0) if head is None else row[head]
        assert np.allclose(ours[frame].ravel(), expected.numpy(), atol=1e-6)
        assert np.all(np.delete(ours, frame, axis=0) == 0)


def test_self_attention_over_all_frames_is_one_softmax(one_forward, tiny_pipe):
    cache, data = one_forward
    point = f"{LAYER}.query"
    step = data.feature_steps(point)[0]
    heads = data.heads(point)
    q, k = cache[f"{LAYER}.query"][0], cache[f"{LAYER}.key"][0]  # (F, N, C)
    F_, N, C = k.shape
    d = C // heads
    ours = data.self_attention(point, step, 1, 5)
    # direct: per head, the query's dot products with all F*N keys, one softmax, then the heads' mean
    per_head = []
    for hd in range(heads):
        qh = q[1, 5, hd * d:(hd + 1) * d]
        kh = k[..., hd * d:(hd + 1) * d].reshape(F_ * N, d)
        per_head.append(torch.softmax(kh @ qh / d ** 0.5, 0))
    expected = torch.stack(per_head).mean(0).view(F_, *data.grid(point))
    assert np.allclose(ours, expected.numpy(), atol=1e-6) and abs(ours.sum() - 1) < 1e-5
    assert attention_from_point(q, k, 1, 5, heads, head=0).shape == (F_, N)
    with pytest.raises(IndexError, match="head=9"):
        data.self_attention(point, step, 0, 0, head=9)


def test_cross_attention_per_word_is_the_head_mean_of_its_column(one_forward):
    cache, data = one_forward
    probs = cache[f"{CROSS}.probs"][0]  # (F, heads, N, 77)
    h, w = data.grid(f"{CROSS}.probs")
    positions = [j + 1 for j, _ in enumerate(data.words)]
    assert data.words and len(positions) == len(data.words)
    j = 2
    expected = probs[..., positions[j]].mean(1).reshape(-1, h, w)
    assert np.allclose(data.cross_attention(j), expected.numpy(), atol=1e-6)
    assert np.allclose(data.cross_attention(j, head=1), probs[:, 1, :, positions[j]].reshape(-1, h, w).numpy(),
                       atol=1e-6)
    with pytest.raises(KeyError, match="not in the prompt"):
        data.cross_attention("zebra")
