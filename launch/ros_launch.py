"""A ROS 2 LaunchDescription for a node graph: what `launch/<graph>.launch.py` returns.

Every field of robot_rl.launch.graphs.Options is a launch argument (``robot:=widowx backend:=twin``).
Each process is an ExecuteProcess running ``python -m <module>`` with this interpreter; when any of
them exits the whole launch shuts down (the recorder's exit after its episodes ends teleop_collect).
Needs a ROS 2 install (the `launch` package): the pip wheels lack it, `robot-rl bringup` is the way there.
"""
from __future__ import annotations

import sys
from dataclasses import fields

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, OpaqueFunction, Shutdown
from launch.substitutions import LaunchConfiguration

from robot_rl.launch.graphs import Options, build_graph, options_from_strings


def _default_text(value) -> str:
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items())
    return "" if value is None else str(value)


def _processes(context, graph: str):
    values = {f.name: LaunchConfiguration(f.name).perform(context) for f in fields(Options)}
    return [ExecuteProcess(cmd=process.command(sys.executable), name=process.name, output="screen",
                           emulate_tty=process.terminal, sigterm_timeout="10",
                           on_exit=[Shutdown(reason=f"{process.name} exited")])
            for process in build_graph(graph, options_from_strings(values))]


def launch_description(graph: str) -> LaunchDescription:
    defaults = Options()
    arguments = [DeclareLaunchArgument(f.name, default_value=_default_text(getattr(defaults, f.name)))
                 for f in fields(Options)]
    return LaunchDescription([*arguments, OpaqueFunction(function=_processes, args=[graph])])
