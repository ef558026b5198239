"""Drawing boxes, paths and masks over generated frames."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from .palette import MASK_ALPHA
from .palette import OBJECT_COLOURS as COLOURS


def draw_overlay(frames: np.ndarray, boxes: np.ndarray | None = None, masks: np.ndarray | None = None,
                 achieved: np.ndarray | None = None, scale: int = 1) -> np.ndarray:
    """frames ``(F, H, W, 3)`` uint8; boxes ``(O, F, 4)`` model pixels; masks ``(O, F, H, W)`` float
    in [0, 1] (tinted); achieved ``(O, F, 2)`` tracked centres (drawn as dots). Target paths are the
    box centres up to each frame. Returns ``(F, H*scale, W*scale, 3)`` uint8."""
    out = []
    for j, frame in enumerate(frames):
        img = frame.astype(np.float32)
        if masks is not None:
            for o in range(masks.shape[0]):
                tint = np.asarray(COLOURS[o % len(COLOURS)], np.float32)
                a = MASK_ALPHA * masks[o, j][..., None]
                img = img * (1 - a) + tint * a
        im = Image.fromarray(img.clip(0, 255).astype(np.uint8))
        if scale > 1:
            im = im.resize((im.width * scale, im.height * scale), Image.Resampling.NEAREST)
        d = ImageDraw.Draw(im)
        for o in range(0 if boxes is None else boxes.shape[0]):
            c = COLOURS[o % len(COLOURS)]
            x0, y0, x1, y1 = boxes[o, j] * scale
            d.rectangle([x0, y0, x1 - 1, y1 - 1], outline=c, width=max(1, scale // 2))
            centres = (boxes[o, : j + 1, :2] + boxes[o, : j + 1, 2:]) / 2 * scale
            if len(centres) > 1:
                d.line([tuple(p) for p in centres], fill=c, width=max(1, scale // 2))
            if achieved is not None and np.isfinite(achieved[o, j]).all():
                x, y = achieved[o, j] * scale
                r = max(2, scale)
                d.ellipse([x - r, y - r, x + r, y + r], fill=(255, 255, 255), outline=c)
        out.append(np.asarray(im))
    return np.stack(out)


def masks_from_record(record, num_objects: int, num_frames: int, image_hw: tuple[int, int]) -> np.ndarray | None:
    """The last optimisation iteration's loss weights per object and frame, averaged over layers and
    resized (nearest) to the image: ``(O, F, H, W)``; None when the record kept no masks."""
    from .method.record import mask_grid

    if not record.iterations or record.iterations[-1].masks is None:
        return None
    out = np.zeros((num_objects, num_frames, *image_hw), np.float32)
    for o in range(num_objects):
        for j, grid in enumerate(mask_grid(record, -1, o).mean(1)):  # (F, Hg, Wg)
            up = Image.fromarray(grid).resize((image_hw[1], image_hw[0]), Image.Resampling.NEAREST)
            out[o, j] = np.asarray(up)
    return out
