"""The toy world: seeded procedural videos of 1 to 3 coloured shapes, with captions, ground truth and
first-frame condition images. One batched torch implementation serves GPU training batches and single
seeded cases on CPU.

Coordinates: pixel (row i, column j) has its centre at (x, y) = (j + 0.5, i + 0.5); boxes are
(x0, y0, x1, y1) of the whole shape (occluded parts included) and the centre is the box centre.
Random numbers are drawn on the CPU (a few per object), so a case is the same on every device.
Sizes and speeds are stated at 64 px and scale with the frame size.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as Fn

from anyi2v_lab.toy import scene
from anyi2v_lab.toy.scene import (
    BACKGROUNDS,
    COLOURS,
    MODALITIES,
    MOTIONS,
    SEG_PALETTE,
    SHAPES,
    SIZE_CLASSES,
    Spec,
    sample_specs,
    to_dev,
)

__all__ = ["SHAPES", "COLOURS", "SIZE_CLASSES", "BACKGROUNDS", "MOTIONS", "MODALITIES", "MODALITY_TAGS",
           "CAPTION_WORDS", "SEG_PALETTE", "ToyObject", "ToyCase", "make_case", "heldout_cases",
           "render_batch", "render_specs", "sample_specs", "caption_of", "captions_of", "is_heldout", "Spec"]

MODALITY_TAGS = {"canny": "canny edges", "hed": "soft edges", "depth": "depth map",
                 "sketch": "outline sketch", "segmentation": "segmentation map"}
CAPTION_WORDS = tuple(sorted(
    {"a", "and", "on", "background", *SHAPES, *COLOURS, *SIZE_CLASSES, *BACKGROUNDS}
    | {w for tag in MODALITY_TAGS.values() for w in tag.split()}))
HELDOUT_MODULUS = 20       # one caption in 20 (by a stable hash) never reaches the training sampler
HELDOUT_SEED_BASE = 10**9  # heldout_cases draws its seeds from here on


# ---- captions ------------------------------------------------------------------------------------

def captions_of(spec: Spec) -> list[str]:
    """One caption per scene: 'a small red star and a large blue square on a striped background'
    (objects in index order)."""
    sizes, cols = list(SIZE_CLASSES), list(COLOURS)
    out = []
    for n, sh, co, sz, bg in zip(spec.n.tolist(), spec.shape.tolist(), spec.colour.tolist(),
                                 spec.size_cls.tolist(), spec.bg_type.tolist()):
        names = [f"a {sizes[sz[o]]} {cols[co[o]]} {SHAPES[sh[o]]}" for o in range(n)]
        objs = names[0] if n == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        out.append(f"{objs} on a {BACKGROUNDS[bg]} background")
    return out


def caption_of(spec: Spec, b: int) -> str:
    return captions_of(spec)[b] if spec.n.shape[0] == 1 else captions_of(_row(spec, b))[0]


def _row(spec: Spec, b: int) -> Spec:
    return Spec(size=spec.size, n=spec.n[b:b + 1], shape=spec.shape[b:b + 1], colour=spec.colour[b:b + 1],
                size_cls=spec.size_cls[b:b + 1], motion=spec.motion[b:b + 1], bg_type=spec.bg_type[b:b + 1])


def is_heldout(spec: Spec) -> torch.Tensor:
    """(B,) bool: the caption (objects in any order) belongs to the held-out set (1 in HELDOUT_MODULUS,
    by a stable hash of the bag of (colour, size, shape) and the background)."""
    keys = [f"{bg}:{sorted(zip(co[:n], sz[:n], sh[:n]))}" for n, sh, co, sz, bg in
            zip(spec.n.tolist(), spec.shape.tolist(), spec.colour.tolist(), spec.size_cls.tolist(),
                spec.bg_type.tolist())]
    return torch.tensor([zlib.crc32(k.encode()) % HELDOUT_MODULUS == 0 for k in keys], dtype=torch.bool)


# ---- backgrounds and condition images ---------------------------------------------------------------

def background(s: Spec, H: int, W: int) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1]: plain, gradient, stripes, checks or dots in two muted tones."""
    dev = s.bg_a.device
    x = (torch.arange(W, device=dev) + 0.5).view(1, 1, W)
    y = (torch.arange(H, device=dev) + 0.5).view(1, H, 1)
    ang, per = s.bg_angle.view(-1, 1, 1), s.bg_period.view(-1, 1, 1)
    ph0, ph1 = s.bg_phase[:, 0].view(-1, 1, 1), s.bg_phase[:, 1].view(-1, 1, 1)
    u = (x - W / 2) * ang.cos() + (y - H / 2) * ang.sin()
    gx = torch.remainder(x + ph0 / (2 * math.pi) * per, per) - per / 2
    gy = torch.remainder(y + ph1 / (2 * math.pi) * per, per) - per / 2
    t = torch.stack([torch.zeros_like(u),
                     (u / (0.7 * W) + 0.5).clamp(0, 1),
                     (0.5 + 1.5 * torch.sin(2 * math.pi * u / per + ph0)).clamp(0, 1),
                     (0.5 + 2.0 * torch.sin(2 * math.pi * x / (1.5 * per) + ph0)
                      * torch.sin(2 * math.pi * y / (1.5 * per) + ph1)).clamp(0, 1),
                     (0.5 - ((gx ** 2 + gy ** 2).sqrt() - s.bg_radius.view(-1, 1, 1))).clamp(0, 1)], 1)
    t = t[torch.arange(t.shape[0], device=dev), s.bg_type][:, None]               # (B, 1, H, W)
    return (s.bg_a[:, :, None, None] * (1 - t) + s.bg_b[:, :, None, None] * t) / 255


