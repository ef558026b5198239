"""Views of feature maps across frames: PCA-RGB grids, explained variance, token clouds."""
from __future__ import annotations

import numpy as np
import torch

from ..hooks import short_name
from ..method.pca import pca_fit, pca_project
from ..method.record import InspectionRecord
from ._figure import BORDER_NOTE, add_notes, image_row, name_key, new_figure, pick_frames, show_image
from .data import as_rows, frame_maps, normalise_rgb, pca_rgb, token_index, tokens_of, variance_curve


def _record_rows(record: InspectionRecord, names, iteration: int, quantile: float) -> dict[str, np.ndarray]:
    if not record.iterations:
        raise ValueError("the record has no optimisation iterations: generate with a trajectory and optimisation=true")
    pca = record.iterations[iteration].pca
    if pca is None:
        raise ValueError("the record kept no PCA maps: generate(..., keep_pca=True)")
    names = list(pca) if names is None else list(names)
    return {n: normalise_rgb(pca[n], quantile) for n in names}


def plot_pca_frames(source, names=None, *, iteration: int = -1, frames=None, images=None,
                    quantile: float = 0.01, title: str | None = None, notes: bool = True, **select):
    """PCA-RGB of features, frames side by side, one row per layer (the paper's Fig. 5 view).

    ``source``: an :class:`InspectionRecord` (its ``iterations[iteration].pca``, the aligned layers'
    first three components as the loss saw them; needs ``keep_pca=True``), an ``ActivationCache``
    (``names`` to show, default all; PCA fitted on all frames of each), a mapping label -> ``(F, C, h,
    w)`` or one such tensor. ``images`` ``(F, H, W, 3)`` adds the frames as a top row.

    Each component is scaled over all frames together (its ``quantile`` and ``1 - quantile`` values), so
    one colour is one feature direction in every frame; cells are drawn as flat squares. The one-cell
    ring that often stands out at the image border is in the features, not in the drawing: the UNet's
    3x3 convolutions pad with zeros, so border cells see zeros where inner cells see neighbours, and
    their features differ (a constant input gives features that vary only there). ``notes`` adds a
    footnote saying so and giving the rows' full hook names.
    """
    if isinstance(source, InspectionRecord):
        rows = _record_rows(source, names, iteration, quantile)
    else:
        rows = {n: pca_rgb(m, quantile) for n, m in as_rows(source, names, **select).items()}
    nf = next(iter(rows.values())).shape[0]
    frames = pick_frames(nf, frames)
    extra = images is not None
    fig, axes = new_figure(len(rows) + extra, len(frames))
    if extra:
        image_row(axes[0], images, frames)
    for r, (label, rgb) in enumerate(rows.items(), start=extra):
        for ax, j in zip(axes[r], frames):
            show_image(ax, rgb[j])
        axes[r, 0].set_ylabel(short_name(label), fontsize=7)
    for ax, j in zip(axes[0], frames):
        ax.set_title(f"frame {j}", fontsize=8)
    fig.suptitle(title or "PCA-RGB (first 3 components, fitted on all frames)", fontsize=10)
    if notes:
        add_notes(fig, name_key(rows), BORDER_NOTE)
    return fig


def plot_explained_variance(source, names=None, *, marks=(64,), max_components: int | None = None,
                            title: str | None = None, **select):
    """Variance along each principal component (left, log scale) and cumulated (right), one line per
    feature; dotted lines at the PCA sizes ``marks`` (the method's ``pca_dim``, M = 64 in the paper).

    ``source`` as in :func:`plot_pca_frames` (a cache, a mapping or one tensor); PCA is fitted on the
    tokens of all frames together.
    """
    rows = as_rows(source, names, **select)
    fig, axes = new_figure(1, 2, (4.2, 3.2))
    per, cum = axes[0]
    for label, maps in rows.items():
        curve = variance_curve(maps)[:max_components]
        k = np.arange(1, len(curve) + 1)
        per.plot(k, curve, label=short_name(label))
        cum.plot(k, np.cumsum(curve), label=short_name(label))
    widest = max(m.shape[1] for m in rows.values())
    for m in marks:
        if m <= widest:  # a mark beyond the channel count would only stretch the axis
            cum.axvline(m, color="gray", linestyle=":", linewidth=1)
    per.set_yscale("log")
    per.set_xlabel("component")
    per.set_ylabel("fraction of variance")
    cum.set_xlabel("components kept (M)")
    cum.set_ylabel("cumulative fraction")
    cum.set_ylim(0, 1.02)
    cum.legend(fontsize=7)
    fig.suptitle(title or "PCA spectrum of the features (all frames)", fontsize=10)
    add_notes(fig, name_key(rows))
    return fig


