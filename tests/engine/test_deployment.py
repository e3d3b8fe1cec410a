"""The same apps on Flower's deployment engine: a real SuperLink and three SuperNodes on
127.0.0.1 (insecure mode; the README shows the TLS flags), driven by `flwr run .`.

Every process is started in its own process group and killed when the test ends, pass or fail.
"""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from asfed.config import build_config
from asfed.engine.loop import Simulation

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {seconds} s")


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[dict]:
    home = tmp_path / "flwr"
    home.mkdir()
    port = free_port()
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "deploy"\n\n[superlink.deploy]\n'
        f'address = "127.0.0.1:{port}"\ninsecure = true\n'
    )
    env = {**os.environ, "FLWR_HOME": str(home), "OMP_NUM_THREADS": "1"}
    procs: list[subprocess.Popen] = []

    def spawn(name: str, args: list[str], extra_env: dict) -> None:
        log = open(tmp_path / f"{name}.log", "w")  # noqa: SIM115 (closed with the process)
        procs.append(
            subprocess.Popen(
                [str(BIN / args[0]), *args[1:]],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**env, **extra_env},
                start_new_session=True,
            )
        )

    try:
        spawn(
            "superlink",
            [
                "flower-superlink",
                "--insecure",
                "--port",
                str(port),
                "--disable-runtime-dependency-installation",
            ],
            {},
        )
        wait_for_port(port, 60)
        for i in range(3):
            node_home = home / f"node{i}"
            node_home.mkdir()
            spawn(
                f"supernode{i}",
                [
                    "flower-supernode",
                    "--insecure",
                    "--superlink",
                    f"127.0.0.1:{port}",
                    "--port",
                    str(free_port()),
                ],
                {"FLWR_HOME": str(node_home)},
            )
        yield {"env": env, "logs": tmp_path}
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)


def test_exchange_on_the_deployment_engine_matches_local(deployment, tmp_path) -> None:
    out = tmp_path / "run"
    res = subprocess.run(
        [
            str(BIN / "flwr"),
            "run",
            ".",
            "deploy",
            "--stream",
            "--run-config",
            f'rounds=2 episodes=2 seed=9 out="{out}"',
        ],
        cwd=REPO,
        env=deployment["env"],
        capture_output=True,
        text=True,
        timeout=420,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    with open(out / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    sim = Simulation(build_config(env="exchange", method="as", episodes=2, seed=9))
    local = [sim.run_round()[0] for _ in range(2)]
    assert [float(r["team_return"]) for r in rows] == [m["team_return"] for m in local]
    assert [int(r["bytes_total"]) for r in rows] == [m["bytes_total"] for m in local]
    assert (out / "checkpoint.pt").exists() and (out / "learning_curve.png").exists()


def test_flwr_run_on_the_managed_local_superlink(tmp_path) -> None:
    """`flwr run .` from the repository: Flower starts its own detached SuperLink in simulation
    mode; it gets unique ports here, and is stopped by them when the test ends."""
    port, control = free_port(), free_port()
    home = tmp_path / "flwr"
    home.mkdir()
    env = {
        **os.environ,
        "FLWR_HOME": str(home),
        "FLWR_LOCAL_SUPERLINK_HTTP_API_PORT": str(port),
        "FLWR_LOCAL_CONTROL_API_PORT": str(control),
        "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
        "OMP_NUM_THREADS": "1",
    }
    out = tmp_path / "run"
    try:
        res = subprocess.run(
            [
                str(BIN / "flwr"),
                "run",
                ".",
                "--stream",
                "--federation-config",
                "num-supernodes=3",
                "--run-config",
                f'rounds=2 episodes=2 seed=9 out="{out}"',
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        found = subprocess.run(
            ["pgrep", "-f", f"flower-superlink.*--port {port}"], capture_output=True, text=True
        )
        for pid in found.stdout.split():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(int(pid), signal.SIGTERM)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    sim = Simulation(build_config(env="exchange", method="as", episodes=2, seed=9))
    local = [sim.run_round()[0] for _ in range(2)]
    with open(out / "metrics.csv", newline="") as f:
        assert [float(r["team_return"]) for r in csv.DictReader(f)] == [
            m["team_return"] for m in local
        ]
