"""The layers of DESIGN.md, enforced (run by `make lint` as well as by the suite):

    robot_rl.datasets  <  robot_rl.sim  <  core (algos, nets, learner, configs, tasks)  <  robot_rl.drivers
    <  robot_rl.cli, robot_rl.launch

Each layer imports only itself and the layers to its left, anywhere in a module (a lazy import inside a
function is still a dependency); ROS 2 (rclpy and the message packages) only under drivers/ and launch/.
The static walk reads every module's AST; the runtime checks import the light layers in a fresh
interpreter and look at what came along, which also catches imports made indirectly.

import-linter was tried: it builds its graph by walking robot_rl/'s folder, so it does not see the
subpackages that setuptools maps from datasets/, sim/, drivers/ and launch/ (it found 44 modules, none
of them there), and it cannot tell an import-time import from a lazy one.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"datasets": "robot_rl.datasets", "sim": "robot_rl.sim", "drivers": "robot_rl.drivers",
           "launch": "robot_rl.launch", "robot_rl": "robot_rl"}
LAYERS = {"robot_rl.datasets": 0, "robot_rl.sim": 1, "robot_rl": 2, "robot_rl.drivers": 3, "robot_rl.cli": 4,
          "robot_rl.launch": 4}
LAYER_NAMES = ["datasets", "sim", "core", "drivers", "cli/launch"]
ROS = {"rclpy", "rosidl_runtime_py", "builtin_interfaces", "rcl_interfaces", "std_msgs", "std_srvs", "sensor_msgs",
       "geometry_msgs", "nav_msgs", "trajectory_msgs", "diagnostic_msgs", "launch", "launch_ros"}
ROS_LAYERS = {3, 4}


def module_files() -> dict[str, Path]:
    """Every module of the distribution by its import name (a launch file's dots become underscores)."""
    modules = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            parts[-1] = parts[-1].replace(".", "_")
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join([package, *parts])] = path
    return modules


def layer(module: str) -> int:
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return LAYERS[best]


def imported_names(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file, relative ones resolved."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found += [(node.lineno, f"{base}.{alias.name}" if base.startswith("robot_rl") else base)
                      for alias in node.names]
    return found


def violations() -> list[str]:
    found = []
    for module, path in module_files().items():
        here = layer(module)
        for line, name in imported_names(path, module):
            where = f"{path.relative_to(ROOT)}:{line} imports {name}"
            if name == "robot_rl" or name.startswith("robot_rl."):
                there = layer(name)
                if there > here:
                    found.append(f"{where}: {LAYER_NAMES[here]} may not import {LAYER_NAMES[there]}")
            elif name.split(".")[0] in ROS and here not in ROS_LAYERS:
                found.append(f"{where}: ROS 2 is imported only under drivers/ and launch/")
    return found


def test_the_walk_sees_every_layer_and_resolves_relative_imports():
    modules = module_files()
    assert {layer(m) for m in modules} == set(range(5))
    assert "robot_rl.launch.deploy_launch" in modules and "robot_rl.datasets" in modules
    assert any(name.startswith("robot_rl.datasets") for _, name in
               imported_names(modules["robot_rl.learner.replay"], "robot_rl.learner.replay"))


def test_the_walk_flags_an_upward_import_and_ros_outside_the_drivers(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from robot_rl.learner import trainer\n    import rclpy\n")
    names = imported_names(bad, "robot_rl.sim.bad")
    assert names == [(2, "robot_rl.learner.trainer"), (3, "rclpy")]
    assert layer(names[0][1]) > layer("robot_rl.sim.bad")


def test_every_import_goes_down_the_layers_and_ros_stays_in_the_drivers():
    found = violations()
    assert not found, "layer violations (see DESIGN.md, 'Direction of imports'):\n" + "\n".join(found)


@pytest.mark.parametrize("packages, absent", [
    (["robot_rl.datasets", "robot_rl.sim"], ["torch", "rclpy"]),
    (["robot_rl.datasets", "robot_rl.datasets.spec"], ["torch", "rclpy", "mujoco"]),
    (["robot_rl.sim", "robot_rl.sim.specs", "robot_rl.drivers.robot"], ["torch", "rclpy", "mujoco", "gymnasium"]),
])
def test_importing_the_light_layers_brings_no_torch_and_no_ros(packages, absent):
    code = (f"import importlib, sys\nfor p in {packages!r}: importlib.import_module(p)\n"
            f"print(','.join(m for m in {absent!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd="/", capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "", f"importing {packages} also imported {done.stdout.strip()}"
