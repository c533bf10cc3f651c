"""Throw-away certificates for TLS tests, made with the ``openssl`` command line (argv lists, no shell).

Two independent CAs, each with a server certificate for ``localhost`` and ``127.0.0.1``: a client trusting
one CA must refuse the other's server, which is how the tests prove verification is really on.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

OPENSSL = shutil.which("openssl")


@dataclass(frozen=True)
class Pki:
    """A CA and one server certificate signed by it."""

    ca_file: Path
    cert_file: Path
    key_file: Path


def missing_openssl() -> str | None:
    """Why certificates cannot be made here, or ``None``."""
    return None if OPENSSL else "the openssl command is missing (apt-get install openssl)"


def make_pki(directory: Path, name: str) -> Pki:
    """A new CA ``<name>-ca`` and a server certificate for localhost/127.0.0.1, valid for a day."""
    if OPENSSL is None:
        raise RuntimeError(missing_openssl())
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_file = directory / f"{name}-ca.key", directory / f"{name}-ca.pem"
    key_file, csr, cert_file = directory / f"{name}.key", directory / f"{name}.csr", directory / f"{name}.pem"
    extensions = directory / f"{name}.ext"
    extensions.write_text("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                          "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n"
                          "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _run("req", "-x509", *ec, "-keyout", ca_key, "-out", ca_file, "-days", "1", "-subj", f"/CN={name}-ca",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    _run("req", *ec, "-keyout", key_file, "-out", csr, "-subj", "/CN=localhost")
    _run("x509", "-req", "-in", csr, "-CA", ca_file, "-CAkey", ca_key, "-CAcreateserial", "-out", cert_file,
         "-days", "1", "-extfile", extensions)
    return Pki(ca_file, cert_file, key_file)


def _run(*args: object) -> None:
    subprocess.run([str(OPENSSL), *map(str, args)], check=True, capture_output=True, timeout=60)
