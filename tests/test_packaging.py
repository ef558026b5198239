"""Packaging facts that a fresh machine depends on."""
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


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


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.S)
    test_cmd = next(b.strip() for b in blocks if "pytest" in b)
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_cmd.splitlines()[-1] in ci
    assert "HF_HUB_OFFLINE=1" in ci and "ffmpeg" in ci


def test_console_script_and_widgets_subpackage():
    out = subprocess.run([sys.executable, "-m", "anyi2v_lab.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "generate" in out.stdout
    import anyi2v_lab.widgets  # the top-level widgets/ folder, installed as a subpackage
    assert Path(anyi2v_lab.widgets.__file__).parent.name == "widgets"
