"""Plots build from a real tiny-model record and cache, hold the data they claim, and show nothing."""
import subprocess
import sys

import matplotlib
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from anyi2v_lab import plots
from anyi2v_lab.hooks import Capture
from anyi2v_lab.method import AnyI2VConfig, generate
from anyi2v_lab.method.record import InspectionRecord
from anyi2v_lab.trajectory import ObjectTrack, Trajectory

LAYER = "up_blocks.2.attentions.0.transformer_blocks.0.attn1"
RES = "up_blocks.2.resnets.0.residual"
NAMES = (RES, f"{LAYER}.query", f"{LAYER}.probs")
F = 4


@pytest.fixture(scope="module")
def run(tiny_pipe):
    img = np.zeros((128, 128, 3), np.uint8)
    img[40:90, 30:80] = (250, 40, 40)
    traj = Trajectory((ObjectTrack((24, 24, 72, 72), ((48, 48), (80, 56)), query_points=((48, 48),), name="a"),
                       ObjectTrack((70, 70, 118, 118), ((94, 94), (80, 70)), query_points=((94, 94),), name="b")),
                      image_size=(128, 128))
    cfg = AnyI2VConfig(num_frames=F, num_inference_steps=4, inversion_schedule="fast", fast_inversion_steps=2,
                       opt_step=1, opt_iters=2)
    return generate(tiny_pipe, img, "a red square", traj, cfg, seed=0, progress=False, keep_masks=True,
                    keep_pca=True, capture=Capture(NAMES, steps=0))


def panels(fig):
    """The axes that draw images (colour bars excluded)."""
    return [ax for ax in fig.axes if ax.images]


def images_of(fig, row, cols):
    """The data of a row's panels: the map where a map is drawn over a frame (the last image), else the image."""
    axes = panels(fig)[row * cols:(row + 1) * cols]
    return [ax.images[-1].get_array() for ax in axes]


def colorbars(fig):
    return [ax._colorbar for ax in fig.axes if getattr(ax, "_colorbar", None) is not None]


def test_importing_plots_needs_neither_plotly_nor_umap():
    code = "import sys, anyi2v_lab.plots; print(sorted({'plotly', 'umap', 'sklearn'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_labels_use_the_hook_points_short_names():
    assert plots.short_name(f"{LAYER}.query") == "up2.a0.t0.q"
    assert plots.short_name(LAYER) == "up2.a0.t0"
    assert plots.short_name(RES) == "up2.r0.res"
    assert plots.short_name("mid_block.motion_modules.0.output") == "mid.m0.o"
    assert plots.short_name("output") == "output"


def test_frame_maps_lays_tokens_out_and_picks_the_branch(run):
    tokens = run.cache[f"{LAYER}.query"]  # (2, F, N, C): uncond, cond
    maps = plots.frame_maps(run.cache, f"{LAYER}.query")
    h = w = 8
    assert maps.shape == (F, tokens.shape[-1], h, w)
    assert torch.equal(maps[2, :, 3, 5], tokens[1, 2, 3 * w + 5])  # default: the conditional branch
    uncond = plots.frame_maps(run.cache, f"{LAYER}.query", branch="uncond")
    assert torch.equal(uncond[2, :, 3, 5], tokens[0, 2, 3 * w + 5])
    assert torch.equal(plots.frame_maps(run.cache, RES), run.cache[RES][1])
    with pytest.raises(ValueError, match="hw="):
        plots.frame_maps(run.cache, f"{LAYER}.query", hw=(4, 4))
    with pytest.raises(ValueError, match="attention_of_pixel"):
        plots.frame_maps(run.cache, f"{LAYER}.probs")


def test_pca_rgb_is_the_top_three_components_of_all_frames(run):
    maps = plots.frame_maps(run.cache, RES)
    tokens = maps.permute(0, 2, 3, 1).reshape(-1, maps.shape[1]).double()
    centred = tokens - tokens.mean(0)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    comps = vh[:3] * vh[:3].gather(1, vh[:3].abs().argmax(1, keepdim=True)).sign()  # largest loading > 0
    proj = (centred @ comps.T).reshape(F, 8, 8, 3)
    lo, hi = proj.flatten(0, 2).min(0).values, proj.flatten(0, 2).max(0).values
    expected = ((proj - lo) / (hi - lo)).numpy()
    got = plots.pca_rgb(maps, quantile=0.0)
    assert got.shape == (F, 8, 8, 3)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert got.min() == 0 and got.max() == 1


