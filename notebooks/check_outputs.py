"""Checks that an executed notebook reads anywhere: opened without a kernel (GitHub, nbviewer, an HTML
export), every widget and interactive plot still shows a picture, no progress bar is frozen in an
output, and the file stays small.

    python notebooks/check_outputs.py executed.ipynb ...   # exit 1 and name what is wrong

CI runs these checks on each notebook nbmake executes (``notebooks/conftest.py``), so no notebook runs
twice; ``jupyter nbconvert --to notebook --execute`` gives a file to check by hand.
"""
from __future__ import annotations

import re
import sys

import nbformat

MAX_BYTES = 5 * 2**20
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
INTERACTIVE = (WIDGET_VIEW, "application/vnd.plotly.v1+json")
# tqdm's bar ("40%|####  | 2/5 [00:01<00:02, 1.9it/s]") and its rates
PROGRESS = re.compile(r"\d%\|| \d+(\.\d+)?(it/s|s/it)\b|\?it/s")
IMAGES = ("image/png", "image/jpeg", "image/gif", "image/svg+xml")


def output_texts(output) -> list[str]:
    """The text an output shows: a stream's, or a display's plain text and HTML."""
    if output.get("output_type") == "stream":
        return [output.get("text", "")]
    data = output.get("data", {})
    return [str(data[k]) for k in ("text/plain", "text/html") if k in data]


def problems(nb, max_bytes: int = MAX_BYTES) -> list[str]:
    """What keeps an executed notebook from reading anywhere; empty when nothing does."""
    found = []
    size = len(nbformat.writes(nb).encode("utf-8"))
    if size > max_bytes:
        state = len(nbformat.writes(nbformat.from_dict({"widgets": nb.metadata.get("widgets", {})})))
        found.append(f"the file is {size / 2**20:.1f} MiB (limit {max_bytes / 2**20:.0f} MiB), "
                     f"{state / 2**20:.1f} MiB of it saved widget state")
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        outputs = cell.get("outputs", [])
        has_image = any(k in o.get("data", {}) for o in outputs for k in IMAGES)
        for o in outputs:
            data = o.get("data", {})
            live = [k for k in INTERACTIVE if k in data]
            if live and not has_image:
                found.append(f"cell {i} shows {live[0]} without a static picture "
                             f"({str(data.get('text/plain', ''))[:60]!r}); give it an image/png")
            if any(PROGRESS.search(text) for text in output_texts(o)):
                found.append(f"cell {i} prints a progress bar; pass progress=False or drop the tqdm loop")
    return found


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    bad = 0
    for path in argv:
        for line in problems(nbformat.read(path, as_version=4)):
            print(f"{path}: {line}", file=sys.stderr)
            bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
