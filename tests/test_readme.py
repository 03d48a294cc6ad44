"""The README's store examples run as written (with a stand-in robot loop)."""
import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_write_then_sample_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_example, sample_example = python_blocks()[:2]

    def robot_loop(length=12):
        spec = namespace["spec"]
        rng = np.random.default_rng(len(namespace))
        for t in range(length):
            frame = {k: rng.uniform(-1, 1, s.shape).astype(s.dtype) for k, s in spec.keys().items()
                     if k not in spec.cameras}
            frame.update({k: rng.integers(0, 255, c.key_spec.shape, dtype=np.uint8) for k, c in spec.cameras.items()})
            frame.update(terminated=False, truncated=t == length - 1, timestamp=t / spec.control_rate_hz)
            yield frame

    namespace = {"robot_loop": robot_loop}
    exec(write_example, namespace)
    from robot_rl.datasets import StoreWriter

    with StoreWriter.create("runs/finetune/online.zarr", namespace["spec"]) as online:
        episode = online.new_episode(source="policy")
        for frame in robot_loop():
            episode.add(frame)
        episode.commit()
    exec(sample_example, namespace)
    assert namespace["batch"]["source"].tolist() == [0] * 128 + [1] * 128
    assert namespace["chunks"]["action_chunk"].shape == (64, 8, 7)
    assert tuple(namespace["tensors"]["obs"]["front"].shape) == (256, 480, 640, 3)


def test_readme_twin_example_runs():
    twin_example = python_blocks()[2]
    namespace = {}
    exec(twin_example, namespace)
    assert namespace["obs"]["front"].shape == (128, 128, 3)
    assert namespace["terminated"] or namespace["truncated"]
