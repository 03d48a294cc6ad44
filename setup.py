"""Only what colcon's ament_python build needs; the distribution itself is described in pyproject.toml."""
from glob import glob

from setuptools import setup

PACKAGE = "robot_rl"

data_files = [
    ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
    (f"share/{PACKAGE}", ["package.xml"]),
]
launch_files = sorted(glob("launch/*.launch.py"))  # the graphs they import are in robot_rl.launch
if launch_files:
    data_files.append((f"share/{PACKAGE}/launch", launch_files))

# python_requires lives here, not in pyproject.toml: setuptools turns a pyproject `requires-python`
# into a SpecifierSet that colcon's setup.py introspection cannot parse (colcon-python-setup-py#56).
setup(data_files=data_files, python_requires=">=3.11")
