"""Static pictures of the widgets: what a notebook shows where nothing runs the widget.

GitHub, nbviewer, an HTML export and nbconvert have no widget front end (or no saved widget state):
they render the next mime type of a cell's output instead. So every widget's display bundle carries,
beside the live view, a PNG drawn here from the widget's own state and a sentence as ``text/plain``.
Front ends with a widget manager (JupyterLab, Notebook 7, VS Code) rank the widget view above any
image and keep showing the live widget.

Pictures are drawn with PIL from arrays the widget already holds, in milliseconds, at the size the
widget shows them (small model frames enlarged, pixelated).
"""
from __future__ import annotations

import base64
import io
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
BACKGROUND = (255, 255, 255)
EMPTY = (43, 43, 43)  # a panel with nothing to show at this step (the live view's colour)
TEXT = (34, 34, 34)


class StaticPicture:
    """Mixin for an anywidget class: its display bundle gains ``image/png`` (:meth:`snapshot`) and a
    ``text/plain`` sentence (:meth:`describe`); the widget view stays the first choice of a front end."""

    def snapshot(self) -> Image.Image:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def _repr_mimebundle_(self, **kwargs):
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None:
            return None
        data, metadata = bundle if isinstance(bundle, tuple) else (bundle, {})
        data = dict(data)
        try:
            data["image/png"] = base64.b64encode(png(self.snapshot())).decode("ascii")
            data["text/plain"] = self.describe()
        except Exception as e:  # noqa: BLE001 - a picture that fails must not hide the live widget
            data["text/plain"] = f"{type(self).__name__} (no static picture: {type(e).__name__}: {e})"
        return data, metadata


def png(image: Image.Image) -> bytes:
    """PNG bytes, compressed well: these are stored in the notebook file."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def decode(data: bytes, mode: str = "RGB") -> Image.Image:
    """A synced PNG (bytes or a memoryview) back to an image."""
    with Image.open(io.BytesIO(bytes(data))) as im:
        return im.convert(mode)


def rgb(array) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(np.asarray(array, dtype=np.uint8)))


def enlarged(image: Image.Image, size) -> Image.Image:
    """``image`` at ``size`` (w, h), nearest neighbour: model cells stay visible as cells."""
    size = (int(size[0]), int(size[1]))
    return image if image.size == size else image.resize(size, Image.Resampling.NEAREST)


def placeholder(size, text: str) -> Image.Image:
    """A dark panel that says why it is empty."""
    im = Image.new("RGB", (int(size[0]), int(size[1])), EMPTY)
    d = ImageDraw.Draw(im)
    d.multiline_text((im.width / 2, im.height / 2), _wrap(text, im.width, 11), fill=(190, 190, 190),
                     font=font(11), anchor="mm", align="center")
    return im


def plural(n: int, word: str, words: str | None = None) -> str:
    """``1 box``, ``2 boxes``."""
    return f"{n} {word if n == 1 else words or word + 's'}"


def box(draw: ImageDraw.ImageDraw, xyxy, fill, scale=(1.0, 1.0), width: int = 2) -> None:
    """A box in image pixels, scaled to the picture, with a dark halo so light colours stay visible."""
    x0, y0, x1, y1 = (float(v) * scale[i % 2] for i, v in enumerate(xyxy))
    draw.rectangle([x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)], outline=(0, 0, 0), width=width + 2)
    draw.rectangle([x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)], outline=fill, width=width)


def polyline(draw: ImageDraw.ImageDraw, points, fill, scale=(1.0, 1.0), width: int = 2, dots: int = 0) -> None:
    """A path in image pixels; ``dots`` > 0 marks each point with a dot of that radius."""
    pts = [(float(x) * scale[0], float(y) * scale[1]) for x, y in points]
    if len(pts) > 1:
        draw.line(pts, fill=(0, 0, 0), width=width + 2)
        draw.line(pts, fill=fill, width=width)
    for x, y in pts if dots else ():
        draw.ellipse([x - dots, y - dots, x + dots, y + dots], fill=fill, outline=(0, 0, 0))


def framed(frame: Image.Image, tint_png: bytes | None, size, boxes, scale) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    """``frame`` with its mask tint pasted on (in place), enlarged to ``size``, each object's box (one per
    object, at this frame) drawn in its colour; the picture and a pen on it, for what the caller adds."""
    from anyi2v_lab.palette import object_colour

    if tint_png is not None:
        tint = decode(tint_png, "RGBA")
        frame.paste(tint, mask=tint)
    shown = enlarged(frame, size)
    draw = ImageDraw.Draw(shown)
    for o, xyxy in enumerate(boxes):
        box(draw, xyxy, object_colour(o), scale)
    return shown, draw


def cross(draw: ImageDraw.ImageDraw, point, fill, scale=(1.0, 1.0), radius: int = 6) -> None:
    x, y = float(point[0]) * scale[0], float(point[1]) * scale[1]
    for w, c in ((4, (0, 0, 0)), (2, fill)):
        draw.line([(x - radius, y), (x + radius, y)], fill=c, width=w)
        draw.line([(x, y - radius), (x, y + radius)], fill=c, width=w)


def panels(items: list[tuple[str, Image.Image]], caption: str = "", per_row: int = 8) -> Image.Image:
    """Titled pictures side by side (``per_row`` a row), a caption under them, on white."""
    pad, title_h = 6, 30
    rows = [items[i:i + per_row] for i in range(0, len(items), per_row)] or [[]]
    cell_w = max((im.width for _, im in items), default=1)
    cell_h = max((im.height for _, im in items), default=1)
    width = pad + max(len(r) for r in rows) * (cell_w + pad)
    lines = _wrap(caption, width - 2 * pad, 12) if caption else ""
    caption_h = 8 + 16 * (lines.count("\n") + 1) if caption else 0
    out = Image.new("RGB", (width, pad + len(rows) * (title_h + cell_h + pad) + caption_h), BACKGROUND)
    d = ImageDraw.Draw(out)
    for r, row in enumerate(rows):
        y = pad + r * (title_h + cell_h + pad)
        for c, (title, im) in enumerate(row):
            x = pad + c * (cell_w + pad)
            d.multiline_text((x, y + title_h - 3), _wrap(title, cell_w, 11), fill=TEXT, font=font(11), anchor="ld",
                             spacing=1)
            out.paste(im, (x, y + title_h))
    if caption:
        d.multiline_text((pad, out.height - caption_h + 4), lines, fill=TEXT, font=font(12), spacing=4)
    return out


@lru_cache(maxsize=None)
def font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _wrap(text: str, width: float, size: int) -> str:
    """``text`` broken into lines no wider than ``width`` pixels in the default font."""
    f, lines = font(size), []
    for paragraph in str(text).split("\n"):
        line = ""
        for word in paragraph.split(" "):
            trial = f"{line} {word}".strip()
            if line and f.getlength(trial) > width:
                lines.append(line)
                line = word
            else:
                line = trial
        lines.append(line)
    return "\n".join(lines)