def test_pca_grid_from_record_and_from_cache(run):
    rec = run.record
    fig = plots.plot_pca_frames(rec, images=run.frames)
    assert isinstance(fig, Figure) and len(fig.axes) == (1 + 2) * F
    for r, layer in enumerate(rec.iterations[-1].pca, start=1):
        expected = plots.normalise_rgb(rec.iterations[-1].pca[layer])
        for j, shown in enumerate(images_of(fig, r, F)):
            np.testing.assert_array_equal(shown, expected[j])
    np.testing.assert_array_equal(images_of(fig, 0, F)[1], run.frames[1])
    first = plots.plot_pca_frames(rec, iteration=0, frames=[0, 3])
    assert len(first.axes) == 2 * 2
    np.testing.assert_array_equal(images_of(first, 0, 2)[1],
                                  plots.normalise_rgb(next(iter(rec.iterations[0].pca.values())))[3])
    fig = plots.plot_pca_frames(run.cache, [RES, f"{LAYER}.query"])
    expected = plots.pca_rgb(plots.frame_maps(run.cache, f"{LAYER}.query"))
    np.testing.assert_array_equal(images_of(fig, 1, F)[2], expected[2])
    with pytest.raises(ValueError, match="keep_pca=True"):
        plots.plot_pca_frames(InspectionRecord(iterations=[rec.iterations[0].__class__(
            step_index=0, timestep=1, iteration=0, loss=0.0, count=0.0, skipped=False)]))


def test_explained_variance_is_the_covariance_spectrum(run):
    maps = plots.frame_maps(run.cache, RES)
    curve = plots.variance_curve(maps)
    tokens = maps.permute(0, 2, 3, 1).reshape(-1, maps.shape[1]).double()
    eig = torch.linalg.eigvalsh(torch.cov(tokens.T)).flip(0)
    np.testing.assert_allclose(curve, (eig / eig.sum()).numpy(), rtol=1e-3, atol=1e-7)
    assert abs(curve.sum() - 1) < 1e-4 and np.all(np.diff(curve) <= 1e-7)
    fig = plots.plot_explained_variance(run.cache, [RES, f"{LAYER}.query"], marks=(8, 999))
    per, cum = fig.axes
    np.testing.assert_allclose(per.lines[0].get_ydata(), curve)
    np.testing.assert_allclose(cum.lines[0].get_ydata(), np.cumsum(curve))
    assert [line.get_xdata()[0] for line in cum.lines[2:]] == [8]  # a mark beyond C is not drawn


def test_temporal_consistency_is_one_for_a_static_video_and_one_at_frame_0(run):
    maps = plots.frame_maps(run.cache, RES)
    static = maps[:1].expand(F, -1, -1, -1).clone() + 0.01 * torch.randn(F, *maps.shape[1:],
                                                                        generator=torch.Generator().manual_seed(0))
    assert plots.temporal_consistency(static).min() > 0.99
    moving = plots.temporal_consistency(maps)
    assert moving.shape == (F,) and abs(moving[0] - 1) < 1e-5 and moving[1:].max() < 0.99


def test_tokens_3d_traces_hold_every_token_at_its_pca_coordinates(run):
    maps = plots.frame_maps(run.cache, f"{LAYER}.query")
    fig = plots.plot_tokens_3d(run.cache, f"{LAYER}.query")
    assert [t.name for t in fig.data] == [f"frame {j}" for j in range(F)]
    assert sum(len(t.x) for t in fig.data) == F * 64
    xyz = plots.embed_tokens(plots.tokens_of(maps))
    t2 = fig.data[2]
    np.testing.assert_allclose(np.stack([t2.x, t2.y, t2.z], 1), xyz[2 * 64:3 * 64], rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(t2.customdata)[5], [2, 0, 5])
    labels = np.zeros((F, 8, 8), int)
    labels[:, :4] = 1
    by_label = plots.plot_tokens_3d(maps, color=labels, max_points=100)
    assert [t.name for t in by_label.data] == ["label 0", "label 1"]
    assert sum(len(t.x) for t in by_label.data) == 100
    assert all(np.asarray(t.customdata)[:, 1].max() < 4 for t in by_label.data if t.name == "label 1")
    clusters = plots.plot_tokens_3d(maps, color="cluster", clusters=3)
    assert len(clusters.data) == 3 and sum(len(t.x) for t in clusters.data) == F * 64


