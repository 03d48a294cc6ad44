"""Converters between the store and other tools' formats: LeRobot datasets (v3), robomimic HDF5 and
rosbag2 MCAP. Each imports its optional readers (the ``formats`` extra) only when called."""
