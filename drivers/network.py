"""Which network the project's DDS traffic may use: one place decides, every process the project starts
applies it before rclpy loads.

    mode        chosen by                                 DDS sockets
    localhost   the default                               127.0.0.1 only (dds/loopback.xml), shared memory
    subnet      ROBOT_RL_NETWORK=subnet, or the older     every interface; discovery by multicast on the LAN
                opt-in ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET
    secured     ROBOT_RL_NETWORK=secured                  subnet, with SROS2 authentication, encryption and
                + ROS_SECURITY_KEYSTORE                   access control; needs a ROS 2 install whose Fast DDS
                                                          has security (docker/README.md), not the pip wheels

Why ``localhost`` sets ROS_AUTOMATIC_DISCOVERY_RANGE=SYSTEM_DEFAULT, not LOCALHOST: with LOCALHOST,
rmw_fastrtps limits discovery to this host but appends a UDPv4 transport of its own that binds 0.0.0.0
and every interface's address; SYSTEM_DEFAULT leaves the transports to the XML profile, which allows
only 127.0.0.1 and finds peers by unicast on loopback (the same reach as LOCALHOST).
"""
from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path

MODE_VARIABLE = "ROBOT_RL_NETWORK"
MODES = ("localhost", "subnet", "secured")
LOOPBACK_PROFILE = Path(__file__).resolve().with_name("dds") / "loopback.xml"
SECURED_ENCLAVE = "/robot_rl/robot"  # the enclave a secured process runs in unless ROS_SECURITY_ENCLAVE_OVERRIDE says otherwise

# Every variable some mode sets: applying a mode removes the ones it does not set (a subnet child of a
# localhost parent must not keep the loopback profile).
_SECURITY_VARIABLES = ("ROS_SECURITY_ENABLE", "ROS_SECURITY_STRATEGY", "ROS_SECURITY_ENCLAVE_OVERRIDE")


class NetworkModeError(ValueError):
    pass


def network_mode(env: MutableMapping[str, str] | None = None) -> str:
    """The mode ``env`` (default: this process's environment) asks for: ROBOT_RL_NETWORK if set, else
    ``subnet`` where ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET (the opt-in the README documented first), else
    ``localhost``."""
    env = os.environ if env is None else env
    mode = env.get(MODE_VARIABLE, "").strip().lower()
    if mode:
        if mode not in MODES:
            raise NetworkModeError(f"{MODE_VARIABLE}={env[MODE_VARIABLE]!r} is unknown: expected one of "
                                   f"{', '.join(MODES)} (unset it for the default, localhost)")
        return mode
    if env.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "").strip().upper() == "SUBNET":
        return "subnet"
    return "localhost"


def dds_environment(mode: str = "localhost", env: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """The environment variables that put a ROS 2 process in ``mode``. ``secured`` reads the keystore
    (ROS_SECURITY_KEYSTORE) and an optional enclave (ROS_SECURITY_ENCLAVE_OVERRIDE) from ``env``."""
    if mode == "localhost":
        if not LOOPBACK_PROFILE.is_file():
            raise NetworkModeError(f"the loopback DDS profile {LOOPBACK_PROFILE} is missing: reinstall robot-rl "
                                   "(it ships as package data of robot_rl.drivers)")
        return {MODE_VARIABLE: "localhost", "ROS_AUTOMATIC_DISCOVERY_RANGE": "SYSTEM_DEFAULT",
                "FASTDDS_DEFAULT_PROFILES_FILE": str(LOOPBACK_PROFILE)}
    if mode == "subnet":
        return {MODE_VARIABLE: "subnet", "ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET"}
    if mode == "secured":
        return {**dds_environment("subnet"), MODE_VARIABLE: "secured", **_security_variables(env or os.environ)}
    raise NetworkModeError(f"network mode {mode!r} is unknown: expected one of {', '.join(MODES)}")


def apply_dds_environment(env: MutableMapping[str, str] | None = None) -> MutableMapping[str, str]:
    """Put ``env`` (default: os.environ; call before rclpy starts DDS) in the mode it asks for, removing
    what another mode left there; returns ``env``."""
    env = os.environ if env is None else env
    wanted = dds_environment(network_mode(env), env)
    if env.get("FASTDDS_DEFAULT_PROFILES_FILE") == str(LOOPBACK_PROFILE) and "FASTDDS_DEFAULT_PROFILES_FILE" not in wanted:
        del env["FASTDDS_DEFAULT_PROFILES_FILE"]  # a user's own profile for subnet use stays
    for name in _SECURITY_VARIABLES:
        if name not in wanted:
            env.pop(name, None)
    env.update(wanted)
    return env


def _security_variables(env: MutableMapping[str, str]) -> dict[str, str]:
    keystore = env.get("ROS_SECURITY_KEYSTORE", "")
    if not keystore:
        raise NetworkModeError(f"{MODE_VARIABLE}=secured needs ROS_SECURITY_KEYSTORE: expected the keystore "
                               "folder made by `ros2 security create_keystore` (docker/README.md, Secured DDS), "
                               "found it unset")
    enclave = env.get("ROS_SECURITY_ENCLAVE_OVERRIDE") or SECURED_ENCLAVE
    enclave_dir = Path(keystore) / "enclaves" / enclave.strip("/")
    if not enclave_dir.is_dir():
        raise NetworkModeError(f"ROS_SECURITY_KEYSTORE={keystore}: expected the enclave folder {enclave_dir}, "
                               f"found none; create it with `ros2 security create_enclave {keystore} {enclave}`")
    # Enforce: a process that cannot load its enclave fails instead of joining the graph unsecured.
    return {"ROS_SECURITY_KEYSTORE": keystore, "ROS_SECURITY_ENABLE": "true", "ROS_SECURITY_STRATEGY": "Enforce",
            "ROS_SECURITY_ENCLAVE_OVERRIDE": enclave}