def test_cloud_views_draw_the_clouds_points_flat_in_its_colours(run):
    fig = plots.plot_tokens_3d(run.cache, f"{LAYER}.query")
    flat = plots.plot_cloud_views(fig)
    axes = flat.axes
    assert [ax.get_xlabel() + "/" + ax.get_ylabel() for ax in axes] == ["PC 1/PC 2", "PC 1/PC 3", "PC 2/PC 3"]
    t2, dots = fig.data[2], axes[1].collections[2]  # frame 2's tokens on the PC 1 / PC 3 plane
    np.testing.assert_allclose(dots.get_offsets(), np.stack([t2.x, t2.z], 1), rtol=1e-6)
    colorway = fig.layout.template.layout.colorway
    np.testing.assert_allclose(dots.get_facecolor()[0][:3], matplotlib.colors.to_rgb(colorway[2]))
    assert flat._repr_png_()[:4] == b"\x89PNG"


def test_tokens_3d_with_umap_asks_for_a_seeded_3d_embedding(run, monkeypatch):
    # umap-learn's first call compiles for ~10 s; the wiring is what is ours, so a stand-in records it
    calls = {}

    class UMAP:
        def __init__(self, **kw):
            calls.update(kw)

        def fit_transform(self, x):
            calls["n"] = len(x)
            return x[:, :3] * 2

    monkeypatch.setitem(sys.modules, "umap", type(sys)("umap"))
    sys.modules["umap"].UMAP = UMAP
    maps = plots.frame_maps(run.cache, RES)
    fig = plots.plot_tokens_3d(maps, method="umap", seed=7, max_points=64)
    assert calls["n_components"] == 3 and calls["random_state"] == 7 and calls["n"] == F * 64
    assert sum(len(t.x) for t in fig.data) == 64 and fig.layout.scene.xaxis.title.text == "UMAP 1"
    with pytest.raises(ValueError, match="'pca' or 'umap'"):
        plots.plot_tokens_3d(maps, method="tsne")


def test_loss_curves_are_the_record_losses(run):
    rec = run.record
    fig = plots.plot_losses(rec)
    loss_ax, count_ax = fig.axes
    losses = rec.losses()
    assert losses.shape == (2, 2)
    for s in range(2):
        np.testing.assert_allclose(loss_ax.lines[s].get_ydata(), losses[s])
        np.testing.assert_array_equal(loss_ax.lines[s].get_xdata(), [2 * s, 2 * s + 1])
        counts = [it.count for it in rec.iterations if it.step_index == s]
        np.testing.assert_allclose(count_ax.lines[s].get_ydata(), counts)
    assert f"t={rec.timesteps[1]}" in loss_ax.lines[1].get_label()
    with pytest.raises(ValueError, match="trajectory"):
        plots.plot_losses(InspectionRecord())


def test_mask_grid_places_each_mask_in_its_box(run):
    rec = run.record
    for obj in (0, 1):
        grid = plots.mask_grid(rec, iteration=1, obj=obj)
        masks = rec.iterations[1].masks[obj]
        assert grid.shape == (F, 2, *rec.grid_size)
        for j, m in enumerate(masks):
            x0, y0, x1, y1 = rec.grid_boxes[obj, j]
            inside = grid[j, :, y0:y1, x0:x1]
            np.testing.assert_array_equal(inside, m.numpy()[:, :inside.shape[1], :inside.shape[2]])
            outside = grid[j].copy()
            outside[:, y0:y1, x0:x1] = 0
            assert not outside.any()
    fig = plots.plot_masks(rec, iteration=1, obj=1, images=run.frames)
    assert len(panels(fig)) == 3 * F and len(colorbars(fig)) == 1
    grid = plots.mask_grid(rec, iteration=1, obj=1)
    for li in range(2):
        for j, shown in enumerate(images_of(fig, 1 + li, F)):
            np.testing.assert_array_equal(shown, grid[j, li])
    # over the frames, boxes are in frame pixels: grid cells times the frame's size over the grid's
    scale = run.frames.shape[1] / rec.grid_size[0]
    boxes = [p for ax in panels(fig)[F:] for p in ax.patches if isinstance(p, Rectangle)]
    x0, y0, x1, _ = rec.grid_boxes[1, 2]
    assert len(boxes) == 2 * F and boxes[F + 2].get_xy() == (x0 * scale - 0.5, y0 * scale - 0.5)
    assert boxes[F + 2].get_width() == (x1 - x0) * scale
    plain = plots.plot_masks(rec, iteration=1, obj=1, images=run.frames, overlay=False)
    assert all(len(ax.images) == 1 for ax in panels(plain)[F:])
    alone = plots.plot_masks(rec, iteration=1, obj=1)  # without frames: the grid's own cells
    box = [p for p in panels(alone)[2].patches if isinstance(p, Rectangle)][0]
    assert box.get_xy() == (rec.grid_boxes[1, 2, 0] - 0.5, rec.grid_boxes[1, 2, 1] - 0.5)
    with pytest.raises(ValueError, match="obj=5"):
        plots.mask_grid(rec, obj=5)


