"""Packaging facts that a fresh machine depends on."""
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.lower().replace("_", "-")] = version
    return pins


def test_torch_is_pinned_to_the_cpu_wheel_version():
    assert constraints()["torch"] == "2.13.0"
    assert constraints()["diffusers"].startswith("0.42.")


def test_environment_yml_installs_the_same_constraints():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert "-c constraints.txt" in pip
    assert any(item.startswith("-e .[") and "lab" in item and "dev" in item for item in pip)
    assert any(str(d).startswith("python=3.11") for d in env["dependencies"])


def test_installed_versions_match_the_pins():
    from importlib.metadata import version

    for name in ("torch", "diffusers", "transformers", "numpy", "anywidget", "pytest"):
        assert version(name).split("+")[0] == constraints()[name], name


def test_ci_runs_the_readme_test_commands():
    """The README's test block: the install, the inner loop (plain pytest), the full run and the linter;
    CI runs the install, the linter and the full run (which holds the inner loop)."""
    readme = (ROOT / "README.md").read_text()
    block = next(b for b in re.findall(r"```bash\n(.*?)```", readme, re.S) if "pytest" in b)
    install, fast, full, lint = [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]
    assert fast == ".venv/bin/python -m pytest" and full == f"{fast} --full" and lint == ".venv/bin/ruff check ."
    ci = (ROOT / ".ci" / "run").read_text()
    assert install in ci and lint in ci and f"{full} --durations=" in ci
    assert "HF_HUB_OFFLINE=1" in ci and "ffmpeg" in ci


def test_the_readme_opens_with_the_demo_command():
    """The first screen: the first command within 20 lines, at most 5 numbers before it, the demo's
    picture above it (numbers live in benchmarks/README.md and are referred to, not copied)."""
    lines = (ROOT / "README.md").read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("```bash"))
    assert first < 20
    before = "\n".join(lines[:first])
    assert len(re.findall(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])", before)) <= 5
    picture = re.search(r"!\[[^]]*\]\(([^)]+)\)", before)
    assert picture and (ROOT / picture.group(1)).is_file()
    assert "anyi2v-lab demo" in lines[first + 1]


def test_the_readme_layout_names_every_top_level_folder():
    readme = (ROOT / "README.md").read_text()
    layout = readme[readme.index("## Layout"):].split("\n## ")[0]
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    folders = {f.split("/")[0] for f in listed if "/" in f} | {
        "/".join(f.split("/")[:2]) for f in listed if f.startswith("anyi2v_lab/") and f.count("/") >= 2}
    missing = sorted(f for f in folders if f"`{f}/" not in layout and f"`{f}`" not in layout)
    assert not missing, f"README's Layout table does not name {missing}"


@pytest.mark.slow  # two pytest collections in subprocesses
def test_plain_pytest_deselects_the_slow_tests_and_full_runs_them_with_the_notebooks():
    targets = ["tests/end_to_end/test_packaging.py", "notebooks/01_quickstart.ipynb"]

    def collected(*options: str) -> list[str]:
        out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-n", "0",
                              "-p", "no:cacheprovider", *options, *targets], cwd=ROOT, capture_output=True, text=True)
        return [line for line in out.stdout.splitlines() if "::" in line or line.endswith(".ipynb")]

    fast, full = collected(), collected("--full")
    slow = "tests/end_to_end/test_packaging.py::test_wheel_holds_no_training_code_training_log_or_result"
    assert slow not in fast and not [n for n in fast if ".ipynb" in n]
    assert slow in full and "notebooks/01_quickstart.ipynb" in "\n".join(full) and set(fast) < set(full)


def test_license_and_citation():
    """pyproject's licence has its text beside it, and CITATION.cff cites the paper the toolkit implements."""
    assert (ROOT / "LICENSE").read_text().split()[:4] == ["Apache", "License", "Version", "2.0,"]
    assert 'license = { text = "Apache-2.0" }' in (ROOT / "pyproject.toml").read_text()
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0" and citation["license"] == "Apache-2.0"
    paper = citation["preferred-citation"]
    assert paper["title"].startswith("AnyI2V") and paper["year"] == 2025
    assert "arXiv:2507.02857" in [i["value"] for i in paper["identifiers"]]


def test_console_script_and_widgets_subpackage():
    out = subprocess.run([sys.executable, "-m", "anyi2v_lab.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "generate" in out.stdout
    import anyi2v_lab.widgets  # the top-level widgets/ folder, installed as a subpackage
    assert Path(anyi2v_lab.widgets.__file__).parent.name == "widgets"


def wheel_files(tmp: Path) -> list[str]:
    """The file list of the wheel that ``pip wheel .`` builds, from a copy of the working tree's
    tracked and unignored files (so the build leaves nothing in the repository)."""
    import zipfile

    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.splitlines()
    src = tmp / "src"
    for rel in listed:
        if (ROOT / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            (src / rel).write_bytes((ROOT / rel).read_bytes())
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
                    "--no-index", "-q", "-w", str(tmp / "wheel")], check=True, capture_output=True)
    (whl,) = (tmp / "wheel").glob("*.whl")
    return zipfile.ZipFile(whl).namelist()


@pytest.mark.slow
def test_wheel_holds_no_training_code_training_log_or_result(tmp_path):
    """The installed package is the toolkit and the toy model: the code and logs that trained the model
    (training/) and the benchmarks' results stay in the repository."""
    files = wheel_files(tmp_path)
    package = [f for f in files if ".dist-info/" not in f]
    assert "anyi2v_lab/toy/model.py" in package and "anyi2v_lab/toy/weights/unet/config.json" in package
    assert not [f for f in package if f.split("/")[0] in ("training", "benchmarks", "tests", "notebooks", "docs")]
    training_modules = {p.name for p in (ROOT / "training").glob("*.py")} - {"__init__.py"}
    assert not [f for f in package if f.startswith("anyi2v_lab/toy/") and f.split("/")[-1] in training_modules]
    logs_and_results = {p.name for p in (ROOT / "training").iterdir() if p.suffix != ".py"}
    logs_and_results |= {p.name for p in (ROOT / "benchmarks" / "results").iterdir()}
    assert not [f for f in package if f.split("/")[-1] in logs_and_results]
    # JSON in the wheel is configuration: a diffusers component's folder, or the widgets' front-end
    configs = [f for f in package if f.endswith(".json")]
    assert all(f.startswith(("anyi2v_lab/toy/weights/", "anyi2v_lab/widgets/js/")) and f.count("/") >= 3
               for f in configs), configs
    assert not [f for f in package if re.search(r"training|result|_run\d|_call[A-Z0-9]", f.split("/")[-1])]


def test_no_user_facing_file_names_a_path_outside_the_repository():
    """READMEs, docs, notebooks, the training recipe and every module's docstrings and comments are read
    by users, who have the repository and nothing beside it."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.splitlines()
    user_facing = [f for f in listed if re.search(r"(^|/)README\.md$|^docs/.*\.md$|^training/.*\.md$|"
                                                  r"^notebooks/.*\.ipynb$|^(anyi2v_lab|widgets|benchmarks|training)/.*\.py$|"
                                                  r"^constraints\.txt$", f)]
    outside = re.compile(r"\.\./shared|shared/(spec|notes)|/work/")
    hits = [f"{f}:{n}" for f in user_facing if (ROOT / f).is_file()
            for n, line in enumerate((ROOT / f).read_text(errors="replace").splitlines(), 1) if outside.search(line)]
    assert not hits, hits
