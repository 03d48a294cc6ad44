"""Package attributes imported on first use (PEP 562), so that importing a package of the twins and its
pure modules (robot constants, robot_rl.sim.specs) needs neither MuJoCo nor gymnasium."""
from __future__ import annotations

import importlib

SIM_EXTRA = ("mujoco", "gymnasium")


def lazy_exports(package: str, exports: dict[str, str]):
    """A module ``__getattr__`` that imports each name in ``exports`` from the module it maps to."""

    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        try:
            module = importlib.import_module(exports[name])
        except ModuleNotFoundError as err:
            if err.name in SIM_EXTRA:
                raise ImportError(f"{package}.{name} needs the `sim` extra: pip install 'robot-rl[sim]' "
                                  f"({err})") from err
            raise
        return getattr(module, name)

    return __getattr__