def test_paths_plot_target_centres_and_distances(run):
    rec = run.record
    centres = plots.box_centres(rec.boxes)
    tracked = centres + np.array([3.0, 4.0])
    tracked[1, 2] = np.nan
    fig = plots.plot_paths(rec, tracked, image=run.frames[0], names=["a", "b"])
    plane, dist = fig.axes
    target_lines = [ln for ln in plane.lines if ln.get_label().endswith("target")]
    np.testing.assert_allclose(target_lines[1].get_xdata(), centres[1, :, 0])
    np.testing.assert_allclose(target_lines[1].get_ydata(), centres[1, :, 1])
    np.testing.assert_allclose(dist.lines[0].get_ydata(), np.full(F, 5.0))
    assert np.isnan(dist.lines[1].get_ydata()[2])
    assert dist.get_title() == f"mean 5.00 px over {2 * F - 1} found object-frames"
    lost = plots.plot_paths(rec, np.full_like(centres, np.nan))
    assert lost.axes[1].get_title() == "tracked object found in no frame"
    assert plane.get_ylim() == (128, 0)  # image convention: y down
    only = plots.plot_paths(rec.boxes, image_size=(128, 128))
    assert len(only.axes) == 1
    from_centres = plots.plot_paths(centres, tracked)
    np.testing.assert_allclose(from_centres.axes[1].lines[0].get_ydata(), np.full(F, 5.0))
    with pytest.raises(ValueError, match="tracked has shape"):
        plots.plot_paths(rec, tracked[:1])


def test_attention_of_a_pixel(run):
    probs = run.cache[f"{LAYER}.probs"]  # (2, F, heads, 64, 64)
    maps, (row, col) = plots.attention_of_pixel(run.cache, f"{LAYER}.probs", pixel=(100, 20), image_size=(128, 128))
    assert (row, col) == (1, 6)  # 8x8 grid of a 128 px image: 16 px a cell
    expected = probs[1, :, :, row * 8 + col].mean(1).reshape(F, 8, 8).numpy()
    np.testing.assert_allclose(maps, expected)
    np.testing.assert_allclose(maps.sum((1, 2)), np.ones(F), rtol=1e-5)  # a softmax row
    one_head, _ = plots.attention_of_pixel(probs[0], pixel=(6, 1), head=1)
    np.testing.assert_allclose(one_head, probs[0, :, 1, 14].reshape(F, 8, 8).numpy())
    fig = plots.plot_attention(run.cache, f"{LAYER}.probs", pixel=(100, 20), image_size=(128, 128),
                               images=run.frames, frames=[0, 2])
    assert len(panels(fig)) == 4 and len(colorbars(fig)) == 1
    np.testing.assert_allclose(images_of(fig, 1, 2)[1], expected[2])
    with pytest.raises(ValueError, match="outside"):
        plots.attention_of_pixel(run.cache, f"{LAYER}.probs", pixel=(130, 5), image_size=(128, 128))
    with pytest.raises(ValueError, match="cross-attention"):
        plots.attention_of_pixel(torch.rand(F, 2, 64, 77), pixel=(1, 1))


def test_image_grid(run):
    fig = plots.plot_images({"condition": run.condition.pixels[0].permute(1, 2, 0).numpy() * 0.5 + 0.5,
                             "frame 0": run.frames[0], "frame 3": run.frames[3]}, cols=2)
    assert len(fig.axes) == 4 and [ax.get_title() for ax in fig.axes[:3]] == ["condition", "frame 0", "frame 3"]
    np.testing.assert_array_equal(fig.axes[2].images[0].get_array(), run.frames[3])
    assert not fig.axes[3].images


