"""Checks of user input (numbers, points, paths, boxes, image sizes, counts, choices) with one error style.

Each check returns the value in a canonical form (floats and tuples) or raises :class:`InputError`, whose
message reads ``location: field = value problem; fix``:

* ``location`` (optional) is where the input came from, e.g. ``trajectory file t.json``;
* ``field`` is the dotted path of what is wrong, e.g. ``objects[0].box[2]``;
* ``value`` is the offending value, shortened; then what is wrong with it and what to give instead.

A module with its own error type (``TrajectoryError``, the widget editor's ``EventError``, ...) subclasses
:class:`InputError` and passes it as ``error=``. A caller that checks a part of a larger input puts the
error in place with :meth:`InputError.within` (``box`` inside ``objects[0]``) and :meth:`InputError.located`
(inside a file); both keep the error's type. Coordinates are pixels of an image of (width, height).
numpy only (the widgets use this module).
"""
from __future__ import annotations

import math
import numbers
import reprlib
from functools import partial
from typing import NoReturn

import numpy as np

MAX_COORD = 1e6  # |coordinate| bound in pixels: rejects garbage early and keeps box arithmetic finite
MAX_IMAGE_SIDE = 1 << 16
_short = reprlib.Repr()
_short.maxstring, _short.maxother, _short.maxlist = 40, 40, 4


class InputError(ValueError):
    """Input that cannot be used, found before any work is done (the command line exits with 2).

    ``field`` is the dotted path of the wrong part ("" when the message is about the whole input) and
    ``location`` where the input came from ("" when given in Python).
    """

    def __init__(self, message: str, *, field: str = "", location: str = ""):
        self.message, self.field, self.location = message, field, location
        text = f"{field} {message}" if field else message
        super().__init__(f"{location}: {text}" if location else text)

    def __reduce__(self):  # pickling (e.g. from a worker process) keeps the parts, not only the text
        return partial(type(self), field=self.field, location=self.location), (self.message,)

    def within(self, parent: str) -> InputError:
        """The same error with its field inside ``parent``: ``box`` within ``objects[0]`` is ``objects[0].box``."""
        if not self.field:
            return type(self)(f"{parent}: {self.message}", location=self.location)
        sep = "" if self.field.startswith("[") else "."
        return type(self)(self.message, field=f"{parent}{sep}{self.field}", location=self.location)

    def located(self, location: str) -> InputError:
        """The same error as found in ``location`` (e.g. ``trajectory file t.json``); a location the error
        already names is kept, being the more precise."""
        return type(self)(self.message, field=self.field, location=self.location or location)


