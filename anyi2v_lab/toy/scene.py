"""Scene sampling and drawing primitives of the toy world (``world.py`` is the public face).

A ``Spec`` holds a batch of scenes as a few numbers per object: attributes (shape, colour, size class,
depth rank), per-frame centres and half-extents, and background parameters. All are drawn on the CPU
from one ``torch.Generator``; drawing (``world.render_specs``) happens on any device.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import torch

SHAPES = ("circle", "square", "triangle", "star", "cross", "diamond")
COLOURS = {"red": (225, 45, 45), "green": (40, 185, 70), "blue": (45, 85, 230),
           "yellow": (240, 210, 40), "purple": (165, 70, 215), "cyan": (40, 200, 215)}
SIZE_CLASSES = {"small": (5.0, 7.0), "large": (8.5, 11.5)}   # half-extent range, px at 64 px
BACKGROUNDS = ("plain", "gradient", "striped", "checkered", "dotted")
MOTIONS = ("path", "still", "scale", "occlude")
MOTION_PROBS = (0.55, 0.12, 0.18, 0.15)
NUM_OBJECT_PROBS = (0.35, 0.4, 0.25)                         # 1, 2, 3 objects
MODALITIES = ("canny", "hed", "depth", "sketch", "segmentation")
SEG_PALETTE = {"background": (120, 120, 120), "circle": (150, 5, 61), "square": (4, 250, 7),
               "triangle": (204, 5, 255), "star": (235, 255, 7), "cross": (255, 122, 8),
               "diamond": (8, 255, 214)}
MAX_OBJECTS = 3
MAX_SPEED = 2.6        # px per frame at 64 px; the tracked data never moves further
PATH_LENGTH = (8.0, 32.0)
CANDIDATES = 32        # trajectory draws per video; the first that keeps objects apart and inside wins


def to_dev(x: torch.Tensor, device) -> torch.Tensor:
    """Copy a CPU tensor to ``device`` without making the host wait for queued GPU work."""
    device = torch.device(device)
    if device.type == "cuda" and x.device.type == "cpu":
        return x.pin_memory().to(device, non_blocking=True)
    return x.to(device)


def _halfplanes(verts: list[tuple[float, float]]) -> torch.Tensor:
    """Convex polygon -> (E, 3) rows (nx, ny, offset) with outward unit normals: sdf = max(n.q - off)."""
    v = torch.tensor(verts, dtype=torch.float32)
    d = v.roll(-1, 0) - v
    n = torch.stack([d[:, 1], -d[:, 0]], 1)
    n = n / n.norm(dim=1, keepdim=True)
    off = (n * v).sum(1)
    flip = torch.where((n * v.mean(0)).sum(1) - off > 0, -1.0, 1.0)   # centroid must be inside
    return torch.cat([n * flip[:, None], (off * flip)[:, None]], 1)


STAR_INNER = 0.45  # inner radius over tip radius (a regular pentagram has 0.382)


def _star_frame() -> tuple[float, float]:
    """Scale and vertical offset that put a tip-radius-1 star's box at [-1, 1] x [-ey, ey]."""
    tips = [(math.cos(math.radians(-90 + 72 * k)), math.sin(math.radians(-90 + 72 * k))) for k in range(5)]
    xs, ys = [p[0] for p in tips], [p[1] for p in tips]
    return 2 / (max(xs) - min(xs)), (max(ys) + min(ys)) / 2


def _star_sdf(q: torch.Tensor) -> torch.Tensor:
    """Exact signed distance to a five-pointed star pointing up (I. Quilez's sdStar5, y flipped)."""
    sc, cy = _star_frame()
    x, y = (q[..., 0] / sc).abs(), -(q[..., 1] / sc + cy)
    k1x, k1y = 0.809016994375, -0.587785252292
    for kx, ky in ((k1x, k1y), (-k1x, k1y)):
        d = (kx * x + ky * y).clamp(min=0)
        x, y = x - 2 * d * kx, y - 2 * d * ky
    x, y = x.abs(), y - 1
    bx, by = STAR_INNER * -k1y, STAR_INNER * k1x - 1
    h = ((x * bx + y * by) / (bx * bx + by * by)).clamp(0, 1)
    return torch.hypot(x - bx * h, y - by * h) * torch.sign(y * bx - x * by) * sc


def _box(hx: float, hy: float) -> torch.Tensor:
    return _halfplanes([(-hx, -hy), (hx, -hy), (hx, hy), (-hx, hy)])


PIECES = {"circle": [], "square": [_box(0.85, 0.85)], "triangle": [_halfplanes([(0, -0.9), (1, 0.9), (-1, 0.9)])],
          "star": [], "cross": [_box(1, 0.34), _box(0.34, 1)],
          "diamond": [_halfplanes([(0, -1), (1, 0), (0, 1), (-1, 0)])]}


