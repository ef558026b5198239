"""Nested values with ``bytes`` inside <-> JSON plus binary buffers, the form of a widget message.

A custom message (``widget.send(content, buffers)``) carries JSON and a list of binary buffers; the
browser puts each buffer back where ``buffer_paths`` says (``js/microscope_logic.js``, ``withBuffers``).
"""
from __future__ import annotations


def split_buffers(value, path: tuple = ()) -> tuple[object, list[list], list[bytes]]:
    """``value`` with every ``bytes`` (or memoryview) in its dicts and lists replaced by ``None``, the
    path (keys and indices) of each, and the buffers in the same order."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return None, [list(path)], [value]
    paths, buffers = [], []
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out[k], p, b = split_buffers(v, (*path, k))
            paths += p
            buffers += b
        return out, paths, buffers
    if isinstance(value, (list, tuple)):
        out = []
        for i, v in enumerate(value):
            x, p, b = split_buffers(v, (*path, i))
            out.append(x)
            paths += p
            buffers += b
        return out, paths, buffers
    return value, paths, buffers
