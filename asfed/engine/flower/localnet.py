"""A deployment on 127.0.0.1 as docs/deploy.md builds one across machines, for tests and benchmarks.

One SuperLink with TLS (and, by default, `--enable-supernode-auth`), one SuperNode per agent
with its own key pair registered through `flwr supernode register`, each SuperNode started with
`--isolation process` and a long-lived ClientApp worker (`asfed.engine.flower.worker`) next to
it. It runs exactly the commands the recipe gives, so the tests try the recipe.

Every process is started in its own session and stopped by PID (with the processes Flower
started below it, found through /proc), so nothing outlives `close()`; every wait has a stated
timeout.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from asfed.interpreters import module_argv

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, seconds: float, proc: subprocess.Popen | None = None) -> None:
    """Return once something accepts connections on 127.0.0.1:port; fail after `seconds` or as
    soon as `proc` (the process that should listen) exits."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited ({proc.returncode}) before listening")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {seconds} s")


def _key_usage(cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def write_pki(folder: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> None:
    """A throwaway CA (`ca.crt`) and a server certificate for `hosts` signed by it
    (`server.pem`, `server.key`), valid for a day, with the extensions strict verifiers
    (Python >= 3.13's default context) ask for."""
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "asfed test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP384R1())
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (folder / "ca.crt").write_bytes(ca.public_bytes(pem))
    (folder / "server.pem").write_bytes(cert.public_bytes(pem))
    (folder / "server.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def write_node_key(path: Path) -> Path:
    """A SuperNode key pair in OpenSSH format (what `ssh-keygen -t ecdsa -b 384` writes):
    the private key at `path`, the public key at `path.pub`, which is returned."""
    key = ec.generate_private_key(ec.SECP384R1())
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    pub = path.with_name(path.name + ".pub")
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
    )
    return pub


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (from /proc; Linux)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, seconds: float = 10.0) -> None:
    """Stop `proc`, its process group and every process below it, by PID; SIGKILL whatever is
    left after `seconds`."""
    pids = [proc.pid, *descendants(proc.pid)]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=seconds)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=seconds)


@dataclass
class Node:
    """One agent's machine: its key pair, registered node id, SuperNode and worker."""

    index: int
    key: Path
    node_id: int | None = None
    runtime_port: int = 0
    supernode: subprocess.Popen | None = None
    worker: subprocess.Popen | None = None