def _labels(color, maps: torch.Tensor, tokens: torch.Tensor, clusters: int, seed: int) -> tuple[np.ndarray, str]:
    nf, _, h, w = maps.shape
    if isinstance(color, str) and color == "frame":
        return token_index(nf, h, w)[:, 0], "frame"
    if isinstance(color, str) and color == "cluster":
        from sklearn.cluster import KMeans  # a dependency of umap-learn, in the lab extra

        km = KMeans(n_clusters=clusters, n_init=4, random_state=seed).fit(tokens.numpy())
        return km.labels_, "cluster"
    if isinstance(color, str):
        raise ValueError(f"color={color!r}: use 'frame', 'cluster' or an array of labels (F, h, w)")
    labels = np.asarray(color).reshape(-1)
    if labels.shape[0] != tokens.shape[0]:
        raise ValueError(f"color has {labels.shape[0]} labels for {tokens.shape[0]} tokens ({nf}x{h}x{w})")
    return labels, "label"


def embed_tokens(tokens: torch.Tensor, method: str = "pca", seed: int = 0) -> np.ndarray:
    """``(n, C) -> (n, 3)``: the first three principal components, or a 3-D UMAP (needs ``umap-learn``,
    in the ``lab`` extra; its first call compiles for ~10 s)."""
    if method == "pca":
        mean, comps = pca_fit(tokens, 3)
        return pca_project(tokens, mean, comps).numpy()
    if method == "umap":
        import warnings

        import umap

        reducer = umap.UMAP(n_components=3, random_state=seed, n_neighbors=min(15, len(tokens) - 1))
        with warnings.catch_warnings():  # a seed makes UMAP single-threaded, and it says so every call
            warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
            return reducer.fit_transform(tokens.numpy())
    raise ValueError(f"method={method!r}: use 'pca' or 'umap'")


def plot_tokens_3d(source, name: str | None = None, *, color="frame", method: str = "pca", clusters: int = 4,
                   max_points: int = 3000, seed: int = 0, title: str | None = None, **select):
    """An interactive (plotly) 3-D cloud of one layer's tokens, one trace per frame or cluster.

    ``source``: a cache and a hook point ``name``, or features ``(F, C, h, w)``. ``color``: ``"frame"``,
    ``"cluster"`` (k-means with ``clusters`` groups) or labels ``(F, h, w)``. ``method``: ``"pca"``
    (first three components, fitted on all tokens) or ``"umap"``. At most ``max_points`` tokens are
    drawn (a seeded sample); hovering shows each token's frame, row and column.
    """
    import plotly.graph_objects as go

    maps = frame_maps(source, name, **select)
    tokens = tokens_of(maps)
    index = token_index(maps.shape[0], maps.shape[2], maps.shape[3])
    labels, kind = _labels(color, maps, tokens, clusters, seed)
    keep = np.arange(len(tokens))
    if len(keep) > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(len(keep), max_points, replace=False))
    xyz = embed_tokens(tokens, method, seed)[keep]
    labels, index = labels[keep], index[keep]
    fig = go.Figure()
    for value in np.unique(labels):
        sel = labels == value
        fig.add_trace(go.Scatter3d(
            x=xyz[sel, 0], y=xyz[sel, 1], z=xyz[sel, 2], mode="markers", name=f"{kind} {value}",
            marker=dict(size=2.5), customdata=index[sel],
            hovertemplate="frame %{customdata[0]}, row %{customdata[1]}, col %{customdata[2]}<extra></extra>"))
    axis = "PC" if method == "pca" else "UMAP"
    fig.update_layout(title=title or f"{short_name(name) if name else 'tokens'}: {method.upper()}, by {kind}",
                      scene=dict(xaxis_title=f"{axis} 1", yaxis_title=f"{axis} 2", zaxis_title=f"{axis} 3"),
                      height=520, margin=dict(l=0, r=0, t=40, b=0), legend=dict(itemsizing="constant"))
    return fig


def plot_cloud_views(cloud):
    """A token cloud from :func:`plot_tokens_3d` as three flat views (axes 1-2, 1-3 and 2-3) in matplotlib,
    in the cloud's own colours: its picture where no JavaScript runs (GitHub, an HTML export without
    plotly.js), shown beside the interactive figure."""
    scene = cloud.layout.scene
    names = [scene.xaxis.title.text or "1", scene.yaxis.title.text or "2", scene.zaxis.title.text or "3"]
    colours = list(cloud.layout.template.layout.colorway or []) or [None]
    fig, axes = new_figure(1, 3, (3.0, 2.8))
    for k, trace in enumerate(cloud.data):
        xyz = np.stack([np.asarray(trace.x, float), np.asarray(trace.y, float), np.asarray(trace.z, float)], 1)
        for ax, (a, b) in zip(axes[0], ((0, 1), (0, 2), (1, 2))):
            ax.scatter(xyz[:, a], xyz[:, b], s=2, color=colours[k % len(colours)], label=trace.name, linewidths=0)
            ax.set_xlabel(names[a], fontsize=8)
            ax.set_ylabel(names[b], fontsize=8)
            ax.tick_params(labelsize=6)
    axes[0, 0].legend(fontsize=6, markerscale=3, loc="best")
    fig.suptitle(f"{cloud.layout.title.text or 'tokens'} (flat views of the 3-D cloud)", fontsize=9)
    return fig