def test_videos_side_by_side_hold_the_frames_boxes_and_tracked_points(run):
    free = run.frames[:, ::-1]  # any second video of the same length
    tracked = {"without": np.array([[[10.0, 12.0]] * F, [[np.nan, np.nan]] * F])}
    fig = plots.plot_videos({"with": run.frames, "without": free}, boxes=run.record.boxes, tracked=tracked,
                            frames=(0, F - 1), title="t")
    assert isinstance(fig, Figure) and len(fig.axes) == 4
    np.testing.assert_array_equal(images_of(fig, 0, 2)[1], run.frames[F - 1])
    np.testing.assert_array_equal(images_of(fig, 1, 2)[0], free[0])
    assert [fig.axes[r * 2].get_ylabel() for r in (0, 1)] == ["with", "without"]
    for ax, j in zip(fig.axes, (0, F - 1, 0, F - 1)):
        boxes = [p for p in ax.patches if isinstance(p, Rectangle)]
        assert len(boxes) == 2  # both objects' target boxes, on every row
        x0, y0, x1, y1 = run.record.boxes[0, j]
        assert boxes[0].get_xy() == (x0 - 0.5, y0 - 0.5) and boxes[0].get_width() == x1 - x0
    dots = [ln for ln in fig.axes[2].lines]
    assert len(dots) == 1 and tuple(dots[0].get_xydata()[0]) == (10.0, 12.0)  # the NaN object is not drawn
    assert not fig.axes[0].lines
    default = plots.plot_videos({"a": np.zeros((16, 8, 8, 3), np.uint8)})
    assert [ax.get_title() for ax in default.axes] == [f"frame {j}" for j in (0, 3, 6, 9, 12, 15)]
    with pytest.raises(ValueError, match="different frame counts"):
        plots.plot_videos({"a": run.frames, "b": run.frames[:2]})
    with pytest.raises(ValueError, match="boxes has shape"):
        plots.plot_videos({"a": run.frames}, boxes=run.record.boxes[:, :2])


def test_nothing_is_shown_or_registered_with_pyplot(run):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    figs = [plots.plot_pca_frames(run.record), plots.plot_losses(run.record), plots.plot_masks(run.record),
            plots.plot_paths(run.record), plots.plot_explained_variance(run.cache, [RES]),
            plots.plot_attention(run.cache, f"{LAYER}.probs", pixel=(1, 1)), plots.plot_images([run.frames[0]])]
    assert plt.get_fignums() == before
    assert all(isinstance(f, Figure) and f.canvas.manager is None for f in figs)
    assert figs[-1]._repr_png_().startswith(b"\x89PNG")  # shows itself as a cell's value, no backend needed


def test_frames_and_cells_are_drawn_at_least_3x_and_nearest(run):
    """A 64 px frame must cover >= 192 screen pixels; cells are flat squares (no smoothing)."""
    frames64 = np.stack([np.zeros((64, 64, 3), np.uint8)] * F)
    figs = [plots.plot_videos({"a": frames64, "b": frames64}), plots.plot_images(list(frames64)),
            plots.plot_pca_frames(run.record, images=run.frames), plots.plot_masks(run.record, images=run.frames),
            plots.plot_attention(run.cache, f"{LAYER}.probs", pixel=(1, 1), images=run.frames)]
    for fig in figs:
        fig.draw_without_rendering()  # lays the panels out
        for ax in panels(fig):
            box = ax.get_window_extent()
            assert min(box.width, box.height) >= 192, (fig.get_suptitle(), box.width, box.height)
            assert all(im.get_interpolation() == "nearest" for im in ax.images)