@dataclass
class LocalNet:
    """The deployment's processes and files under `root`."""

    root: Path
    tls: bool = True
    auth: bool = True
    port: int = field(default_factory=free_port)
    procs: list[subprocess.Popen] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    superlink: subprocess.Popen | None = None

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.home = self.root / "flwr-home"  # the operator's FLWR_HOME (`flwr` CLI)
        self.home.mkdir(exist_ok=True)
        self.certs = self.root / "certificates"
        if self.tls:
            write_pki(self.certs)
        self.secret = self.root / "superexec.secret"
        self.secret.write_bytes(secrets.token_bytes(32))
        self.secret.chmod(0o600)
        security = (
            f'root-certificates = "{self.certs / "ca.crt"}"\n' if self.tls else "insecure = true\n"
        )
        (self.home / "config.toml").write_text(
            '[superlink]\ndefault = "deploy"\n\n[superlink.deploy]\n'
            f'address = "127.0.0.1:{self.port}"\n{security}'
        )
        self.env = {**os.environ, "FLWR_HOME": str(self.home), "OMP_NUM_THREADS": "1"}

    # processes ---------------------------------------------------------------------------

    def spawn(
        self, name: str, argv: list[str], env: dict | None = None, cwd: Path | None = None
    ) -> subprocess.Popen:
        """Start `argv` in its own session, its output appended to `<name>.log`."""
        log = open(self.root / f"{name}.log", "a")  # noqa: SIM115 (kept by the process)
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**self.env, **(env or {})},
            start_new_session=True,
            cwd=cwd or self.root,
        )
        log.close()
        self.procs.append(proc)
        return proc

    def log(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start_superlink(self, database: Path | None = None, seconds: float = 60) -> None:
        """`flower-superlink` with TLS and node authentication (as configured); `database`
        keeps registered nodes across a restart."""
        argv = [str(BIN / "flower-superlink"), "--port", str(self.port)]
        if self.tls:
            c = self.certs
            argv += [
                "--ssl-ca-certfile",
                str(c / "ca.crt"),
                "--ssl-certfile",
                str(c / "server.pem"),
                "--ssl-keyfile",
                str(c / "server.key"),
            ]
        else:
            argv += ["--insecure"]
        if self.auth:
            argv += ["--enable-supernode-auth"]
        if database is not None:
            argv += ["--database", str(database)]
        argv += ["--disable-runtime-dependency-installation"]
        self.superlink = self.spawn("superlink", argv)
        wait_for_port(self.port, seconds, self.superlink)

    def stop_superlink(self, sig: int = signal.SIGKILL) -> None:
        assert self.superlink is not None
        stop(self.superlink, sig)
        self.superlink = None

    def flwr(self, *args: str, seconds: float = 120) -> subprocess.CompletedProcess:
        """The `flwr` CLI as the SuperLink's operator runs it (from the repository)."""
        return subprocess.run(
            [str(BIN / "flwr"), *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=seconds,
        )

    def add_node(self, register: bool = True) -> Node:
        """A key pair for the next agent's SuperNode; registered with the SuperLink (the
        operator's `flwr supernode register`) unless `register` is False."""
        node = Node(len(self.nodes), self.root / f"node{len(self.nodes)}.key")
        pub = write_node_key(node.key)
        if register:
            res = self.flwr("supernode", "register", str(pub), "--format", "json")
            if res.returncode != 0:
                raise RuntimeError(f"flwr supernode register failed: {res.stdout}{res.stderr}")
            node.node_id = int(json.loads(res.stdout[res.stdout.index("{") :])["node-id"])
        self.nodes.append(node)
        return node

    def start_node(self, node: Node, seconds: float = 60, stock: bool = False) -> None:
        """The node's SuperNode and its long-lived ClientApp worker."""
        self.start_supernode(node, seconds, stock)
        self.start_worker(node)

    def start_supernode(
        self,
        node: Node,
        seconds: float = 60,
        stock: bool = False,
        wait: bool = True,
        isolation: str = "process",
    ) -> None:
        """The node's SuperNode, returning once its Runtime API listens (if `wait`); `stock`:
        Flower's own `flower-supernode` rather than asfed's launcher (the same with adaptive
        waits, `asfed.engine.flower.polling`); `isolation="subprocess"`: Flower's default, a
        `flwr-clientapp` process per message (no worker then)."""
        node.runtime_port = node.runtime_port or free_port()
        launcher = (
            [str(BIN / "flower-supernode")]
            if stock
            else module_argv("asfed.engine.flower.supernode")
        )
        argv = [*launcher, "--superlink", f"127.0.0.1:{self.port}"]
        argv += ["--root-certificates", str(self.certs / "ca.crt")] if self.tls else ["--insecure"]
        if self.auth:
            argv += ["--auth-supernode-private-key", str(node.key)]
        argv += [
            "--isolation",
            isolation,
            "--port",
            str(node.runtime_port),
            "--superexec-auth-secret-file",
            str(self.secret),
        ]
        node.supernode = self.spawn(f"supernode{node.index}", argv, self.node_env(node))
        if wait:
            wait_for_port(node.runtime_port, seconds, node.supernode)

    def start_worker(self, node: Node) -> None:
        """The long-lived ClientApp worker next to the node's SuperNode."""
        node.worker = self.spawn(
            f"worker{node.index}",
            module_argv(
                "asfed.engine.flower.worker",
                "--runtime-api-address",
                f"127.0.0.1:{node.runtime_port}",
                "--insecure",
                "--superexec-auth-secret-file",
                str(self.secret),
            ),
            self.node_env(node),
        )

    def node_env(self, node: Node) -> dict[str, str]:
        """A node's own FLWR_HOME, as on its own machine."""
        home = self.root / f"node{node.index}-home"
        home.mkdir(exist_ok=True)
        return {"FLWR_HOME": str(home)}

    def kill(self, proc: subprocess.Popen | None, sig: int = signal.SIGKILL) -> None:
        if proc is not None:
            stop(proc, sig)

    def statuses(self) -> dict[int, str]:
        """Each registered node's status as the SuperLink sees it (`flwr supernode list`)."""
        res = self.flwr("supernode", "list", "--format", "json", seconds=60)
        if res.returncode != 0:
            raise RuntimeError(f"flwr supernode list failed: {res.stdout}{res.stderr}")
        nodes = json.loads(res.stdout[res.stdout.index("{") :])["nodes"]
        return {int(n["node-id"]): str(n["status"]) for n in nodes}

    def wait_status(self, node: Node, status: str, seconds: float) -> None:
        """Return once the SuperLink reports `node` as `status` (e.g. a killed node "offline",
        which it must be before it can rejoin with its key); fail after `seconds`."""
        deadline = time.monotonic() + seconds
        while True:
            seen = self.statuses().get(node.node_id or -1)
            if seen == status:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"node {node.node_id} is {seen}, not {status}, after {seconds}s")
            time.sleep(0.5)

    def run(self, run_config: str, seconds: float = 300) -> subprocess.CompletedProcess:
        """`flwr run . deploy --stream` with the run config."""
        return self.flwr(
            "run", ".", "deploy", "--stream", "--run-config", run_config, seconds=seconds
        )

    def start_run(self, run_config: str) -> tuple[subprocess.Popen, Path]:
        """`flwr run . deploy --stream` in the background; returns it and its log file."""
        name = f"run{sum(1 for _ in self.root.glob('run*.log'))}"
        argv = [str(BIN / "flwr"), "run", ".", "deploy", "--stream", "--run-config", run_config]
        return self.spawn(name, argv, cwd=REPO), self.root / f"{name}.log"

    def close(self) -> None:
        """Stop every process this deployment started (and theirs), by PID."""
        for proc in reversed(self.procs):
            if proc.poll() is None or descendants(proc.pid):
                stop(proc)
        self.procs.clear()
