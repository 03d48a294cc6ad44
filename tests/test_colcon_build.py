"""`colcon build` of the package, as a ROS 2 workspace builds it (colcon from PyPI, no ROS needed)."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
COLCON_VENV = REPO / ".venv" / "colcon"


def colcon() -> Path:
    """colcon in a venv of its own (its pytest plugins stay out of the project's), made once."""
    exe = COLCON_VENV / "bin" / "colcon"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(COLCON_VENV)], check=True)
        subprocess.run([str(COLCON_VENV / "bin" / "python"), "-m", "pip", "install", "-q",
                        "-r", str(REPO / "requirements" / "colcon.txt")], check=True)
    return exe


@pytest.mark.slow
def test_colcon_build_installs_an_ament_python_package(tmp_path):
    workspace = tmp_path / "ws"
    source = workspace / "src" / "robot_rl"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".venv", ".git", "runs", "build", "install", "log"))
    subprocess.run([str(colcon()), "build", "--base-paths", "src"], cwd=workspace, check=True,
                   capture_output=True, timeout=300)
    install = workspace / "install" / "robot_rl"
    assert (install / "share" / "ament_index" / "resource_index" / "packages" / "robot_rl").exists()
    assert (install / "share" / "robot_rl" / "package.xml").exists()
    assert (install / "lib" / "robot_rl" / "robot-rl").exists()  # where `ros2 run robot_rl` looks
    site = next(install.glob("lib/python3*/site-packages"))
    found = subprocess.run([sys.executable, "-c", "import robot_rl.datasets.spec as s; print(s.__file__)"],
                           env={**os.environ, "PYTHONPATH": str(site)}, cwd=tmp_path,
                           capture_output=True, text=True, check=True)
    assert found.stdout.startswith(str(site))
