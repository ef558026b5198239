"""Measuring toy-world videos: a colour tracker, motion glitches and colour binding.

Every object of the toy world has a saturated colour of its own and backgrounds are muted, so "pixels
within TAU of the object's RGB" find it. A frame's blobs are the 8-connected components of those
pixels; the object's position is the centroid of the largest blob. All functions take a batch of videos
(B, F, H, W, 3) uint8 (numpy or torch, any device) or one video (F, H, W, 3). Sizes are stated at 64 px
and scale with the frame area.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as Fn

TAU = 70.0            # RGB distance (0..255) to count a pixel as the object's colour
MIN_AREA = 6          # px at 64x64: smaller blobs are speckle, not an object
DUP_FRACTION = 0.25   # blobs smaller than this fraction of the frame's largest are ignored
DUP_AREA = 1.3        # "appears twice": 2+ blobs holding more than this times the object's median area
# Largest per-frame jump of a tracked centroid on the data (toy world, 64 px), measured by
# calibrate_jump_threshold over 2,048 training-sampler videos: "clean" over object frames whose box
# touches no other box in either frame (the objects' own motion, at most scene.MAX_SPEED = 2.6 px, plus
# tracking noise), "all" over every frame (a partly hidden object's visible centroid can move faster).
DATA_MAX_JUMP = {"clean": 3.16, "all": 12.3}


def _as_video_batch(frames) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(frames)) if not isinstance(frames, torch.Tensor) else frames
    if t.dim() == 4:
        t = t[None]
    if t.dim() != 5 or t.shape[-1] != 3:
        raise ValueError(f"frames must be (B, F, H, W, 3) or (F, H, W, 3) uint8, got shape {tuple(t.shape)}")
    return t


def components(mask: torch.Tensor, method: str = "auto", max_iter: int = 256) -> torch.Tensor:
    """8-connected components. mask: (N, H, W) bool -> labels (N, H, W) int64, 0 for background, else
    1 + the largest flat pixel index of the component (so labels are unique per component and do not
    depend on the method). "torch" propagates labels by 3x3 max-pooling (any device); "scipy" uses
    scipy.ndimage.label (much faster on a CPU); "auto" picks scipy for CPU tensors."""
    if method not in ("auto", "torch", "scipy"):
        raise ValueError(f"method must be 'auto', 'torch' or 'scipy', got {method!r}")
    N, H, W = mask.shape
    if method == "scipy" or (method == "auto" and mask.device.type == "cpu"):
        from scipy import ndimage
        st = np.zeros((3, 3, 3), dtype=bool)
        st[1] = True                                    # connect within a frame, never across frames
        lab, n = ndimage.label(mask.cpu().numpy(), structure=st)
        top = np.zeros(n + 1, dtype=np.int64)
        flat = np.broadcast_to(np.arange(1, H * W + 1).reshape(1, H, W), lab.shape)
        np.maximum.at(top, lab.ravel(), flat.ravel())
        top[0] = 0
        return torch.from_numpy(top[lab]).to(mask.device)
    idx = torch.arange(1, H * W + 1, device=mask.device, dtype=torch.float32).view(1, H, W)
    lab = torch.where(mask, idx, torch.zeros((), device=mask.device))
    m = mask.float()
    for i in range(max_iter):
        new = Fn.max_pool2d(lab[:, None], 3, 1, 1)[:, 0] * m
        if i % 8 == 7 and torch.equal(new, lab):
            break
        lab = new
    return lab.long()


def track_colour(frames, rgb, *, tau: float = TAU, min_area: float | None = None) -> dict:
    """Track one colour per video.

    frames: (B, F, H, W, 3) or (F, H, W, 3) uint8; rgb: (3,) or (B, 3) in 0..255.
    A blob is significant if its area is at least max(min_area, DUP_FRACTION * the frame's largest).
    Returns tensors (leading B dropped for a single video): "centroid" (B, F, 2) (x, y) px of the
    significant blobs' pixels, NaN where absent (a split object keeps a steady centroid; a copy elsewhere
    pulls it away); "area" (B, F) px in significant blobs; "largest" (B, F) px of the largest blob;
    "blobs" (B, F) number of significant blobs; "present" (B, F) bool (largest >= min_area).
    """
    v = _as_video_batch(frames)
    single = v.dim() != (frames.dim() if isinstance(frames, torch.Tensor) else np.asarray(frames).ndim)
    B, F, H, W, _ = v.shape
    col = torch.as_tensor(rgb, dtype=torch.float32, device=v.device).reshape(-1, 3).expand(B, 3)
    min_area = MIN_AREA * H * W / 4096 if min_area is None else min_area
    dist = (v.float() - col[:, None, None, None]).norm(dim=-1)                  # (B, F, H, W)
    lab = components((dist < tau).reshape(B * F, H, W)).flatten(1)
    ones = torch.ones_like(lab, dtype=torch.float32)
    area = torch.zeros(B * F, H * W + 1, device=v.device).scatter_add_(1, lab, ones)
    area[:, 0] = 0
    big = area.amax(1)
    sig = area >= torch.clamp(DUP_FRACTION * big, min=min_area)[:, None]
    sel = sig.gather(1, lab).float()                                           # pixels of significant blobs
    ys, xs = torch.meshgrid(torch.arange(H, device=v.device), torch.arange(W, device=v.device), indexing="ij")
    n = sel.sum(1)
    cen = torch.stack([(sel * (xs.flatten() + 0.5)).sum(1), (sel * (ys.flatten() + 0.5)).sum(1)], -1)
    cen = cen / n.clamp(min=1)[:, None]
    present = big >= min_area
    cen = torch.where(present[:, None], cen, torch.full_like(cen, float("nan")))
    out = {"centroid": cen.view(B, F, 2), "area": n.view(B, F), "largest": big.view(B, F),
           "blobs": sig.sum(1).view(B, F), "present": present.view(B, F)}
    return {k: x[0] for k, x in out.items()} if single else out


def _colour_lists(cases_or_colours) -> list[list[tuple]]:
    out = []
    for c in cases_or_colours:
        if hasattr(c, "objects"):
            out.append([o.rgb for o in c.objects])
        else:
            out.append([tuple(x) for x in c])
    return out


def track_objects(frames_batch, cases_or_colours, **kw) -> dict:
    """Track every listed colour of every video. Returns track_colour's tensors with an object axis,
    (B, O, F, ...), O = the most objects in a video, and "valid" (B, O) for the real ones."""
    v = _as_video_batch(frames_batch)
    cols = _colour_lists(cases_or_colours)
    if len(cols) != v.shape[0]:
        raise ValueError(f"got {v.shape[0]} videos but {len(cols)} colour lists; pass one per video")
    O = max(len(c) for c in cols)
    valid = torch.tensor([[o < len(c) for o in range(O)] for c in cols])
    rgb = torch.tensor([[c[o] if o < len(c) else (0, 0, 0) for o in range(O)] for c in cols], dtype=torch.float32)
    B, F = v.shape[:2]
    t = track_colour(v.repeat_interleave(O, 0), rgb.reshape(B * O, 3).to(v.device), **kw)
    out = {k: x.view(B, O, *x.shape[1:]) for k, x in t.items()}
    out["valid"] = valid.to(v.device)
    return out


def glitch_flags(tracks: dict, threshold: float) -> dict:
    """Per object frame: "jump" (the centroid moved more than ``threshold`` px per frame since the last
    frame it was seen), "dup" (two or more blobs with more than DUP_AREA times the object's median area:
    a second copy), "lost" (absent). Each (B, O, F) bool."""
    cen, present, valid = tracks["centroid"], tracks["present"], tracks["valid"][..., None]
    B, O, F, _ = cen.shape
    jump = torch.zeros(B, O, F, dtype=torch.bool, device=cen.device)
    last = cen[:, :, 0]
    last_f = torch.where(present[:, :, 0], 0, -1).to(cen.device)
    for f in range(1, F):
        seen = last_f >= 0
        d = (cen[:, :, f] - last).norm(dim=-1)
        jump[:, :, f] = present[:, :, f] & seen & (d > threshold * (f - last_f).clamp(min=1))
        last = torch.where(present[:, :, f, None], cen[:, :, f], last)
        last_f = torch.where(present[:, :, f], f, last_f)
    # an object split by an occluder also makes two blobs, but not more area than the whole object
    med = torch.where(present, tracks["area"], torch.nan).nanmedian(-1).values[..., None]
    dup = (tracks["blobs"] >= 2) & (tracks["area"] > DUP_AREA * med)
    return {"jump": jump & valid, "dup": dup & valid, "lost": ~present & valid}


def motion_glitch_rate(frames_batch, cases_or_colours, *, threshold: float | None = None, **kw) -> dict:
    """Fraction of frames with a motion glitch: some tracked object jumps further than the data ever
    moves (``threshold`` px per frame; default DATA_MAX_JUMP["clean"] scaled to the frame size) or
    appears twice. Also the jump-only and duplicate-only rates, lost-object frames, and per-video rates."""
    v = _as_video_batch(frames_batch)
    if threshold is None:
        threshold = DATA_MAX_JUMP["clean"] * v.shape[3] / 64
    fl = glitch_flags(track_objects(v, cases_or_colours, **kw), threshold)
    jump, dup = fl["jump"].any(1), fl["dup"].any(1)                           # (B, F)
    bad = jump | dup
    return {"rate": bad.float().mean().item(), "jump_rate": jump.float().mean().item(),
            "dup_rate": dup.float().mean().item(), "lost_rate": fl["lost"].any(1).float().mean().item(),
            "per_video": bad.float().mean(1).cpu(), "threshold": float(threshold)}


def colour_binding(frames_batch, cases_or_colours, palette: dict | None = None, **kw) -> dict:
    """Does each video show exactly its caption's colours? A palette colour is present when its largest
    blob reaches the minimum area in at least half of the frames. Returns "accuracy" (videos whose
    present set equals the caption's), "recall" (caption colours present), "extra" (videos showing a
    palette colour not in the caption)."""
    from anyi2v_lab.toy.world import COLOURS
    palette = COLOURS if palette is None else palette
    v = _as_video_batch(frames_batch)
    cols = _colour_lists(cases_or_colours)
    names = list(palette)
    all_rgb = [list(palette.values())] * v.shape[0]
    pres = track_objects(v, all_rgb, **kw)["present"].float().mean(-1) >= 0.5   # (B, P)
    want = torch.tensor([[tuple(palette[nm]) in [tuple(c) for c in cs] for nm in names] for cs in cols],
                        device=pres.device)
    return {"accuracy": (pres == want).all(1).float().mean().item(),
            "recall": (pres & want).sum().item() / max(want.sum().item(), 1),
            "extra": (pres & ~want).any(1).float().mean().item(), "per_video": (pres == want).all(1).cpu()}


def motion_stats(frames_batch, cases_or_colours, *, threshold: float | None = None, **kw) -> dict:
    """The probe's table: mean speed and acceleration (px/frame, over frames where the object is seen in
    consecutive frames), max jump, area coefficient of variation, frames with more than one blob of a
    colour ("multi_blob", the probe's "dup frames") and with a copy ("dup", as in glitch_flags)."""
    v = _as_video_batch(frames_batch)
    t = track_objects(v, cases_or_colours, **kw)
    threshold = DATA_MAX_JUMP["clean"] * v.shape[3] / 64 if threshold is None else threshold
    fl = glitch_flags(t, threshold)
    c, ok = t["centroid"], t["present"] & t["valid"][..., None]
    vel = c[:, :, 1:] - c[:, :, :-1]
    ok2 = ok[:, :, 1:] & ok[:, :, :-1]
    sp = vel.norm(dim=-1)[ok2]
    acc = (vel[:, :, 1:] - vel[:, :, :-1]).norm(dim=-1)[ok2[:, :, 1:] & ok2[:, :, :-1]]
    a = torch.where(ok, t["area"], torch.nan)
    cv = ((a - a.nanmean(-1, keepdim=True)).pow(2).nanmean(-1).sqrt() / a.nanmean(-1))[t["valid"]]
    nan = float("nan")
    return {"speed": sp.mean().item() if sp.numel() else nan, "accel": acc.mean().item() if acc.numel() else nan,
            "max_jump": sp.max().item() if sp.numel() else nan, "area_cv": cv.nanmean().item(),
            "multi_blob": ((t["blobs"] >= 2) & ok).any(1).float().mean().item(),
            "dup": fl["dup"].any(1).float().mean().item(), "jump": fl["jump"].any(1).float().mean().item(),
            "lost": fl["lost"].any(1).float().mean().item()}


def calibrate_jump_threshold(num_videos: int = 2048, seed: int = 123, device="cpu", batch: int = 128) -> dict:
    """Largest per-frame centroid jump of tracked objects on training-sampler data: over object frames
    whose box touches no other object's box in both frames ("clean"), and over all ("all")."""
    from anyi2v_lab.toy.world import COLOURS, render_batch
    g = torch.Generator().manual_seed(seed)
    clean, allj = [], []
    names = list(COLOURS)
    for _ in range(0, num_videos, batch):
        b = render_batch(batch, generator=g, device=device)
        fr = (b["frames"].permute(0, 1, 3, 4, 2) * 255).round().to(torch.uint8)
        sp = b["spec"]
        cols = [[COLOURS[names[int(sp.colour[i, o])]] for o in range(int(sp.n[i]))] for i in range(batch)]
        t = track_objects(fr, cols)
        ok = t["present"] & t["valid"][..., None]
        d = (t["centroid"][:, :, 1:] - t["centroid"][:, :, :-1]).norm(dim=-1)
        ok2 = ok[:, :, 1:] & ok[:, :, :-1]
        bx = b["boxes"]
        valid = sp.valid.to(bx.device)
        lap = torch.zeros(ok.shape, dtype=torch.bool, device=bx.device)
        for i in range(bx.shape[1]):
            for j in range(bx.shape[1]):
                if i != j:
                    bi, bj = bx[:, i], bx[:, j]
                    ov = ((bi[..., 0] < bj[..., 2] + 1) & (bj[..., 0] < bi[..., 2] + 1)
                          & (bi[..., 1] < bj[..., 3] + 1) & (bj[..., 1] < bi[..., 3] + 1))
                    lap[:, i] |= ov & valid[:, j, None]
        clean.append(d[ok2 & ~lap[:, :, 1:] & ~lap[:, :, :-1]])
        allj.append(d[ok2])
    c, a = torch.cat(clean), torch.cat(allj)
    q = torch.tensor([0.99, 0.999, 0.9999])
    return {"clean": c.max().item(), "all": a.max().item(), "clean_q": c.quantile(q).tolist(),
            "all_q": a.quantile(q).tolist(), "n_clean": c.numel(), "n_all": a.numel()}


def frechet_colour_distance(frames_a, frames_b, bins: int = 4) -> float:
    """A quality proxy: Frechet distance between Gaussians fitted to per-frame features of two sets of
    videos (B, F, H, W, 3) uint8. Features: the joint RGB histogram (bins^3 cells, colours and their
    areas) and a 16-bin histogram of gradient magnitude (edge sharpness). Compare with the distance
    between two independent draws of data."""
    def feats(v):
        v = _as_video_batch(v).flatten(0, 1).float()                               # (N, H, W, 3)
        q = (v / 256 * bins).long().clamp(max=bins - 1)
        cell = ((q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]).flatten(1)
        ones = torch.ones_like(cell, dtype=torch.float32)
        hist = torch.zeros(v.shape[0], bins ** 3, device=v.device).scatter_add_(1, cell, ones)
        grey = v.mean(-1)
        g = ((grey[:, 1:, 1:] - grey[:, :-1, 1:]) ** 2 + (grey[:, 1:, 1:] - grey[:, 1:, :-1]) ** 2).sqrt()
        gb = (g / 8).long().clamp(max=15).flatten(1)
        gh = torch.zeros(v.shape[0], 16, device=v.device).scatter_add_(1, gb, torch.ones_like(gb, dtype=torch.float32))
        hist, gh = hist / cell.shape[1], gh / gb.shape[1]
        return torch.cat([hist, gh], 1).double().cpu().numpy()

    from anyi2v_lab.metrics import frechet_distance
    return frechet_distance(feats(frames_a), feats(frames_b))