def show(value) -> str:
    """A value as an error message quotes it: its repr, shortened (arrays as lists)."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    return _short.repr(value)


def reject(field: str, value, problem: str, fix: str, *, error: type[InputError] = InputError) -> NoReturn:
    """Raise ``error`` saying ``field = value problem; fix``."""
    raise error(f"= {show(value)} {problem}; {fix}", field=field)


def _is_integer(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def _as_sequence(v):
    """Lists and tuples as they are, arrays as lists, anything else None."""
    if isinstance(v, np.ndarray):
        return v.tolist() if v.ndim else None
    return v if isinstance(v, (list, tuple)) else None


def check_number(v, field: str, *, error: type[InputError] = InputError) -> float:
    """A pixel coordinate: a real number (not a bool), finite and within ``±MAX_COORD``, as a float."""
    fix = "give a finite number of pixels"
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        reject(field, v, "is not a number", fix, error=error)
    try:
        f = float(v)
    except (OverflowError, ValueError, TypeError):  # e.g. an int beyond the float range
        f = math.inf
    if not math.isfinite(f) or abs(f) > MAX_COORD:
        reject(field, v, f"is not a finite pixel coordinate within ±{MAX_COORD:g}", fix, error=error)
    return f


def _numbers(v, n: int, field: str, names: str, error: type[InputError]) -> tuple[float, ...]:
    seq = _as_sequence(v)
    if seq is None or len(seq) != n:
        reject(field, v, f"must be a list of {n} numbers [{names}]", f"give [{names}] in pixels", error=error)
    return tuple(check_number(x, f"{field}[{i}]", error=error) for i, x in enumerate(seq))


def check_point(v, field: str, *, error: type[InputError] = InputError) -> tuple[float, float]:
    """A point ``[x, y]`` (list, tuple or array) as a tuple of floats."""
    return _numbers(v, 2, field, "x, y", error)


def check_points(v, field: str, *, min_len: int = 0, max_len: int | None = None,
                 error: type[InputError] = InputError) -> tuple[tuple[float, float], ...]:
    """A path or a set of points ``[[x, y], ...]`` with ``min_len`` to ``max_len`` points, as a tuple."""
    seq = _as_sequence(v)
    if seq is None or len(seq) < min_len or (max_len is not None and len(seq) > max_len):
        if max_len is None:
            count = f"at least {min_len}"
        else:
            count = f"at most {max_len}" if min_len == 0 else f"{min_len} to {max_len}"
        reject(field, v, f"must be a list of {count} [x, y] point(s)", "give [[x, y], ...] in pixels", error=error)
    return tuple(check_point(p, f"{field}[{i}]", error=error) for i, p in enumerate(seq))


def check_box(v, field: str, *, error: type[InputError] = InputError) -> tuple[float, float, float, float]:
    """A box ``[x0, y0, x1, y1]`` (left, top, right, bottom) with some area, as a tuple of floats."""
    b = _numbers(v, 4, field, "x0, y0, x1, y1", error)
    if not (b[2] > b[0] and b[3] > b[1]):
        reject(field, list(b), "needs x1 > x0 and y1 > y0 (left, top, right, bottom)",
               "give a box with some area, corners in that order (geometry.box_from_corners orders two corners)",
               error=error)
    return b


def check_image_size(v, field: str = "image_size", *, error: type[InputError] = InputError) -> tuple[int, int]:
    """An image size ``[width, height]``: two integers from 1 to ``MAX_IMAGE_SIDE``, as a tuple."""
    seq = _as_sequence(v)
    if seq is None or len(seq) != 2 or not all(_is_integer(s) and 0 < s <= MAX_IMAGE_SIDE for s in seq):
        reject(field, v, f"must be [width, height], positive integers <= {MAX_IMAGE_SIDE}",
               "give the image's size in pixels, e.g. [512, 512]", error=error)
    return int(seq[0]), int(seq[1])


def check_count(v, field: str, *, maximum: int | None = None, example: int = 16,
                error: type[InputError] = InputError) -> int:
    """A positive integer (a number of frames, a width in pixels), at most ``maximum`` if given."""
    if not _is_integer(v) or v < 1 or (maximum is not None and v > maximum):
        limit = "" if maximum is None else f" <= {maximum}"
        reject(field, v, f"must be a positive integer{limit}", f"give e.g. {example}", error=error)
    return int(v)


def check_choice(v, field: str, choices, *, fix: str | None = None, error: type[InputError] = InputError):
    """One of ``choices``; ``fix`` (default: the list of choices) says what each one means."""
    if isinstance(v, (str, numbers.Number)) and v in choices:
        return v
    reject(field, v, "is unknown", fix or f"use one of {', '.join(map(repr, choices))}", error=error)


def check_coords(v, field: str, columns: str, *, leading: str = "...", finite: bool = False,
                 error: type[InputError] = InputError) -> np.ndarray:
    """An array-like of shape ``(leading, k)`` whose last axis holds the k ``columns`` (e.g. ``"x0, y0, x1, y1"``),
    as float64. ``leading`` names the other axes (``"objects, frames"``); ``"..."`` allows any number of
    them. ``finite`` rejects NaN and infinities."""
    k = columns.count(",") + 1
    want = f"give an array of shape ({leading}, {k}) of ({columns})"
    try:
        a = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        reject(field, v, "is not an array of numbers", want, error=error)
    ndim = None if leading == "..." else leading.count(",") + 2
    if a.ndim == 0 or a.shape[-1] != k or (ndim is not None and a.ndim != ndim):
        raise error(f"has shape {a.shape}; {want}", field=field)
    if finite and not np.all(np.isfinite(a)):
        raise error("holds NaN or infinite values; give finite pixel coordinates", field=field)
    return a