def _blur(x: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    k = torch.exp(-torch.arange(-2, 3, device=x.device, dtype=x.dtype) ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    C = x.shape[1]
    x = Fn.conv2d(Fn.pad(x, (2, 2, 0, 0), mode="replicate"), k.view(1, 1, 1, 5).expand(C, 1, 1, 5), groups=C)
    return Fn.conv2d(Fn.pad(x, (0, 0, 2, 2), mode="replicate"), k.view(1, 1, 5, 1).expand(C, 1, 5, 1), groups=C)


def _gradients(img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sobel gradients of the channel with the largest magnitude (as cv2.Canny does on colour input).
    img: (B, C, H, W) -> gx, gy: (B, H, W)."""
    sob = to_dev(torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]]), img.device)
    C = img.shape[1]
    p = Fn.pad(img, (1, 1, 1, 1), mode="replicate")
    gx = Fn.conv2d(p, sob.view(1, 1, 3, 3).expand(C, 1, 3, 3), groups=C)
    gy = Fn.conv2d(p, sob.t().reshape(1, 1, 3, 3).expand(C, 1, 3, 3), groups=C)
    best = (gx ** 2 + gy ** 2).argmax(1, keepdim=True)
    return gx.gather(1, best)[:, 0], gy.gather(1, best)[:, 0]


def canny(img: torch.Tensor, low: float = 60.0, high: float = 130.0) -> torch.Tensor:
    """Canny edges (B, H, W) float {0, 1} of (B, 3, H, W) images in [0, 1]: Gaussian blur (sigma 1),
    Sobel on the strongest channel, non-maximum suppression, hysteresis; thresholds on a 0..255 scale."""
    gx, gy = _gradients(_blur(img * 255))
    mag = (gx ** 2 + gy ** 2).sqrt()
    ang = torch.remainder(torch.rad2deg(torch.atan2(gy, gx)), 180)
    bins = torch.remainder(((ang + 22.5) // 45).long(), 4)                     # 0, 45, 90, 135 degrees
    H, W = mag.shape[-2:]
    p = Fn.pad(mag, (1, 1, 1, 1))

    def sh(dx, dy):
        return p[:, 1 + dy:1 + dy + H, 1 + dx:1 + dx + W]

    keep = torch.zeros_like(mag, dtype=torch.bool)
    for b, (dx, dy) in enumerate([(1, 0), (1, 1), (0, 1), (-1, 1)]):
        keep |= (bins == b) & (mag > sh(-dx, -dy)) & (mag >= sh(dx, dy))
    nms = mag * keep
    weak, edges = nms >= low, (nms >= high).float()
    for _ in range(12):
        edges = (Fn.max_pool2d(edges[:, None], 3, 1, 1)[:, 0] > 0) & weak
        edges = edges.float()
    return edges


def condition_images(frame0: torch.Tensor, sdf0: torch.Tensor, s: Spec, order: torch.Tensor) -> dict:
    """Condition images of frame 0, each (B, 3, H, W) in [0, 1]. frame0: (B, 3, H, W); sdf0: (B, O, H, W)
    signed distance in px; order: (B, O) objects back to front."""
    B, O, H, W = sdf0.shape
    dev, ar = frame0.device, torch.arange(B, device=frame0.device)
    gx, gy = _gradients(_blur(frame0 * 255))
    gx2, gy2 = _gradients(_blur(_blur(frame0 * 255), 1.5))
    mag = 0.6 * (gx ** 2 + gy ** 2).sqrt() + 0.4 * (gx2 ** 2 + gy2 ** 2).sqrt()
    hed = _blur((1 - torch.exp(-mag / 90))[:, None])[:, 0]
    y = ((torch.arange(H, device=dev) + 0.5) / H).view(1, H, 1)
    depth = (0.15 + 0.3 * y).expand(B, H, W)
    sketch = torch.ones(B, H, W, device=dev)
    pal = to_dev(torch.tensor([SEG_PALETTE[k] for k in SHAPES], dtype=torch.float32), dev) / 255
    background = to_dev(torch.tensor(SEG_PALETTE["background"], dtype=torch.float32), dev) / 255
    seg = background.view(1, 3, 1, 1).expand(B, 3, H, W)
    for r in range(O):
        o = order[:, r]
        sd, ok = sdf0[ar, o], s.valid[ar, o].view(B, 1, 1)
        cov = (0.5 - sd).clamp(0, 1) * ok
        dome = 0.12 * (-sd / s.half[ar, o, 0].view(B, 1, 1)).clamp(0, 1).sqrt()
        depth = depth * (1 - cov) + (0.55 + 0.3 * r / max(O - 1, 1) + dome) * cov
        sketch = sketch * (1 - cov) + cov
        sketch = sketch * (1 - (1.2 - sd.abs()).clamp(0, 1) * ok)
        seg = torch.where(((sd < 0) & ok)[:, None], pal[s.shape[ar, o]].view(B, 3, 1, 1), seg)

    def grey(m):
        return m[:, None].expand(B, 3, H, W).clamp(0, 1)

    return {"canny": grey(canny(frame0)), "hed": grey(hed), "depth": grey(_blur(depth[:, None])[:, 0]),
            "sketch": grey(sketch), "segmentation": seg.contiguous()}


# ---- rendering -----------------------------------------------------------------------------------

def render_specs(spec: Spec, device: str | torch.device = "cpu", conditions: bool = False) -> dict:
    """Draw a batch of scenes on ``device``.

    Returns {"frames": (B, F, 3, H, W) float in [0, 1], "masks": (B, O, F, H, W) bool visible pixels,
    "boxes": (B, O, F, 4), "centres": (B, O, F, 2)} and, with ``conditions``, "conditions":
    {modality: (B, 3, H, W) float in [0, 1]} of frame 0.
    """
    s = spec.to(device)
    B, O, F = s.shape.shape[0], s.shape.shape[1], s.centres.shape[2]
    H = W = s.size
    ax = torch.arange(W, device=device, dtype=torch.float32) + 0.5
    q = torch.stack(torch.broadcast_tensors(ax.view(1, 1, 1, 1, W), ax.view(1, 1, 1, H, 1)), -1)
    half = s.half[..., None, None]                                            # (B, O, F, 1, 1)
    q = (q - s.centres[:, :, :, None, None, :]) / half[..., None]            # (B, O, F, H, W, 2)
    sdf = scene.shape_sdf(q.reshape(B * O, F, H, W, 2), spec.shape.reshape(-1)).view(B, O, F, H, W) * half
    valid = s.valid[:, :, None, None, None]
    cov = (0.5 - sdf).clamp(0, 1) * valid
    inside = (sdf < 0) & valid
    order = s.z.argsort(dim=1)                                                # back to front
    rgb = to_dev(torch.tensor(list(COLOURS.values()), dtype=torch.float32), device)[s.colour] / 255
    frames = background(s, H, W)[:, None].expand(B, F, 3, H, W)
    for r in range(O):
        o = order[:, r]
        c = cov[torch.arange(B, device=device), o][:, :, None]              # (B, F, 1, H, W)
        frames = frames * (1 - c) + rgb[torch.arange(B, device=device), o][:, None, :, None, None] * c
    covered = torch.zeros_like(inside[:, 0])
    masks = torch.zeros_like(inside)
    for r in reversed(range(O)):
        o = order[:, r]
        ins = inside[torch.arange(B, device=device), o]
        masks[torch.arange(B, device=device), o] = ins & ~covered
        covered = covered | ins
    ext = to_dev(scene.EXTENTS, device)[s.shape]                                   # (B, O, 2)
    rad = ext[:, :, None, :] * s.half[..., None]
    out = dict(frames=frames, masks=masks, centres=s.centres,
               boxes=torch.cat([s.centres - rad, s.centres + rad], -1))
    if conditions:
        out["conditions"] = condition_images(frames[:, 0], sdf[:, :, 0], s, order)
    return out


def render_batch(batch_size: int, *, generator: torch.Generator, device="cpu", num_frames: int = 16,
                 size: int = 64, conditions: bool = False, exclude_heldout: bool = True, object_probs=None) -> dict:
    """A training batch: ``render_specs`` output plus "captions" (list of str) and "spec".
    Held-out captions are redrawn, so the training sampler never shows them."""
    spec = sample_specs(batch_size, generator, num_frames=num_frames, size=size,
                        reject=is_heldout if exclude_heldout else None, object_probs=object_probs)
    out = render_specs(spec, device, conditions=conditions)
    out["captions"] = captions_of(spec)
    out["spec"] = spec
    return out


# ---- single cases --------------------------------------------------------------------------------

@dataclass(frozen=True)
class ToyObject:
    shape: str
    colour: str
    rgb: tuple[int, int, int]
    size: str            # "small" or "large" (at frame 0)
    half_extent: float   # px at frame 0 (half the side of a circle's box)
    depth_rank: int      # 0 = backmost


@dataclass(frozen=True)
class ToyCase:
    """One seeded toy video with its ground truth; numpy arrays, uint8 images (F, H, W, 3)."""
    seed: int
    caption: str
    background: str
    motion: str
    objects: list[ToyObject]
    frames: np.ndarray       # (F, H, W, 3) uint8
    boxes: np.ndarray        # (O, F, 4) float32, (x0, y0, x1, y1) px
    centres: np.ndarray      # (O, F, 2) float32, (x, y) px
    masks: np.ndarray        # (O, F, H, W) bool, visible pixels
    conditions: dict = field(repr=False)  # modality -> (H, W, 3) uint8, of frame 0

    def modality_caption(self, modality: str) -> str:
        """The caption the image model was trained with for a condition image of this modality."""
        if modality == "rgb":
            return self.caption
        if modality not in MODALITY_TAGS:
            raise ValueError(f"modality must be 'rgb' or one of {MODALITIES}, got {modality!r}")
        return f"{self.caption}, {MODALITY_TAGS[modality]}"


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def make_case(seed: int, *, num_objects: int | None = None, background: str | None = None,
              motion: str | None = None, size: int = 64, num_frames: int = 16) -> ToyCase:
    """The seeded case ``seed`` (any caption, held-out or not), rendered on the CPU."""
    spec = sample_specs(1, torch.Generator().manual_seed(int(seed)), num_frames=num_frames, size=size,
                        num_objects=num_objects, background=background, motion=motion)
    return _case_from(spec, int(seed))


def _case_from(spec: Spec, seed: int) -> ToyCase:
    r = render_specs(spec, "cpu", conditions=True)
    n = int(spec.n[0])
    objects = [ToyObject(shape=SHAPES[int(spec.shape[0, o])], colour=list(COLOURS)[int(spec.colour[0, o])],
                         rgb=tuple(COLOURS[list(COLOURS)[int(spec.colour[0, o])]]),
                         size=list(SIZE_CLASSES)[int(spec.size_cls[0, o])], half_extent=float(spec.half[0, o, 0]),
                         depth_rank=int((spec.z[0, :n] < spec.z[0, o]).sum())) for o in range(n)]
    return ToyCase(seed=seed, caption=caption_of(spec, 0), background=BACKGROUNDS[int(spec.bg_type[0])],
                   motion=MOTIONS[int(spec.motion[0])], objects=objects,
                   frames=_to_uint8(r["frames"][0].permute(0, 2, 3, 1)),
                   boxes=r["boxes"][0, :n].numpy().astype(np.float32),
                   centres=r["centres"][0, :n].numpy().astype(np.float32),
                   masks=r["masks"][0, :n].numpy(),
                   conditions={m: _to_uint8(c[0].permute(1, 2, 0)) for m, c in r["conditions"].items()})


def heldout_cases(n: int, seed: int = 0, *, size: int = 64, num_frames: int = 16, **overrides) -> list[ToyCase]:
    """A fixed list of ``n`` cases whose captions the training sampler never produces.

    Case i is ``make_case(s)`` for the i-th seed s >= HELDOUT_SEED_BASE + seed * 10**6 whose caption is
    held out, so each one can be re-made alone from its ``.seed``.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    cases, s = [], HELDOUT_SEED_BASE + int(seed) * 10**6
    while len(cases) < n:
        g = torch.Generator().manual_seed(s)
        attrs = scene.sample_attributes(1, g, **overrides)
        if bool(is_heldout(attrs)[0]):
            cases.append(make_case(s, size=size, num_frames=num_frames, **overrides))
        s += 1
    return cases
