"""The device mesh and logical-axis rules: the only module that knows devices.

Every parameter and activation in lta.models names its axes logically
('batch', 'embed', 'mlp', ...). This module maps those names onto a 2-D
(data, model) mesh. Two rule sets, chosen by `MeshConfig.rules`:
'tensor_parallel' (the default): data parallelism over 'data', the heads,
MLP and vocabulary dimensions over 'model', weights replicated over 'data';
'fsdp': the same, and every weight's 'embed' dimension also split over
'data', so a kernel spans both axes (the frozen base has no optimizer
state, so its memory per device falls by the whole mesh size).
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import os
import re
import sys
import threading
import time
import traceback
from typing import Any, Iterator, Optional, Sequence, Union

from absl import logging
import flax.linen as nn
import gin
import jax
from jax.experimental import mesh_utils
from jax.experimental import multihost_utils
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from lta import errors

DATA, MODEL = "data", "model"

# Logical axis -> mesh axis (None: replicated). Names are lta.models.layers'.
LOGICAL_AXIS_RULES: tuple[tuple[str, Optional[str]], ...] = (
    ("batch", DATA),
    ("length", None),
    ("kv_length", None),
    ("kv_heads", None),
    ("head_dim", None),
    ("embed", None),
    ("joined_kv", MODEL),
    ("heads", MODEL),
    ("mlp", MODEL),
    ("vocab", MODEL),
    ("relpos_buckets", None),
    ("adapter_rank", None),
    ("kron_outer_in", None),
    ("kron_outer_out", None),
)

# Rules are in priority order: an activation ('batch', 'length', 'embed')
# gives 'data' to 'batch' first, so its 'embed' stays whole; a weight has no
# 'batch' and splits 'embed' over 'data'. XLA gathers the weight per layer.
FSDP_AXIS_RULES: tuple[tuple[str, Optional[str]], ...] = tuple(
    (name, DATA if name == "embed" else axis)
    for name, axis in LOGICAL_AXIS_RULES)

AXIS_RULE_SETS = {"tensor_parallel": LOGICAL_AXIS_RULES,
                  "fsdp": FSDP_AXIS_RULES}


# A process of a multi-process job finds its place here when no gin binding
# gives it (launch/local.sh, a test harness, a scheduler's wrapper script).
ENV_COORDINATOR = "LTA_COORDINATOR_ADDRESS"
ENV_NUM_PROCESSES = "LTA_NUM_PROCESSES"
ENV_PROCESS_ID = "LTA_PROCESS_ID"


ENV_COORDINATOR_PORT = "LTA_COORDINATOR_PORT"  # under srun; else from the job id


def slurm_environment() -> dict[str, str]:
  """The LTA_* values of a process started by SLURM's `srun` with several
  tasks ({} otherwise): SLURM_PROCID of SLURM_NTASKS, and the coordinator
  on the step's first node, at LTA_COORDINATOR_PORT or a port in
  61440..65535 chosen by SLURM_JOB_ID (the same in every task).
  """
  env = os.environ
  names = ("SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID",
           "SLURM_JOB_ID")
  if not all(n in env for n in names) or env["SLURM_NTASKS"] == "1":
    return {}
  port = env.get(ENV_COORDINATOR_PORT) or str(
      61440 + _slurm_int("SLURM_JOB_ID") % 4096)
  return {ENV_COORDINATOR: f"{first_slurm_node(env['SLURM_STEP_NODELIST'])}"
                           f":{port}",
          ENV_NUM_PROCESSES: str(_slurm_int("SLURM_NTASKS")),
          ENV_PROCESS_ID: str(_slurm_int("SLURM_PROCID"))}


def first_slurm_node(nodelist: str) -> str:
  """'gpu[003-010,012],cpu1' -> 'gpu003'; 'a1,b2' -> 'a1'."""
  first = re.match(r"([^,\[]*)(?:\[([^\],-]*))?", nodelist.strip())
  return first.group(1) + (first.group(2) or "")


def _slurm_int(name: str) -> int:
  try:
    return int(os.environ[name])
  except ValueError:
    raise errors.ConfigError(
        f"{name}={os.environ[name]!r} must be an integer") from None


# A process whose peer died exits with this (sysexits.h EX_UNAVAILABLE):
# the job failed, and rerunning all of it resumes from the last checkpoint.
EXIT_PEER_LOST = 69
_WATCH_PERIOD_S = 1.0
_watchdog: Optional["_PeerWatchdog"] = None
_BEATS, _FINISHED = "lta/heartbeat", "lta/finished"  # key-value directories


@gin.configurable
def initialize_distributed(enabled: bool = False,
                           coordinator_address: Optional[str] = None,
                           num_processes: Optional[int] = None,
                           process_id: Optional[int] = None,
                           heartbeat_timeout_seconds: int = 30) -> None:
  """Joins a multi-process job (TPU VM pod slice, GPU nodes, CPU processes).

  Off by default. On TPU VMs the arguments may stay None: JAX discovers the
  slice from the environment. Multi-node GPU and CPU jobs need all three,
  from gin or from LTA_COORDINATOR_ADDRESS, LTA_NUM_PROCESSES and
  LTA_PROCESS_ID (any of which turns it on), or from SLURM's srun
  variables. Call before anything touches a device.

  A process that stops sending heartbeats for `heartbeat_timeout_seconds`
  (killed, crashed, its host gone) stops the whole job: every other process
  prints one line naming it and exits with EXIT_PEER_LOST, instead of
  hanging in a collective.
  """
  slurm = slurm_environment()
  coordinator_address = (coordinator_address or
                         os.environ.get(ENV_COORDINATOR) or
                         slurm.get(ENV_COORDINATOR))
  num_processes = num_processes or _env_int(ENV_NUM_PROCESSES) or (
      _int_or_none(slurm.get(ENV_NUM_PROCESSES)))
  if process_id is None:
    process_id = _env_int(ENV_PROCESS_ID)
  if process_id is None:
    process_id = _int_or_none(slurm.get(ENV_PROCESS_ID))
  enabled = enabled or bool(slurm) or any(v is not None for v in (
      os.environ.get(ENV_COORDINATOR), os.environ.get(ENV_NUM_PROCESSES),
      os.environ.get(ENV_PROCESS_ID)))
  if not enabled or jax.distributed.is_initialized():
    return
  # CPU processes exchange collectives over gloo; other backends ignore it.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  # JAX's own heartbeat timeout aborts every process with a stack trace;
  # lta's shorter one stops them first, with one line naming the dead one.
  jax.distributed.initialize(
      coordinator_address=coordinator_address, num_processes=num_processes,
      process_id=process_id,
      heartbeat_timeout_seconds=max(100, 3 * heartbeat_timeout_seconds))
  logging.info("Process %d of %d; %d local / %d global devices",
               jax.process_index(), jax.process_count(),
               jax.local_device_count(), jax.device_count())
  if jax.process_count() > 1:
    global _watchdog
    _watchdog = _PeerWatchdog(heartbeat_timeout_seconds)
    _watchdog.start()


class _PeerWatchdog(threading.Thread):
  """Stops this process once another process of the job is gone.

  Every process bumps its counter in the coordination service's key-value
  store (in process 0) each second and reads the others'; one whose counter
  stands still for the timeout is gone, and so is process 0 when the store
  cannot be reached. This process cannot finish its collectives then, so
  it says which process is gone and exits at once. A process that ends
  normally marks itself finished (atexit, before JAX's shutdown barrier).
  """

  def __init__(self, heartbeat_timeout_s: int):
    super().__init__(name="lta-peer-watchdog", daemon=True)
    from jax._src import distributed  # pylint: disable=g-import-not-at-top
    self.client = distributed.global_state.client
    self.address = distributed.global_state.coordinator_address
    self.timeout_s = heartbeat_timeout_s
    self.stopped = threading.Event()
    atexit.register(self.finish)  # runs before JAX's shutdown (LIFO)

  def run(self):
    me, count = jax.process_index(), jax.process_count()
    last_seen = {i: (None, time.monotonic()) for i in range(count) if i != me}
    beat = 0
    while not self.stopped.wait(_WATCH_PERIOD_S):
      beat += 1
      try:
        self.client.key_value_set(f"{_BEATS}/{me}", str(beat),
                                  allow_overwrite=True)
        beats = dict(self.client.key_value_dir_get(_BEATS))
        finished = dict(self.client.key_value_dir_get(_FINISHED))
      except Exception as e:  # pylint: disable=broad-except
        if self.stopped.is_set():
          return
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        self.stop_job(f"process 0 (the coordinator, {self.address}) is "
                      f"unreachable ({first[:160]})")
      now, gone = time.monotonic(), []
      for i, (value, since) in last_seen.items():
        new = beats.get(f"{_BEATS}/{i}")
        if new != value:
          last_seen[i] = (new, now)
        elif now - since > self.timeout_s and (
            f"{_FINISHED}/{i}" not in finished):
          gone.append(i)
      if gone and not self.stopped.is_set():
        self.stop_job(
            f"process {', '.join(map(str, gone))} of {count} sent no "
            f"heartbeat for {self.timeout_s} s (killed or crashed?)")

  def finish(self):
    """This process ends normally: its peers must not take it for dead."""
    self.stopped.set()
    try:
      self.client.key_value_set(f"{_FINISHED}/{jax.process_index()}", "1",
                                allow_overwrite=True)
    except Exception:  # pylint: disable=broad-except
      pass  # the coordinator is gone, and with it every peer

  def stop_job(self, reason: str):
    os.write(2, (f"lta: {reason}; stopping process {jax.process_index()} "
                 f"too (exit {EXIT_PEER_LOST}). Rerun the job to resume "
                 "from its last checkpoint.\n").encode())
    os._exit(EXIT_PEER_LOST)  # pylint: disable=protected-access


def leave_job_after_failure(exit_code: int, unexpected: bool) -> None:
  """Ends a failed process of a multi-process job now.

  It skips JAX's shutdown barrier, where it would wait for peers stuck in a
  collective with it; their watchdogs then stop them. An `unexpected`
  failure (a collective's connection reset, say) may come from a dead
  peer: the watchdog gets a heartbeat timeout to name it first.
  """
  if not exit_code or _watchdog is None:
    return
  if unexpected:
    _watchdog.join(_watchdog.timeout_s + 3 * _WATCH_PERIOD_S)
    traceback.print_exc()
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(exit_code)  # pylint: disable=protected-access


def _int_or_none(value: Optional[str]) -> Optional[int]:
  return None if value is None else int(value)


def _env_int(name: str) -> Optional[int]:
  value = os.environ.get(name)
  if value is None:
    return None
  try:
    return int(value)
  except ValueError:
    raise errors.ConfigError(
        f"{name}={value!r} must be an integer") from None


@gin.configurable
@dataclasses.dataclass(frozen=True)
class MeshConfig:
  """Mesh shape and logical-axis rules.

  -1 on one axis takes the devices the other leaves. `rules` is a name in
  AXIS_RULE_SETS ('tensor_parallel', 'fsdp') or the rules themselves; the
  field always holds the rules once built.
  """
  data: int = -1
  model: int = 1
  rules: Union[str, tuple[tuple[str, Optional[str]], ...]] = (
      LOGICAL_AXIS_RULES)

  def __post_init__(self):
    if isinstance(self.rules, str):
      if self.rules not in AXIS_RULE_SETS:
        raise errors.ConfigError(
            f"MeshConfig.rules={self.rules!r} is not a rule set; choose one "
            f"of {sorted(AXIS_RULE_SETS)}"
            f"{errors.did_you_mean(self.rules, AXIS_RULE_SETS)}")
      object.__setattr__(self, "rules", AXIS_RULE_SETS[self.rules])
    else:  # gin and JSON give lists; the rules must stay hashable
      object.__setattr__(self, "rules", tuple(
          (name, tuple(axis) if isinstance(axis, list) else axis)
          for name, axis in self.rules))

  def shape(self, num_devices: int) -> tuple[int, int]:
    data, model = self.data, self.model
    if data == -1 and model == -1:
      raise errors.ConfigError(
          "MeshConfig: at most one of data, model may be -1")
    if data == -1:
      data = num_devices // model if model > 0 else 0
    elif model == -1:
      model = num_devices // data if data > 0 else 0
    if data <= 0 or model <= 0 or data * model != num_devices:
      raise errors.ConfigError(
          f"MeshConfig(data={self.data}, model={self.model}) does not fit "
          f"{num_devices} devices")
    return data, model


def make_mesh(config: Optional[MeshConfig] = None,
              devices: Optional[Sequence[jax.Device]] = None) -> Mesh:
  """A (data, model) mesh over `devices` (default: all devices)."""
  config = config or MeshConfig()  # Built here so gin bindings apply.
  devices = list(jax.devices() if devices is None else devices)
  shape = config.shape(len(devices))
  if devices == list(jax.devices()):
    # Lays the mesh out along the physical interconnect where it can.
    grid = mesh_utils.create_device_mesh(shape, devices)
  else:
    grid = np.asarray(devices).reshape(shape)
  return Mesh(grid, (DATA, MODEL))


@contextlib.contextmanager
def activated(mesh: Mesh, rules=LOGICAL_AXIS_RULES) -> Iterator[Mesh]:
  """Makes `mesh` and `rules` the ones activation constraints resolve to."""
  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
    yield mesh


def logical_to_sharding(boxed_tree: Any, mesh: Mesh,
                        rules=LOGICAL_AXIS_RULES) -> Any:
  """NamedShardings for a tree of nn.Partitioned (boxed) variables.

  Leaves without partitioning metadata are replicated, and so is any
  dimension the mesh axis does not divide (e.g. mT5-small's 6 heads on a
  model axis of 4), rather than failing to place it.
  """
  specs = nn.logical_to_mesh(nn.get_partition_spec(boxed_tree), rules)

  def fit(spec, leaf):
    shape = getattr(nn.meta.unbox(leaf), "shape", ())
    axes = [a if a is None or dim % _axis_size(mesh, a) == 0 else None
            for a, dim in zip(tuple(spec), shape)]
    return NamedSharding(mesh, PartitionSpec(*axes))

  return jax.tree.map(fit, specs, boxed_tree,
                      is_leaf=lambda x: isinstance(x, PartitionSpec))


def _axis_size(mesh: Mesh, axis) -> int:
  names = axis if isinstance(axis, tuple) else (axis,)
  return int(np.prod([mesh.shape[n] for n in names]))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Splits the leading (batch) axis of every input over 'data'."""
  return NamedSharding(mesh, PartitionSpec(DATA))


def check_batch_size(global_batch_size: int, mesh: Mesh) -> int:
  """The per-host batch size; the global batch must split evenly."""
  data = mesh.shape[DATA]
  hosts = jax.process_count()
  if global_batch_size % data or global_batch_size % hosts:
    raise errors.ConfigError(
        f"Global batch size {global_batch_size} must divide by the mesh's "
        f"data axis ({data}) and the host count ({hosts})")
  return global_batch_size // hosts


def host_batch_to_global(batch: dict[str, np.ndarray],
                         mesh: Mesh) -> dict[str, jax.Array]:
  """Assembles each host's slice of a batch into one global jax.Array."""
  sharding = batch_sharding(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, v)
          for k, v in batch.items()}


def data_shard() -> tuple[int, int]:
  """(index, count) of this host's shard of the input data."""
  return jax.process_index(), jax.process_count()


def is_writer() -> bool:
  """Whether this process writes a job's shared files (process 0 does)."""
  return jax.process_index() == 0


_barriers = 0  # barrier ids must differ: each call gets the next number


def wait_for_processes(name: str, timeout_s: int = 1800) -> None:
  """Returns once every process of the job got here (one process: at once).

  gloo, the CPU collectives, waits a fixed 30 s for its peers at a
  collective, so a process still compiling a program its peer already runs
  fails the job on a loaded machine. The coordination service's barrier
  waits as long as `timeout_s`. Every process must call it, in the same order.
  """
  global _barriers
  if jax.process_count() == 1:
    return
  from jax._src import distributed  # pylint: disable=g-import-not-at-top
  _barriers += 1
  distributed.global_state.client.wait_at_barrier(
      f"lta/{name}/{_barriers}", timeout_in_ms=timeout_s * 1000)


def compile_then_wait(jitted, name: str):
  """`jitted` (a jax.jit function), compiled ahead of its first call; then
  every process waits for the others (`wait_for_processes`) before running
  it, so that a peer still compiling does not fail a collective in it.
  Later calls run the compiled program at once (same shapes only)."""
  compiled = None

  def call(*args):
    nonlocal compiled
    if compiled is None:
      compiled = jitted.lower(*args).compile()
      wait_for_processes(f"compiled_{name}")
    return compiled(*args)

  return call


def gather_from_processes(local: np.ndarray) -> np.ndarray:
  """Every process's `local` (same shape everywhere), stacked in process
  order: shape (process_count, *local.shape), on every process.

  A barrier first: a peer may still be decoding (or compiling) for longer
  than gloo waits at the gather.
  """
  if jax.process_count() == 1:
    return np.asarray(local)[None]
  wait_for_processes("gather")
  return np.asarray(multihost_utils.process_allgather(local))
