"""The Franka Panda / FR3 driver: franky (libfranka) hardware backend, twin backend, robot process."""