def test_attention_shares_one_scale_with_a_colour_bar_and_overlays_the_frames(run):
    maps, _ = plots.attention_of_pixel(run.cache, f"{LAYER}.probs", pixel=(100, 20), image_size=(128, 128))
    fig = plots.plot_attention(run.cache, f"{LAYER}.probs", pixel=(100, 20), image_size=(128, 128),
                               images=run.frames)
    heat = [ax.images[-1] for ax in panels(fig)[F:]]
    assert {im.get_clim() for im in heat} == {heat[0].get_clim()}  # one scale: 0 to the largest weight shown
    assert heat[0].get_clim() == pytest.approx((0.0, float(maps.max())))
    (bar,) = colorbars(fig)
    assert bar.vmax == pytest.approx(float(maps.max())) and "one scale for every panel" in bar.ax.get_ylabel()
    for ax, j in zip(panels(fig)[F:], range(F)):
        frame, overlay = ax.images
        np.testing.assert_array_equal(frame.get_array(), run.frames[j])  # the map lies over its own frame
        assert overlay.get_extent() == [-0.5, 127.5, 127.5, -0.5]  # 8x8 cells stretched over 128 px
        np.testing.assert_allclose(overlay.get_alpha(), plots._figure.OVERLAY_ALPHA * maps[j] / maps.max(), rtol=1e-5)
    over0 = plots.plot_attention(run.cache, f"{LAYER}.probs", pixel=(100, 20), image_size=(128, 128),
                                 images=run.frames, key_frame=0)  # K/V consistency: every map on frame 0's keys
    assert all(np.array_equal(ax.images[0].get_array(), run.frames[0]) for ax in panels(over0)[F:])
    fixed = plots.plot_attention(run.cache, f"{LAYER}.probs", pixel=(1, 1), vmax=0.5)
    assert {ax.images[0].get_clim() for ax in panels(fixed)} == {(0.0, 0.5)}
    plain = plots.plot_attention(run.cache, f"{LAYER}.probs", pixel=(100, 20), image_size=(128, 128),
                                 images=run.frames, overlay=False)  # the maps alone under the frames' row
    assert all(len(ax.images) == 1 for ax in panels(plain)[F:])
    np.testing.assert_allclose(panels(plain)[F + 1].images[0].get_array(), maps[1])
    assert panels(plain)[0].lines[0].get_xydata().tolist() == [[100.0, 20.0]]  # the query pixel, marked
    in_cells = plots.plot_attention(run.cache, f"{LAYER}.probs", pixel=(6, 1), images=run.frames)
    assert in_cells.axes[0].lines[0].get_xydata().tolist() == [[103.5, 23.5]]  # cell (1, 6)'s centre, in pixels


def test_maps_in_an_image_grid_share_one_scale(run):
    small, large = np.full((8, 8), 0.1), np.linspace(0, 2, 64).reshape(8, 8)
    fig = plots.plot_images({"small": small, "large": large, "frame": run.frames[0]}, label="|dz|")
    a, b, frame = panels(fig)
    assert a.images[0].get_clim() == b.images[0].get_clim() == (0.0, 2.0)  # a flat 0.1 map stays dark
    (bar,) = colorbars(fig)
    assert bar.ax.get_ylabel().startswith("|dz|") and "0 to 2" in bar.ax.get_ylabel()
    assert not colorbars(plots.plot_images([run.frames[0]]))  # colour images need no colour bar


def test_layer_names_are_short_in_titles_and_full_in_the_footnote(run):
    fig = plots.plot_pca_frames(run.cache, [RES, f"{LAYER}.query"])
    assert [ax.get_ylabel() for ax in panels(fig)[::F]] == ["up2.r0.res", "up2.a0.t0.q"]
    note = fig._supxlabel.get_text()
    assert f"up2.a0.t0.q = {LAYER}.query" in note and "zeros" in note  # and why the border ring stands out
    assert plots.plot_pca_frames(run.cache, [RES], notes=False)._supxlabel is None


def test_the_border_ring_is_in_the_features_zero_padding_not_the_drawing(tiny_pipe):
    """What the figures' border note claims: a constant latent has no place in it, yet the features of its
    border cells differ from the inner ones, and only because the convolutions pad with zeros."""
    from anyi2v_lab.hooks import run_with_cache

    unet, name = tiny_pipe.unet, f"{LAYER}.query"
    sample = torch.full((1, 4, 1, 16, 16), 0.3)
    ehs = torch.zeros(1, 77, unet.config.cross_attention_dim)
    convs = [m for m in unet.modules() if isinstance(m, torch.nn.Conv2d) and m.padding != (0, 0)]

    def by_ring(mode):
        """Distance of each ring's features (0: the outer ring) from the centre cells', on a constant input."""
        for m in convs:
            m.padding_mode = mode
        try:
            _, cache = run_with_cache(unet, sample, 501, encoder_hidden_states=ehs, names=[name])
        finally:
            for m in convs:
                m.padding_mode = "zeros"
        maps = plots.frame_maps(cache, name, branch=None)[0]  # (C, 8, 8)
        dist = (maps - maps[:, 3:5, 3:5].mean((1, 2), keepdim=True)).norm(dim=0)
        return np.array([dist[k, k:8 - k].mean().item() for k in range(4)])

    zeros = by_ring("zeros")
    assert zeros.argmax() == 0 and zeros[0] > 3 * zeros[-1]  # the outer ring stands out most
    assert by_ring("replicate").max() < 1e-4  # padding with the edge's own values: no ring, no variation at all
