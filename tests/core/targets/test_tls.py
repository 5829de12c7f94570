"""HTTPS to a pinned address: the TLS server name and the certificate check keep the URL's host name."""

from __future__ import annotations

import asyncio
import datetime
import ssl
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import aiohttp
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from crucible.core.targets import TargetPolicy, guarded_client
from crucible.core.targets.transport import AiohttpTargetTransport
from tests.core.targets.servers import TARGET_HOST, Recorder, handler, target_answer


def _certificate(
    name: str,
    issuer: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    signer: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
    return builder.sign(signer, hashes.SHA256())


@pytest.fixture(scope="module")
async def tls_target(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[int, ssl.SSLContext, Recorder]]:
    """An HTTPS target on 127.0.0.2 whose certificate names `tls.test` only, and a context trusting its CA."""
    folder: Path = tmp_path_factory.mktemp("tls")
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "crucible test CA")])
    ca = _certificate("crucible test CA", ca_name, ca_key, ca_key, ca=True)
    leaf = _certificate("tls.test", ca_name, leaf_key, ca_key, ca=False)
    (folder / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(folder / "leaf.pem", folder / "key.pem")
    client_context = ssl.create_default_context(cadata=ca.public_bytes(serialization.Encoding.PEM).decode())
    recorder = Recorder()
    server = await asyncio.start_server(handler(recorder, target_answer), TARGET_HOST, 0, ssl=server_context)
    yield server.sockets[0].getsockname()[1], client_context, recorder
    server.close()


def _client(context: ssl.SSLContext, names: dict[str, Sequence[str]]) -> httpx.AsyncClient:
    async def resolve(host: str, port: int) -> Sequence[str]:
        return names[host]

    def session() -> aiohttp.ClientSession:
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context))

    policy = TargetPolicy.build(hosts=list(names), include_defaults=False)
    return guarded_client(policy, resolver=resolve, inner=AiohttpTargetTransport(client=session))


async def test_https_reaches_the_pinned_address_under_the_certificates_name(
    tls_target: tuple[int, ssl.SSLContext, Recorder],
) -> None:
    port, context, recorder = tls_target
    async with _client(context, {"tls.test": [TARGET_HOST]}) as client:
        response = await client.get(f"https://tls.test:{port}/secure")
    assert response.text == "target ok"
    assert recorder.requests[-1] == ("GET /secure HTTP/1.1", f"tls.test:{port}")


async def test_a_certificate_for_another_name_is_still_refused(
    tls_target: tuple[int, ssl.SSLContext, Recorder],
) -> None:
    port, context, recorder = tls_target
    requests = len(recorder.requests)
    async with _client(context, {"other.test": [TARGET_HOST]}) as client:
        with pytest.raises(httpx.TransportError, match=r"other\.test"):
            await client.get(f"https://other.test:{port}/")
    assert len(recorder.requests) == requests
