"""A single-node KRaft Kafka broker from the official jars, for local runs and tests.

The jars are resolved from Maven Central by deploy/kafka/pom.xml into a cache folder
outside the repo; the broker's data, config and log live in the state folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from aiokafka import AIOKafkaClient

REPO_ROOT = Path(__file__).resolve().parent.parent
POM = REPO_ROOT / "deploy" / "kafka" / "pom.xml"
LOG4J_CONFIG = REPO_ROOT / "deploy" / "kafka" / "log4j2.properties"
READY_TIMEOUT_S = 90.0
BROKER_MAX_MESSAGE_BYTES = (64 << 20) + 64 * 1024
EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOCAL_PORTS_FROM = 10_000
# How long a restart waits for its old port (a port in TIME_WAIT or held for a moment).
PORT_REUSE_WAIT_S = 30.0


def kafka_version() -> str:
    match = re.search(r"<kafka.version>([^<]+)</kafka.version>", POM.read_text())
    assert match, "deploy/kafka/pom.xml must pin kafka.version"
    return match.group(1)


def jars_dir() -> Path:
    override = os.environ.get("PROMOTE_KAFKA_JARS")
    if override:
        return Path(override)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "trace-promoter" / f"kafka-{kafka_version()}"


def ensure_jars() -> Path:
    """Resolves the broker's runtime classpath once; later calls find it cached."""
    target = jars_dir()
    marker = target / ".complete"
    if marker.exists():
        return target
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    subprocess.run(
        [
            "mvn",
            "-B",
            "-ntp",
            "-q",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={staging}",
        ],
        check=True,
    )
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    marker.write_text(kafka_version())
    return target


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range of ports for outgoing connections."""
    try:
        low, high = map(int, EPHEMERAL_RANGE_FILE.read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    return low, high


def free_port() -> int:
    """A free port for a local server, outside the kernel's ephemeral range. A server that
    listens on an ephemeral port may not get it back when it restarts: any outgoing
    connection can take it meanwhile, and a client reconnecting to the stopped server can
    even connect to itself on it (TCP simultaneous open), as the stages do while the
    broker is away. The chaos suite's broker restart found this."""
    low, high = ephemeral_range()
    if low - 1 >= LOCAL_PORTS_FROM:
        candidates = range(LOCAL_PORTS_FROM, low)
    elif high + 1 <= 65535:
        candidates = range(high + 1, 65536)
    else:  # no port outside the range: any free one
        candidates = range(0, 1)
    rng = random.SystemRandom()
    for _ in range(500):
        port = rng.choice(candidates)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            chosen: int = s.getsockname()[1]
            return chosen
    raise RuntimeError("no free local port outside the ephemeral range")


def _properties(data_dir: Path, port: int, controller_port: int) -> str:
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{controller_port}",
            "controller.listener.names=CONTROLLER",
            f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={data_dir}",
            "num.partitions=3",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=10",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=false",
            "log.cleaner.dedupe.buffer.size=16777216",
            "log.segment.bytes=67108864",
            # The size rule (README "Large traces"): the broker accepts up to the highest
            # PROMOTE_KAFKA_MAX_MESSAGE_BYTES allowed; each topic enforces the setting.
            f"message.max.bytes={BROKER_MAX_MESSAGE_BYTES}",
            f"replica.fetch.max.bytes={BROKER_MAX_MESSAGE_BYTES}",
            "",
        ]
    )


class LocalKafka:
    def __init__(self, state_dir: Path) -> None:
        self.home = state_dir.resolve() / "kafka"
        self.pid_file = self.home / "broker.pid"
        self.port_file = self.home / "port"
        self.log_file = self.home / "broker.log"

    def pid(self) -> int | None:
        if not self.pid_file.exists():
            return None
        pid = int(self.pid_file.read_text())
        return pid if _alive(pid) else None

    def bootstrap(self) -> str | None:
        if self.pid() is None or not self.port_file.exists():
            return None
        return f"127.0.0.1:{self.port_file.read_text().strip()}"

    def start(self) -> str:
        running = self.bootstrap()
        if running and answers_metadata(running, timeout_s=10):
            return running
        jars = ensure_jars()
        data_dir = self.home / "data"
        self.home.mkdir(parents=True, exist_ok=True)
        # A restarted broker keeps its ports when it can: running stages reconnect to the
        # address they were given (chaos tests restart the broker under load).
        port = _reusable_port(self.port_file) or free_port()
        controller_port = _reusable_port(self.home / "controller_port") or free_port()
        (self.home / "controller_port").write_text(str(controller_port))
        config = self.home / "server.properties"
        config.write_text(_properties(data_dir, port, controller_port))
        classpath = f"{jars}/*"
        java = ["java", "-Xms256m", "-Xmx512m", f"-Dlog4j2.configurationFile={LOG4J_CONFIG}"]
        if not (data_dir / "meta.properties").exists():
            cluster_id = (
                subprocess.run(
                    [*java, "-cp", classpath, "kafka.tools.StorageTool", "random-uuid"],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                .stdout.strip()
                .splitlines()[-1]
            )
            subprocess.run(
                [
                    *java,
                    "-cp",
                    classpath,
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    cluster_id,
                    "-c",
                    str(config),
                ],
                check=True,
                capture_output=True,
                text=True,
            )
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(
                [*java, "-cp", classpath, "kafka.Kafka", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pid_file.write_text(str(process.pid))
        self.port_file.write_text(str(port))
        bootstrap = f"127.0.0.1:{port}"
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"Kafka exited early; see {self.log_file}:\n{self._tail()}")
            if answers_metadata(bootstrap, timeout_s=5):
                return bootstrap
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"Kafka did not answer within {READY_TIMEOUT_S}s:\n{self._tail()}")

    def stop(self, timeout_s: float = 60.0) -> None:
        pid = self.pid()
        if pid is not None:
            stop_process_group(pid, timeout_s)
        self.pid_file.unlink(missing_ok=True)

    def _tail(self, lines: int = 30) -> str:
        if not self.log_file.exists():
            return ""
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])


def _reusable_port(path: Path, wait_s: float = PORT_REUSE_WAIT_S) -> int | None:
    """The port recorded in ``path`` once it can be bound again (waiting up to ``wait_s``),
    or None: running clients only know the old address, so it is worth a wait."""
    if not path.exists():
        return None
    port = int(path.read_text().strip() or 0)
    if not port:
        return None
    deadline = time.monotonic() + wait_s
    while True:
        with socket.socket() as probe:
            # As the broker binds: a port left in TIME_WAIT by the previous broker is reusable.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
                return port
            except OSError:
                if time.monotonic() >= deadline:
                    return None
        time.sleep(0.5)


def answers_metadata(bootstrap: str, timeout_s: float) -> bool:
    # Refused connections while the broker boots are expected; aiokafka logs each one.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)

    async def probe() -> bool:
        client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
        try:
            await asyncio.wait_for(client.bootstrap(), timeout_s)
            return bool(client.cluster.brokers())
        except Exception:
            return False
        finally:
            await client.close()

    return asyncio.run(probe())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still "exists"; it has exited for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def stop_process_group(pid: int, timeout_s: float) -> None:
    """SIGTERM the process group (clean shutdown), SIGKILL what is left after the timeout."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            break
        _reap(pid)
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    _reap(pid)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