def _star_extent() -> float:
    """Height over width of the star's tips: its box half-extent in y once the width is 2."""
    tips = [(math.cos(math.radians(-90 + 72 * k)), math.sin(math.radians(-90 + 72 * k))) for k in range(5)]
    return (max(p[1] for p in tips) - min(p[1] for p in tips)) / (max(p[0] for p in tips) - min(p[0] for p in tips))


# half-extents (x, y) of each shape's box in shape units, in SHAPES order
EXTENTS = torch.tensor([[1, 1], [0.85, 0.85], [1, 0.9], [1, _star_extent()], [1, 1], [1, 1]], dtype=torch.float32)


def shape_sdf(q: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
    """Signed distance in shape units (negative inside). q: (N, ..., 2) positions relative to each
    object's centre divided by its half-extent; cls: (N,) shape index, best on the CPU (no GPU sync).
    Returns (N, ...)."""
    out = torch.empty(q.shape[:-1], device=q.device, dtype=q.dtype)
    cls = cls.cpu()
    for k, name in enumerate(SHAPES):
        idx = (cls == k).nonzero().squeeze(1)
        if idx.numel() == 0:
            continue
        qk = q[to_dev(idx, q.device)]
        if name == "circle":
            d = qk.norm(dim=-1) - 1
        elif name == "star":
            d = _star_sdf(qk)
        else:
            planes = [(to_dev(p[:, :2], q.device), to_dev(p[:, 2], q.device)) for p in PIECES[name]]
            d = torch.stack([((qk[..., None, :] * n).sum(-1) - c).amax(-1) for n, c in planes], 0).amin(0)
        out[to_dev(idx, q.device)] = d
    return out


@dataclass(frozen=True)
class Spec:
    """A batch of B scenes with up to MAX_OBJECTS objects (O) and F frames; tensors on one device."""
    size: int
    n: torch.Tensor          # (B,) objects per scene
    shape: torch.Tensor      # (B, O) index into SHAPES
    colour: torch.Tensor     # (B, O) index into COLOURS (distinct within a scene)
    size_cls: torch.Tensor   # (B, O) index into SIZE_CLASSES
    motion: torch.Tensor     # (B,) index into MOTIONS
    bg_type: torch.Tensor    # (B,) index into BACKGROUNDS
    valid: torch.Tensor = None     # (B, O) bool
    z: torch.Tensor = None         # (B, O) depth rank, 0 = back
    centres: torch.Tensor = None   # (B, O, F, 2) px
    half: torch.Tensor = None      # (B, O, F) half-extent px
    bg_a: torch.Tensor = None      # (B, 3) 0..255
    bg_b: torch.Tensor = None      # (B, 3)
    bg_angle: torch.Tensor = None  # (B,)
    bg_period: torch.Tensor = None  # (B,) px
    bg_phase: torch.Tensor = None  # (B, 2)
    bg_radius: torch.Tensor = None  # (B,) px

    def to(self, device) -> "Spec":
        return replace(self, **{f.name: to_dev(getattr(self, f.name), device) for f in fields(self)
                                if isinstance(getattr(self, f.name), torch.Tensor)})

    def take(self, rows: torch.Tensor) -> "Spec":
        """The scenes ``rows`` (a (N,) index, repeats allowed)."""
        return replace(self, **{f.name: getattr(self, f.name)[rows] for f in fields(self)
                                if isinstance(getattr(self, f.name), torch.Tensor)})

    def select_frames(self, idx: torch.Tensor) -> "Spec":
        """One frame per scene (idx: (B,) frame index): a single-frame Spec, for image batches."""
        ar = torch.arange(idx.shape[0])
        return replace(self, centres=self.centres[ar, :, idx][:, :, None], half=self.half[ar, :, idx][:, :, None])


def _choice(g, probs, n) -> torch.Tensor:
    return torch.multinomial(torch.tensor(probs, dtype=torch.float32), n, replacement=True, generator=g)


def _index(name, value, options) -> int:
    if value not in options:
        raise ValueError(f"{name} must be one of {tuple(options)}, got {value!r}")
    return list(options).index(value)


def check_object_probs(object_probs) -> tuple[float, ...] | None:
    """``None`` or 3 non-negative weights of 1, 2 and 3 objects, not all zero, as a tuple of floats."""
    if object_probs is None:
        return None
    try:
        probs = tuple(float(p) for p in object_probs)
    except (TypeError, ValueError):
        probs = ()
    if len(probs) != 3 or min(probs) < 0 or sum(probs) <= 0:
        raise ValueError(f"object_probs must be 3 non-negative weights for 1, 2, 3 objects (e.g. 0.2,0.35,0.45), "
                         f"got {object_probs!r}")
    return probs


def sample_attributes(B: int, g: torch.Generator, num_objects=None, background=None, motion=None,
                      object_probs=None) -> Spec:
    """What a caption says (and the motion kind): the first draws of every scene. ``object_probs``:
    the chances of 1, 2 and 3 objects (default NUM_OBJECT_PROBS; training may weight crowded scenes)."""
    object_probs = check_object_probs(object_probs)
    if num_objects is not None and num_objects not in (1, 2, 3):
        raise ValueError(f"num_objects must be 1, 2 or 3, got {num_objects!r}")
    if motion == "occlude" and num_objects == 1:
        raise ValueError("motion='occlude' needs num_objects >= 2 (or None)")
    mot = _choice(g, MOTION_PROBS, B) if motion is None else torch.full((B,), _index("motion", motion, MOTIONS))
    n = _choice(g, object_probs or NUM_OBJECT_PROBS, B) + 1 if num_objects is None else torch.full((B,), num_objects)
    n = torch.where(mot == MOTIONS.index("occlude"), n.clamp(min=2), n)
    colour = torch.rand(B, len(COLOURS), generator=g).argsort(1)[:, :MAX_OBJECTS]
    shape = torch.randint(len(SHAPES), (B, MAX_OBJECTS), generator=g)
    size_cls = torch.randint(len(SIZE_CLASSES), (B, MAX_OBJECTS), generator=g)
    bg = (torch.randint(len(BACKGROUNDS), (B,), generator=g) if background is None
          else torch.full((B,), _index("background", background, BACKGROUNDS)))
    return Spec(size=0, n=n, shape=shape, colour=colour, size_cls=size_cls, motion=mot, bg_type=bg)


def _bezier(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """p: (..., 4, 2) control points, t: (F,) -> (..., F, 2)."""
    t = t[:, None]
    w = torch.stack([(1 - t) ** 3, 3 * t * (1 - t) ** 2, 3 * t ** 2 * (1 - t), t ** 3], -2)   # (F, 4, 1)
    return (p[..., None, :, :] * w).sum(-2)


def _trajectories(g, a: Spec, F: int, size: int, h0: torch.Tensor):
    """Centres (B, O, F, 2) and half-extents (B, O, F): smooth Bezier paths under MAX_SPEED, scaling
    ramps, or an occluding pass of object 0 across object 1; CANDIDATES draws per scene."""
    B, O = a.shape.shape
    K, sc = CANDIDATES, size / 64
    def rep(x):
        return x.repeat_interleave(K, 0)
    def u(*s):
        return torch.rand(B * K, *s, generator=g)
    def is_(m):
        return mot == MOTIONS.index(m)
    mot, ext, h0r = rep(a.motion)[:, None], rep(EXTENTS[a.shape]), rep(h0)
    t = torch.linspace(0, 1, F) if F > 1 else torch.zeros(1)
    ks = torch.where(u(O) < 0.5, 0.7 + 0.15 * u(O), 1.2 + 0.2 * u(O))
    ks = torch.where(is_("scale"), ks, torch.ones_like(ks))
    half = h0r[..., None] * (1 + (ks - 1)[..., None] * t)                       # (R, O, F)
    lo = ext * half.amax(-1)[..., None] + 1
    hi = size - lo
    L = (PATH_LENGTH[0] + (PATH_LENGTH[1] - PATH_LENGTH[0]) * u(O)) * sc
    L = torch.where(is_("path") & (u(O) < 0.2), 0.0, L)
    L = torch.where(is_("still"), 0.0, torch.where(is_("scale"), 8 * sc * u(O), L))
    occ = is_("occlude").expand(-1, O) & (torch.arange(O) == 1)
    L = torch.where(occ, 6 * sc * u(O), L)
    p0 = lo + (hi - lo) * u(O, 2)
    p0 = torch.where(occ[..., None], (size / 2 + 16 * sc * (u(O, 2) - 0.5)).clamp(lo, hi), p0)
    th = 2 * math.pi * u(O)
    dirn, perp = torch.stack([th.cos(), th.sin()], -1), torch.stack([-th.sin(), th.cos()], -1)
    d = L[..., None] * dirn
    c = 0.7 * (u(O, 2) - 0.5) * L[..., None]
    ctrl = torch.stack([p0, p0 + d / 3 + perp * c[..., :1], p0 + 2 * d / 3 + perp * c[..., 1:], p0 + d], -2)
    ctrl = torch.maximum(torch.minimum(ctrl, hi[..., None, :]), lo[..., None, :])
    path = _bezier(ctrl, t)                                                         # (R, O, F, 2)
    if F > 1:
        vmax = MAX_SPEED * sc
        step = (path[:, :, 1:] - path[:, :, :-1]).norm(dim=-1).amax(-1)
        k = (vmax / step.clamp(min=1e-6)).clamp(max=1)
        path = path[:, :, :1] + k[..., None, None] * (path - path[:, :, :1])
    # occlusion: object 0 passes across object 1 mid-clip, at a steady speed, slightly off-centre
    v = (1.2 + 0.8 * u(1)) * sc          # plus object 1's drift (<= 0.6 px/frame) stays under MAX_SPEED
    fc = (0.35 + 0.3 * u(1)) * (F - 1)
    off = 0.7 * (u(1) - 0.5) * (half[:, 0, 0] + half[:, 1, 0])[:, None]
    tf = torch.arange(F, dtype=torch.float32)
    cross = path[:, 1] + ((tf - fc) * v)[..., None] * dirn[:, :1] + (off[..., None] * perp[:, :1])
    path[:, 0] = torch.where(is_("occlude")[..., None], cross, path[:, 0])
    # score: frames out of bounds + overlapping pairs (the occluding pair is exempt)
    valid = rep(torch.arange(O)[None] < a.n[:, None])
    bad = ((path < lo[:, :, None]) | (path > hi[:, :, None])).any(-1).any(-1) & valid
    score = bad.sum(1).float()
    gap = 2 * sc
    rad = ext[:, :, None, :] * half[..., None]
    for i in range(O):
        for j in range(i + 1, O):
            lap = ((path[:, i] - path[:, j]).abs() < rad[:, i] + rad[:, j] + gap).all(-1).any(-1)
            exempt = is_("occlude")[:, 0] & (i == 0) & (j == 1)
            score = score + (lap & valid[:, i] & valid[:, j] & ~exempt).float()
    best = score.view(B, K).argmin(1) + torch.arange(B) * K
    path = torch.maximum(torch.minimum(path[best], hi[best][:, :, None]), lo[best][:, :, None])
    return path, half[best]


def sample_specs(B: int, g: torch.Generator, *, num_frames: int = 16, size: int = 64, num_objects=None,
                 background=None, motion=None, reject=None, object_probs=None) -> Spec:
    """B scenes. ``reject(spec) -> (B,) bool`` marks attribute draws to redraw (the held-out captions)."""
    if size < 32 or size % 8:
        raise ValueError(f"size must be a multiple of 8 and >= 32, got {size}")
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    a = sample_attributes(B, g, num_objects, background, motion, object_probs)
    if reject is not None:
        for _ in range(100):
            bad = reject(a)
            if not bad.any():
                break
            r = sample_attributes(B, g, num_objects, background, motion, object_probs)
            fields = ("n", "shape", "colour", "size_cls", "motion", "bg_type")
            redraw = {f: torch.where(bad.view(-1, *[1] * (getattr(a, f).dim() - 1)), getattr(r, f), getattr(a, f))
                      for f in fields}
            a = replace(a, **redraw)
    sc = size / 64
    ranges = torch.tensor(list(SIZE_CLASSES.values()))[a.size_cls]               # (B, O, 2)
    h0 = (ranges[..., 0] + (ranges[..., 1] - ranges[..., 0]) * torch.rand(a.shape.shape, generator=g)) * sc
    z = torch.rand(a.shape.shape, generator=g).argsort(1).argsort(1)
    grey = 70 + 115 * torch.rand(B, 1, generator=g)
    bg_a = (grey + 24 * (torch.rand(B, 3, generator=g) - 0.5)).clamp(40, 215)
    sign = torch.where(torch.rand(B, 1, generator=g) < 0.5, -1.0, 1.0)
    sign = torch.where(grey < 95, 1.0, torch.where(grey > 160, -1.0, sign))
    shift = sign * (20 + 20 * torch.rand(B, 1, generator=g)) + 8 * (torch.rand(B, 3, generator=g) - 0.5)
    bg_b = (bg_a + shift).clamp(40, 215)
    bg_angle = math.pi * torch.rand(B, generator=g)
    # textures stay 3+ latent cells (12+ px) per period: finer ones sit at the x4 latent's Nyquist limit
    bg_period = (12 + 8 * torch.rand(B, generator=g)) * sc
    bg_phase = 2 * math.pi * torch.rand(B, 2, generator=g)
    bg_radius = (1.5 + 1.0 * torch.rand(B, generator=g)) * sc
    centres, half = _trajectories(g, a, num_frames, size, h0)
    return replace(a, size=size, valid=torch.arange(MAX_OBJECTS)[None] < a.n[:, None], z=z, centres=centres,
                   half=half, bg_a=bg_a, bg_b=bg_b, bg_angle=bg_angle, bg_period=bg_period,
                   bg_phase=bg_phase, bg_radius=bg_radius)
