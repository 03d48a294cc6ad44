"""``robot-rl data import SRC STORE`` and ``robot-rl data export STORE OUT``: LeRobot datasets (v3.0),
robomimic HDF5 and rosbag2 MCAP, with a progress bar and a summary table."""
from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from robot_rl.cli.progress import job_progress

FORMATS = ("lerobot", "robomimic", "mcap")
console = Console()


def add_verbs(sub, guarded) -> None:
    p = sub.add_parser("import", help="import a LeRobot dataset, a robomimic HDF5 file or a rosbag2 recording "
                                      "into a store (created, or appended to when it holds the same spec)")
    p.add_argument("src", help="LeRobot dataset folder, robomimic .hdf5 file, or rosbag2 folder (MCAP)")
    p.add_argument("path", help="the store")
    p.add_argument("--format", choices=FORMATS, help="default: told from SRC (meta/info.json: lerobot; "
                                                     ".hdf5/.h5: robomimic; metadata.yaml or .mcap: mcap)")
    p.add_argument("--overwrite", action="store_true", help="replace the store instead of appending to it")
    p.add_argument("--ignore", nargs="+", default=[], metavar="FEATURE",
                   help="features (lerobot) or datasets (robomimic: e.g. obs/depth) to leave out")
    p.add_argument("--source", default="teleop", choices=["teleop", "scripted", "policy", "intervention"],
                   help="the source of episodes that do not carry this package's episode info")
    p.add_argument("--instruction", default="", help="(robomimic, mcap) instruction of episodes that carry none")
    p.add_argument("--fps", type=float, help="(robomimic) control rate, when env_args does not give control_freq")
    p.add_argument("--camera-codec", default="zstd", choices=["zstd", "lz4", "raw", "jpeg"],
                   help="camera codec of a new store built from the input's features")
    p.add_argument("--spec-from", help="(mcap) a store recorded with the bag's robot and cameras, for its spec")
    p.add_argument("--stale-after", type=float, default=0.5, help="(mcap) seconds without a message: stale stream")
    p.set_defaults(run=guarded(run_import))

    p = sub.add_parser("export", help="export a store as a LeRobot dataset, a robomimic HDF5 file or rosbag2 MCAP")
    p.add_argument("path", help="the store")
    p.add_argument("out", help="the new dataset folder, .hdf5 file or rosbag2 folder")
    p.add_argument("--format", choices=FORMATS, help="default: robomimic for OUT ending in .hdf5/.h5")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--vcodec", default="av1", choices=["av1", "h264", "lossless"],
                   help="(lerobot) camera video codec: av1 as LeRobot writes, h264, or lossless RGB H.264")
    p.add_argument("--episodes", help="(mcap) comma-separated episode indices (default: all)")
    p.set_defaults(run=guarded(run_export))


def guess_import_format(src: str) -> str:
    path = Path(src)
    if (path / "meta/info.json").is_file():
        return "lerobot"
    if path.suffix in (".hdf5", ".h5"):
        return "robomimic"
    if (path / "metadata.yaml").is_file() or path.suffix == ".mcap" or any(path.glob("*.mcap")):
        return "mcap"
    from robot_rl.datasets.errors import StoreError

    raise StoreError(f"{src}: cannot tell its format (no meta/info.json, not .hdf5, no rosbag2 metadata.yaml): "
                     f"pass --format with one of {', '.join(FORMATS)}")


def run_import(args) -> int:
    fmt = args.format or guess_import_format(args.src)
    src = Path(args.src).parent if fmt == "mcap" and Path(args.src).suffix == ".mcap" else args.src
    with job_progress(console) as bar:
        task = bar.add_task(f"importing {fmt}", total=None, status="")
        report = lambda done, total: bar.update(task, completed=done, total=total)  # noqa: E731
        started = time.perf_counter()
        note = ""
        if fmt == "lerobot":
            from robot_rl.datasets.formats.lerobot import import_lerobot

            count = import_lerobot(src, args.path, overwrite=args.overwrite, source=args.source,
                                   camera_codec=args.camera_codec, ignore=tuple(args.ignore), progress=report)
        elif fmt == "robomimic":
            from robot_rl.datasets.formats.robomimic import import_robomimic

            count = import_robomimic(src, args.path, overwrite=args.overwrite, instruction=args.instruction,
                                     source=args.source, control_rate_hz=args.fps, camera_codec=args.camera_codec,
                                     ignore=tuple(args.ignore), progress=report)
        else:
            try:
                from robot_rl.drivers.bag_import import import_bag
            except ImportError as e:  # the recorder's stream classes import rclpy and the message packages
                from robot_rl.datasets.errors import StoreError

                raise StoreError(f"importing a bag runs the recorder's code, which needs ROS 2's Python packages "
                                 f"({e.name} is missing): pip install 'robot-rl[ros,formats]'") from e

            result = import_bag(src, args.path, spec_from=args.spec_from, overwrite=args.overwrite, source=args.source,
                                instruction=args.instruction, stale_after_s=args.stale_after, progress=report)
            count = result.kept
            if result.discarded or result.refused:
                note = "\n".join(["as the recorder would have:", *(f"  - {why}" for why in result.refused),
                                   *(f"  - {why}" for why in result.discarded)])
        frames = int(bar.tasks[0].completed)
    _summary("imported", fmt, count, frames, time.perf_counter() - started, args.path)
    if note:
        console.print(note, highlight=False)
    return 0


def run_export(args) -> int:
    fmt = args.format or ("robomimic" if Path(args.out).suffix in (".hdf5", ".h5") else None)
    if fmt is None:
        from robot_rl.datasets.errors import StoreError

        raise StoreError(f"{args.out}: pass --format with one of {', '.join(FORMATS)} (only .hdf5/.h5 names tell it)")
    with job_progress(console) as bar:
        task = bar.add_task(f"exporting {fmt}", total=None, status="")
        report = lambda done, total: bar.update(task, completed=done, total=total)  # noqa: E731
        started = time.perf_counter()
        if fmt == "lerobot":
            from robot_rl.datasets.formats.lerobot import export_lerobot

            count = export_lerobot(args.path, args.out, overwrite=args.overwrite, vcodec=args.vcodec, progress=report)
        elif fmt == "robomimic":
            from robot_rl.datasets.formats.robomimic import export_robomimic

            count = export_robomimic(args.path, args.out, overwrite=args.overwrite, progress=report)
        else:
            from robot_rl.datasets.formats.mcap import export_mcap

            episodes = [int(i) for i in args.episodes.split(",")] if args.episodes else None
            count = export_mcap(args.path, args.out, episodes=episodes, overwrite=args.overwrite, progress=report)
        frames = int(bar.tasks[0].completed)
    _summary("exported", fmt, count, frames, time.perf_counter() - started, args.out)
    return 0


def _summary(verb: str, fmt: str, episodes: int, frames: int, seconds: float, where) -> None:
    table = Table(title=f"{verb} ({fmt})", show_header=False, box=None)
    table.add_row("episodes", str(episodes))
    table.add_row("frames", f"{frames}  ({frames / max(seconds, 1e-9):.1f} frames/s)")
    table.add_row("time", f"{seconds:.1f} s")
    path = Path(where)
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else (
        path.stat().st_size if path.exists() else 0)
    table.add_row("output" if verb == "exported" else "store", f"{where}  ({size / 2**20:.1f} MiB)")
    console.print(table)
