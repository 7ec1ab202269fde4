"""A real Ceph RADOS Gateway on loopback for the storage tests: one mon, one memstore OSD, radosgw with an
HTTP and an HTTPS (self-signed CA) endpoint, and a user with fixed test keys. Debian's packages
(`radosgw ceph-mon ceph-osd ceph-common`, Ceph 16); where they are absent the RGW variants skip.

Nothing is installed system-wide: every file (config, keyrings, logs, sockets, the CA) lives in one
folder, the daemons run in the foreground as children of the test process and are killed at the end.
"""

from __future__ import annotations

import datetime
import os
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass

ACCESS_KEY = "POSECLUSTERTESTKEY01"
SECRET_KEY = "posecluster-test-secret-key-0000000000001"
BINARIES = ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "monmaptool", "ceph-authtool", "ceph")


def missing_binaries() -> list[str]:
    return [name for name in BINARIES if shutil.which(name) is None]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Endpoints:
    http: str
    https: str
    ca_bundle: str  # the self-signed certificate clients trust (AWS_CA_BUNDLE)


def _self_signed(folder: str) -> tuple[str, str]:
    """A certificate for 127.0.0.1 (subject alternative name IP) and its key, made with `cryptography`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = f"{folder}/rgw.crt", f"{folder}/rgw.key"
    with open(cert_path, "wb") as fh:
        fh.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as fh:
        fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                   serialization.NoEncryption()))
    return cert_path, key_path


class CephRGW:
    """Start with `start()`, stop with `stop()`; `endpoints` once started."""

    def __init__(self, folder: str):
        self.folder = folder
        self.conf = f"{folder}/ceph.conf"
        self.processes: list[subprocess.Popen] = []
        self.endpoints: Endpoints | None = None

    def _run(self, *args: str, timeout: float = 60) -> str:
        done = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
        return done.stdout

    def _spawn(self, *args: str) -> None:
        log = open(f"{self.folder}/log/{os.path.basename(args[0])}.out", "ab")
        self.processes.append(subprocess.Popen(list(args), stdout=log, stderr=subprocess.STDOUT,
                                               start_new_session=True))

    def _write_conf(self, mon_port: int, http_port: int, https_port: int, cert: str, key: str) -> None:
        d = self.folder
        text = f"""[global]
fsid = {uuid.uuid4()}
mon host = v1:127.0.0.1:{mon_port}
mon initial members = a
auth cluster required = none
auth service required = none
auth client required = none
ms bind ipv6 = false
ms bind msgr2 = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 2000
mon warn on pool no redundancy = false
# A mon stops (exit 28) when its data folder's disk has under 5% free; CI machines' shared disks can be that full,
# and this mon's data is a few MB in a temp folder.
mon data avail crit = 0
mon data avail warn = 0
run dir = {d}/run
admin socket = {d}/run/$name.asok
log file = {d}/log/$name.log
keyring = {d}/keyring
osd objectstore = memstore
memstore device bytes = 2147483648
osd data = {d}/osd/$cluster-$id
mon data = {d}/mon/$cluster-$id
[client.rgw.test]
rgw frontends = beast endpoint=127.0.0.1:{http_port} ssl_endpoint=127.0.0.1:{https_port} ssl_certificate={cert} ssl_private_key={key}
# With auth none, radosgw otherwise loops on get_initial_auth_request returned -13 and exits after 300 s.
ms mon client mode = crc secure
rgw thread pool size = 64
rgw enable usage log = false
"""
        with open(self.conf, "w") as fh:
            fh.write(text)

    def start(self, timeout_s: float = 90) -> Endpoints:
        d = self.folder
        for sub in ("run", "log", "mon/ceph-a", "osd/ceph-0"):
            os.makedirs(f"{d}/{sub}", exist_ok=True)
        cert, key = _self_signed(d)
        mon_port, http_port, https_port = _free_port(), _free_port(), _free_port()
        self._write_conf(mon_port, http_port, https_port, cert, key)
        c = ("-c", self.conf)
        self._run("ceph-authtool", "--create-keyring", f"{d}/keyring", "--gen-key", "-n", "mon.", "--cap", "mon", "allow *")
        self._run("monmaptool", "--create", "--clobber", "--addv", "a", f"[v1:127.0.0.1:{mon_port}]", "--fsid",
                  self._fsid(), f"{d}/monmap")
        self._run("ceph-mon", *c, "--mkfs", "-i", "a", "--monmap", f"{d}/monmap", "--keyring", f"{d}/keyring")
        self._spawn("ceph-mon", *c, "-f", "-i", "a")
        self._wait_for(mon_port, 30, "ceph-mon")
        osd_uuid = str(uuid.uuid4())  # the same uuid for the map entry and the OSD's own files
        osd_id = self._run("ceph", *c, "--connect-timeout", "30", "osd", "create", osd_uuid).strip()
        self._run("ceph-osd", *c, "-i", osd_id, "--mkfs", "--osd-uuid", osd_uuid)
        self._spawn("ceph-osd", *c, "-f", "-i", osd_id)
        self._spawn("radosgw", *c, "-f", "-n", "client.rgw.test")
        self.endpoints = Endpoints(f"http://127.0.0.1:{http_port}", f"https://127.0.0.1:{https_port}", cert)
        self._wait_for(http_port, timeout_s, "radosgw")
        self._run("radosgw-admin", *c, "user", "create", "--uid", "posecluster-test", "--display-name", "tests",
                  "--access-key", ACCESS_KEY, "--secret", SECRET_KEY)
        return self.endpoints

    def _fsid(self) -> str:
        for line in open(self.conf):
            if line.startswith("fsid = "):
                return line.split("=", 1)[1].strip()
        raise RuntimeError("no fsid in ceph.conf")

    def _wait_for(self, port: int, timeout_s: float, daemon: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for proc in self.processes:
                if proc.poll() is not None:
                    raise RuntimeError(f"{proc.args[0]} exited ({proc.returncode}) before {daemon} listened: "
                                       f"{self._errors()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"{daemon} did not listen on {port} within {timeout_s:.0f} s; logs in {self.folder}/log")

    def _errors(self) -> str:
        """The error lines (Ceph marks them ' -1 ') of every daemon's log, last few first."""
        found = []
        for name in sorted(os.listdir(f"{self.folder}/log")):
            with open(f"{self.folder}/log/{name}", errors="replace") as fh:
                found += [f"{name}: {line.strip()[-200:]}" for line in fh if " -1 " in line]
        return " | ".join(found[-8:]) or f"no error lines; logs in {self.folder}/log"

    def stop(self) -> None:
        for proc in reversed(self.processes):
            if proc.poll() is None:
                proc.terminate()
        for proc in self.processes:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.processes.clear()


def start_gateway(folder: str, attempts: int = 3) -> tuple[CephRGW, Endpoints]:
    """A started gateway in a fresh subfolder of `folder`, tried `attempts` times: a port picked free can be
    taken by another process before a daemon binds it, and a daemon that loses such a race exits."""
    errors = []
    for attempt in range(attempts):
        gateway = CephRGW(f"{folder}/attempt-{attempt}")
        os.makedirs(gateway.folder, exist_ok=True)
        try:
            return gateway, gateway.start()
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            gateway.stop()
            errors.append(str(exc))
    raise RuntimeError(f"Ceph RGW did not start in {attempts} attempts: " + " || ".join(errors))
