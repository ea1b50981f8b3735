"""Kafka TLS and SASL SCRAM against a real broker started with a SASL_SSL listener: the
project's clients (stage broker, admin helpers, receiver-style producer, consumers) connect
with the settings, and a client without the right credentials or without TLS cannot."""

from __future__ import annotations

import datetime as dt
import ipaddress
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from promoter.kafka_local import (
    BROKER_MAX_MESSAGE_BYTES,
    LOG4J_CONFIG,
    answers_metadata,
    ensure_jars,
    free_port,
    stop_process_group,
)
from shared.kafka import client_options, ensure_topics, make_broker
from shared.settings import Settings

pytestmark = pytest.mark.e2e

USER, PASSWORD = "promote", "scram-test-password"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_certificates(folder: Path) -> tuple[Path, Path]:
    """A CA, and a server certificate for 127.0.0.1/localhost signed by it (PEM)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("promote test CA"))
        .issuer_name(_name("promote test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = folder / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    keystore = folder / "server.pem"  # Kafka's PEM keystore: PKCS#8 key, then the chain
    keystore.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        + cert.public_bytes(serialization.Encoding.PEM)
        + ca.public_bytes(serialization.Encoding.PEM)
    )
    return ca_file, keystore


@pytest.fixture(scope="module")
def secured_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A KRaft broker with an internal PLAINTEXT listener and a SASL_SSL one (SCRAM-512)."""
    home = tmp_path_factory.mktemp("kafka-sasl")
    ca_file, keystore = make_certificates(home)
    plain, secured, controller = free_port(), free_port(), free_port()
    config = home / "server.properties"
    config.write_text(
        "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{controller}",
                "controller.listener.names=CONTROLLER",
                f"listeners=PLAINTEXT://127.0.0.1:{plain},SASL_SSL://127.0.0.1:{secured},"
                f"CONTROLLER://127.0.0.1:{controller}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{plain},"
                f"SASL_SSL://127.0.0.1:{secured}",
                "listener.security.protocol.map="
                "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL",
                "inter.broker.listener.name=PLAINTEXT",
                "sasl.enabled.mechanisms=SCRAM-SHA-512",
                "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config="
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
                "ssl.keystore.type=PEM",
                f"ssl.keystore.location={keystore}",
                f"log.dirs={home / 'data'}",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=3",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "auto.create.topics.enable=false",
                "log.cleaner.dedupe.buffer.size=16777216",
                f"message.max.bytes={BROKER_MAX_MESSAGE_BYTES}",
                "",
            ]
        )
    )
    jars = ensure_jars()
    java = ["java", "-Xms256m", "-Xmx512m", f"-Dlog4j2.configurationFile={LOG4J_CONFIG}"]
    classpath = ["-cp", f"{jars}/*"]
    cluster = subprocess.run(
        [*java, *classpath, "kafka.tools.StorageTool", "random-uuid"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()[-1]
    subprocess.run(
        [
            *java,
            *classpath,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster,
            "-c",
            str(config),
            "--add-scram",
            f"SCRAM-SHA-512=[name={USER},password={PASSWORD}]",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    log = (home / "broker.log").open("ab")
    process = subprocess.Popen(
        [*java, *classpath, "kafka.Kafka", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while not answers_metadata(f"127.0.0.1:{plain}", timeout_s=5):
            assert process.poll() is None, (home / "broker.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the secured broker did not start"
        yield f"127.0.0.1:{secured}", ca_file
    finally:
        stop_process_group(process.pid, 30)
        log.close()


def secured_settings(bootstrap: str, ca_file: Path, password: str = PASSWORD) -> Settings:
    return Settings(
        kafka_bootstrap_servers=bootstrap,
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username=USER,
        kafka_sasl_password=password,
        kafka_ssl_cafile=ca_file,
        topic_partitions=1,
    )


async def test_every_client_reaches_a_sasl_ssl_listener_with_the_scram_settings(
    secured_broker: tuple[str, Path],
) -> None:
    import logging

    bootstrap, ca_file = secured_broker
    settings = secured_settings(bootstrap, ca_file)
    created = await ensure_topics(bootstrap, settings)
    assert "traces.raw" in created

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **client_options(settings))
    await producer.start()
    try:
        await producer.send_and_wait("traces.raw", b"from-the-receiver", key=b"k")
    finally:
        await producer.stop()

    broker = make_broker(settings, "security-test", logging.getLogger("security-test"))
    await broker.start()
    try:
        await broker.publish(b"from-a-stage", "traces.raw", key=b"k")
    finally:
        await broker.stop()

    consumer = AIOKafkaConsumer(
        "traces.raw",
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **client_options(settings),
    )
    await consumer.start()
    try:
        seen: list[bytes] = []
        while len(seen) < 2:
            batch = await consumer.getmany(timeout_ms=10_000)
            assert batch, "no record arrived over SASL_SSL"
            seen += [r.value for records in batch.values() for r in records if r.value]
    finally:
        await consumer.stop()
    assert sorted(seen) == [b"from-a-stage", b"from-the-receiver"]


async def test_a_client_with_a_wrong_password_is_refused_by_the_sasl_ssl_listener(
    secured_broker: tuple[str, Path],
) -> None:
    bootstrap, ca_file = secured_broker
    settings = secured_settings(bootstrap, ca_file, password="not-the-password")
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, request_timeout_ms=5000, **client_options(settings)
    )
    with pytest.raises(Exception) as refused:
        await producer.start()
    await producer.stop()
    assert (
        "auth" in type(refused.value).__name__.lower()
        or "Connection" in type(refused.value).__name__
    )


async def test_a_plaintext_client_cannot_use_the_sasl_ssl_listener(
    secured_broker: tuple[str, Path],
) -> None:
    bootstrap, _ = secured_broker
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    with pytest.raises(Exception):  # noqa: B017 - whichever way the handshake fails
        await producer.start()
    await producer.stop()
