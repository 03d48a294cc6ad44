"""A real S3-compatible server for tests and benchmarks: moto's server mode, on 127.0.0.1 and a free port,
in a process of its own.

moto needs botocore, which caps python-dateutil below 3 while requirements/lock.txt pins 4.0.0, so moto
cannot live in the project's venv: it has a venv of its own, ``.venv/s3-server``
(``python -m venv .venv/s3-server && .venv/s3-server/bin/pip install 'moto[server]==5.2.5'``), or
``ROBOT_RL_MOTO_SERVER`` names a ``moto_server`` executable. The clients (the store and checkpoints, through
obstore) speak to it over HTTP only.
"""
from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MOTO_VERSION = "5.2.5"
SETUP = (f"python -m venv .venv/s3-server && .venv/s3-server/bin/pip install 'moto[server]=={MOTO_VERSION}' "
         "(or set ROBOT_RL_MOTO_SERVER to a moto_server executable)")


def moto_server_executable() -> str | None:
    found = os.environ.get("ROBOT_RL_MOTO_SERVER") or str(REPO / ".venv" / "s3-server" / "bin" / "moto_server")
    return found if os.access(found, os.X_OK) else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class S3Server:
    """``with S3Server() as s3:`` a moto server on 127.0.0.1; ``s3.env`` holds the variables a client
    needs (credentials, region, endpoint), ``s3.bucket(name)`` creates a bucket and returns its URL."""

    def __init__(self, executable: str, log: Path):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
                    "AWS_ENDPOINT_URL": self.endpoint, "AWS_ALLOW_HTTP": "true", "NO_PROXY": "127.0.0.1"}
        self._log = open(log, "w")
        self.process = subprocess.Popen([executable, "-H", "127.0.0.1", "-p", str(self.port)], stdout=self._log,
                                        stderr=subprocess.STDOUT)
        self._wait_until_listening(timeout=60)

    def _wait_until_listening(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto_server exited with status {self.process.returncode}; see {self._log.name}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1.0):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not listen on 127.0.0.1:{self.port} in {timeout} s") from None
                time.sleep(0.1)

    def bucket(self, name: str) -> str:
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy
        direct.open(urllib.request.Request(f"{self.endpoint}/{name}", method="PUT"), timeout=10).close()
        return f"s3://{name}"

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()

    def __enter__(self) -> S3Server:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
