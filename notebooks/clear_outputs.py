"""Notebooks are committed without outputs: clear them, or check that they are clear.

    python notebooks/clear_outputs.py            # clear every notebook in this folder, in place
    python notebooks/clear_outputs.py --check    # exit 1 and name the notebooks that hold outputs

Cleared: cell outputs, execution counts, per-cell execution metadata (nbclient timings) and saved
widget state. Cell ids and everything else are kept, so a cleared notebook diffs only where it was edited.
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat


def dirty(nb) -> list[str]:
    """What a notebook holds that a committed one should not."""
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None):
            found.append(f"cell {i}: outputs or execution count")
        if "execution" in cell.get("metadata", {}):
            found.append(f"cell {i}: execution metadata")
    if "widgets" in nb.metadata:
        found.append("saved widget state")
    return found


def clear(nb) -> None:
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.get("metadata", {}).pop("execution", None)
    nb.metadata.pop("widgets", None)


def main(argv: list[str]) -> int:
    check = "--check" in argv
    paths = sorted(Path(__file__).resolve().parent.glob("*.ipynb"))
    bad = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        if not dirty(nb):
            continue
        if check:
            bad.append(f"{path.name}: {', '.join(dirty(nb)[:3])}")
        else:
            clear(nb)
            nbformat.write(nb, path)
            print(f"cleared {path.name}")
    for line in bad:
        print(line, file=sys.stderr)
    if bad:
        print("run: python notebooks/clear_outputs.py", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
