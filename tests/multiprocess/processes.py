"""Runs an lta entry point as N real processes of one JAX job on localhost.

Each process gets the coordinator's loopback address and its place in the
job through LTA_COORDINATOR_ADDRESS / LTA_NUM_PROCESSES / LTA_PROCESS_ID
(lta.partitioning.initialize_distributed), and one CPU device unless
`devices_per_process` says otherwise. Collectives go over gloo.
"""

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

from lta import partitioning
from tests import cli_run

# Like the XLA cache (tests/conftest.py), compiled bytecode is shared by runs.
PYCACHE = os.path.join(tempfile.gettempdir(), "lta_trainer_tests_pycache")


def free_port() -> int:
  """A loopback port nothing listens on now (the coordinator binds it)."""
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def process_env(process_id: int, num_processes: int, port: int,
                devices_per_process: int = 1) -> dict[str, str]:
  env = cli_run.subprocess_env()
  env.pop("PYTHONDONTWRITEBYTECODE", None)
  env.setdefault("PYTHONPYCACHEPREFIX", PYCACHE)
  if devices_per_process > 1:
    env["XLA_FLAGS"] = ("--xla_force_host_platform_device_count="
                        f"{devices_per_process}")
  if num_processes > 1:
    # Without the shared XLA cache: a process loading its programs from it
    # while a peer compiles can outrun gloo's fixed 30 s first-collective
    # wait on a loaded machine.
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    env.update({partitioning.ENV_COORDINATOR: f"127.0.0.1:{port}",
                partitioning.ENV_NUM_PROCESSES: str(num_processes),
                partitioning.ENV_PROCESS_ID: str(process_id)})
  return env


class Process:
  """One background process, its stdout and stderr collected as lines."""

  def __init__(self, argv, env):
    self.proc = subprocess.Popen(argv, cwd=cli_run.REPO, env=env,
                                 stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
    self.lines: list[str] = []
    self.times: list[float] = []  # time.monotonic() each line came
    self._reader = threading.Thread(target=self._read, daemon=True)
    self._reader.start()

  def _read(self):
    for line in self.proc.stdout:
      self.times.append(time.monotonic())
      self.lines.append(line)

  @property
  def output(self) -> str:
    return "".join(self.lines)

  def wait_for_line(self, prefix: str, after: int = 0,
                    timeout: float = 600) -> int:
    """Index of the first line from `after` on that starts with `prefix`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
      for i in range(after, len(self.lines)):
        if self.lines[i].startswith(prefix):
          return i
      if self.proc.poll() is not None and not self._reader.is_alive():
        break
      time.sleep(0.01)
    raise AssertionError(f"no line starting {prefix!r}:\n{self.output}")

  def wait(self, deadline: float) -> int:
    try:
      self.proc.wait(timeout=max(deadline - time.time(), 1))
    except subprocess.TimeoutExpired:
      pass
    finally:
      if self.proc.poll() is None:
        self.proc.kill()
        self.proc.wait()
    self._reader.join(timeout=60)
    return self.proc.returncode


class Job:
  """`python -m module args` as `num_processes` processes of one job, each
  with `env` added to its environment."""

  def __init__(self, module: str, args, num_processes: int,
               devices_per_process: int = 1, env=None):
    port = free_port()
    self.processes = [
        Process([sys.executable, "-m", module, *args],
                {**process_env(i, num_processes, port, devices_per_process),
                 **(env or {})})
        for i in range(num_processes)]

  def wait(self, timeout: float = 900) -> list[int]:
    """Every process's exit code; one still running at `timeout` is killed
    (its code is then -SIGKILL)."""
    deadline = time.time() + timeout
    return [p.wait(deadline) for p in self.processes]

  def kill(self) -> None:
    """Ends every process still running (a failed test leaves none)."""
    for p in self.processes:
      if p.proc.poll() is None:
        p.proc.kill()
    self.wait(timeout=60)

  @property
  def output(self) -> str:
    return "\n".join(f"--- process {i} ---\n{p.output[-4000:]}"
                     for i, p in enumerate(self.processes))

  def finish(self, timeout: float = 900) -> str:
    """Waits for every process to exit 0 (else fails); their output."""
    codes = self.wait(timeout)
    assert codes == [0] * len(codes), f"exit codes {codes}\n{self.output}"
    return self.output
