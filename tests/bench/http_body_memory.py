"""Peak memory of the HTTP service after one hostile ``/v1/events`` body: an array of empty objects.

``python -m tests.bench.http_body_memory MIB [MIB ...]`` starts the embedded broker and
``feedback serve-http`` (loopback, no tokens), posts one array of ``{}`` records of about MIB MiB per
argument, and prints the service's answer and its resident memory (VmRSS) and peak (VmHWM) from
``/proc/PID/status`` before and after. Linux only.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

import httpx

from pipeline import broker
from pipeline.broker import free_port, port_open


def _memory_kib(pid: int) -> dict[str, int]:
    with open(f"/proc/{pid}/status") as status:
        return {line.split(":")[0]: int(line.split()[1]) for line in status if line.startswith(("VmRSS", "VmHWM"))}


def measure(sizes_mib: list[float]) -> None:
    broker_port, port = free_port(), free_port()
    broker_proc = broker.start(broker_port)
    with tempfile.TemporaryDirectory() as data:
        env = {k: v for k, v in os.environ.items() if k not in ("FEEDBACK_API_TOKENS", "FEEDBACK_HTTP_HOST")}
        env.update(FEEDBACK_KAFKA_BOOTSTRAP=f"127.0.0.1:{broker_port}", FEEDBACK_HTTP_PORT=str(port),
                   FEEDBACK_DATA_DIR=data, FEEDBACK_CUSTOMER_HASH_KEY="bench-key-0123456789abcdef0123456789",
                   FEEDBACK_TOPIC_PREFIX="membench.")
        service = subprocess.Popen([sys.executable, "-m", "pipeline", "serve-http"], env=env)
        try:
            deadline = time.monotonic() + 90
            while not port_open("127.0.0.1", port):
                if time.monotonic() > deadline or service.poll() is not None:
                    raise SystemExit("the HTTP service did not start")
                time.sleep(0.2)
            for size in sizes_mib:
                count = int(size * 1024 * 1024 / 3)
                body = b"[" + b"{}," * count + b"{}]"
                before = _memory_kib(service.pid)
                r = httpx.post(f"http://127.0.0.1:{port}/v1/events", content=body,
                               headers={"Content-Type": "application/json"}, timeout=300)
                after = _memory_kib(service.pid)
                print(f"{len(body):>10} bytes, {count + 1} records -> {r.status_code} {r.json().get('error')}; "
                      f"RSS {before['VmRSS'] / 1024:.1f} -> {after['VmRSS'] / 1024:.1f} MB, "
                      f"peak {before['VmHWM'] / 1024:.1f} -> {after['VmHWM'] / 1024:.1f} MB")
        finally:
            service.terminate()
            service.wait(timeout=30)
            broker_proc.terminate()
            broker_proc.wait(timeout=30)


if __name__ == "__main__":
    measure([float(a) for a in sys.argv[1:]] or [30.0, 3.9])
