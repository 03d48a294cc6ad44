# The robot computer: ROS 2 Jazzy (the LTS release, Ubuntu 24.04) + the robot_rl drivers, built as a
# colcon workspace in /ws. Build from the repository root:
#   docker build -f docker/robot.Dockerfile -t robot-rl/robot .
#   docker build -f docker/robot.Dockerfile --build-arg ROS_DISTRO=kilted -t robot-rl/robot:kilted .
ARG ROS_DISTRO=jazzy
FROM ros:${ROS_DISTRO}-ros-base
ARG ROS_DISTRO

ENV DEBIAN_FRONTEND=noninteractive \
    PIP_BREAK_SYSTEM_PACKAGES=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST \
    ROS_DOMAIN_ID=42 \
    MUJOCO_GL=egl

# rclpy, launch and ros2cli come with the base image; these are the rest of package.xml's exec_depends.
RUN apt-get update && apt-get install -y --no-install-recommends \
        python3-pip python3-colcon-common-extensions \
        ros-${ROS_DISTRO}-std-srvs ros-${ROS_DISTRO}-nav-msgs ros-${ROS_DISTRO}-trajectory-msgs \
        ros-${ROS_DISTRO}-diagnostic-msgs ros-${ROS_DISTRO}-sros2 \
        libegl1 libegl-mesa0 libgl1-mesa-dri \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /ws/src/robot_rl
COPY . .

# Python dependencies + the [hw] extra, system-wide next to ROS. The [ros] extra (ROS 2 Kilted
# packages as PyPI wheels, cp311 only) is for machines WITHOUT a ROS install; here apt's ROS provides
# them for the image's Python 3.12. numpy stays < 2: apt's message packages are compiled against
# numpy 1.26. robot-rl itself is installed by colcon below, so the pip copy is removed again.
RUN printf 'numpy<2\n' > /tmp/constraints.txt \
    && pip install --ignore-installed -c /tmp/constraints.txt ".[hw]" \
    && pip uninstall -y robot-rl \
    && rm -rf build *.egg-info

WORKDIR /ws
RUN . /opt/ros/${ROS_DISTRO}/setup.sh && colcon build --base-paths src --event-handlers console_cohesion+

# DDS stays on loopback by default (each node applies robot_rl.drivers.network's localhost mode); for a
# graph across machines run with --network host -e ROBOT_RL_NETWORK=subnet -e ROS_DOMAIN_ID=<id>, or
# ROBOT_RL_NETWORK=secured with an SROS2 keystore (docker/README.md, "Secured DDS")
RUN printf '%s\n' '#!/bin/bash' 'set -e' ". /opt/ros/${ROS_DISTRO}/setup.bash" '. /ws/install/setup.bash' 'exec "$@"' \
        > /entrypoint.sh && chmod +x /entrypoint.sh
ENTRYPOINT ["/entrypoint.sh"]
# ament_python puts console scripts in lib/robot_rl (for `ros2 run`), not on PATH
CMD ["ros2", "run", "robot_rl", "robot-rl", "--help"]
