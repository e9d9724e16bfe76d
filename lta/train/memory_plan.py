"""Ahead-of-time memory plans: will this model, adapter, batch and mesh fit?

`plan_memory` compiles lta's own train step (`steps.jit_train_step`, the one
`lta train` runs, with the shardings it derives) and optionally its decode
step (`predict_batch`, jitted as `lta eval` does) for the mesh of a target
machine, from abstract shapes (`jax.ShapeDtypeStruct` with shardings):
nothing is allocated. The devices are fake CPU devices, as many as the
target has chips. Each compile reports XLA's per-device buffer accounting
(`compiled.memory_analysis()`): arguments, outputs, the part of the outputs
that reuses donated arguments, and temporaries.

What the numbers are: XLA's CPU backend's accounting of the SPMD-partitioned
program for one device. A TPU or GPU compile of the same program differs:
other fusions and layouts, native bf16, collective buffers, and (on GPU)
the runtime's reserve are not modelled. Treat "fits" as a first filter, not
a guarantee; check the chosen row on the target with one real step.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Callable, Optional, Sequence

import flax.linen as nn
import gin
import jax
import jax.numpy as jnp
import optax

from lta import errors
from lta import partitioning
from lta.adapters import trainable as trainable_lib
from lta.adapters.config import AdapterConfig
from lta.models import families
from lta.models.contract import DecodingConfig
from lta.models.execution import ExecutionConfig
from lta.train import optimizers
from lta.train import state as train_state_lib
from lta.train import steps

GIB = 1024 ** 3
# LLVM's optimisation level changes the machine code, not XLA's buffer
# assignment; level 0 compiles in about half the time (the test against
# the real step compares the two).
COMPILER_OPTIONS = {"xla_backend_optimization_level": 0}
CPU_ACCOUNTING_NOTE = (
    "Numbers are XLA's CPU-backend buffer accounting per device of the "
    "partitioned step, compiled for fake CPU devices; a TPU/GPU compile "
    "fuses and lays out differently (native bf16, collective buffers, no "
    "runtime reserve here): treat 'fits' as a first filter and confirm the "
    "chosen row with one real step on the target.")


@dataclasses.dataclass(frozen=True)
class Target:
  """A machine to plan for: its accelerator chips and memory per chip."""
  name: str
  chips: int
  memory_gib: float
  device: str

  @property
  def memory_bytes(self) -> int:
    return int(self.memory_gib * GIB)


TARGETS = {t.name: t for t in (
    Target("v4-32", 16, 32.0, "TPU v4, 32 GiB HBM per chip"),
    Target("v5e-16", 16, 16.0, "TPU v5e, 16 GiB HBM per chip"),
    Target("8xH100", 8, 80.0, "NVIDIA H100 80GB"),
)}


def target(name: str) -> Target:
  if name not in TARGETS:
    raise errors.ConfigError(
        f"plan_memory.targets: unknown target {name!r}"
        f"{errors.did_you_mean(name, TARGETS)}; known: "
        f"{', '.join(TARGETS)}")
  return TARGETS[name]


@dataclasses.dataclass(frozen=True)
class MemoryStats:
  """XLA's per-device accounting of one compiled program, in bytes."""
  arguments: int
  outputs: int
  aliased: int  # outputs written into donated arguments' buffers
  temporaries: int

  @property
  def total(self) -> int:
    """Arguments, outputs that do not reuse an argument, and temporaries."""
    return self.arguments + self.outputs - self.aliased + self.temporaries

  @classmethod
  def of(cls, compiled: jax.stages.Compiled) -> "MemoryStats":
    m = compiled.memory_analysis()
    if m is None:
      raise errors.ConfigError(
          "this JAX backend gives no memory_analysis() of a compiled step")
    return cls(arguments=m.argument_size_in_bytes,
               outputs=m.output_size_in_bytes,
               aliased=m.alias_size_in_bytes,
               temporaries=m.temp_size_in_bytes)


@dataclasses.dataclass(frozen=True)
class PlanRow:
  """One compile: a step of a target's (data, model) mesh at a batch size."""
  target: Target
  step: str  # "train" or "decode"
  data: int
  model: int
  batch_size: int
  stats: Optional[MemoryStats]
  compile_seconds: float
  skipped: str = ""  # why this row was not compiled
  same_program_as: str = ""  # a target with as many chips compiled it

  @property
  def fits(self) -> bool:
    return self.stats is not None and (
        self.stats.total <= self.target.memory_bytes)


# ------------------------------------------------------------ fake devices --


class TooFewDevices(Exception):
  """JAX started with fewer CPU devices than a target has chips; the plan
  has to run in a fresh process (lta.cli.plan re-runs itself)."""

  def __init__(self, needed: int, have: int):
    super().__init__(f"plan needs {needed} CPU devices, JAX has {have}")
    self.needed = needed


def use_fake_cpu_devices(count: int) -> Sequence[jax.Device]:
  """`count` CPU devices to compile for; JAX is put on CPU with that many
  devices if it has not started yet (else TooFewDevices if it has fewer)."""
  from jax._src import xla_bridge  # pylint: disable=g-import-not-at-top
  if not xla_bridge.backends_are_initialized():
    jax.config.update("jax_platforms", "cpu")
    jax.config.update("jax_num_cpu_devices", count)
  devices = jax.devices("cpu")
  if len(devices) < count:
    raise TooFewDevices(count, len(devices))
  return devices[:count]


def fake_device_env(count: int, environ: dict[str, str]) -> dict[str, str]:
  """An environment in which a new JAX process has `count` CPU devices."""
  flags = " ".join(f for f in environ.get("XLA_FLAGS", "").split()
                   if not f.startswith("--xla_force_host_platform_device"))
  return {**environ, "JAX_PLATFORMS": "cpu",
          "XLA_FLAGS": f"{flags} --xla_force_host_platform_device_count="
                       f"{count}".strip()}


# ------------------------------------------------------------ the compiles --


def abstract_batch(model: families.Model, batch_size: int,
                   lengths: dict[str, int], sharding, step: str
                   ) -> dict[str, jax.ShapeDtypeStruct]:
  """The int32 features a train (or decode) batch of `model` holds, as
  the input pipeline makes them (lta.data.input_pipeline)."""
  inputs, targets = lengths["inputs"], lengths["targets"]
  spec = lambda length, dtype=jnp.int32: jax.ShapeDtypeStruct(
      (batch_size, length), dtype, sharding=sharding)
  if model.ARCHITECTURE == "decoder_only":
    if step == "decode":  # prompt_batch: start token + prompt, left-padded
      return {"prompt_tokens": spec(inputs + 1),
              "prompt_mask": spec(inputs + 1, jnp.bool_)}
    return {k: spec(inputs + targets) for k in (
        "decoder_input_tokens", "decoder_target_tokens",
        "decoder_loss_weights")}
  if step == "decode":
    return {"encoder_input_tokens": spec(inputs)}
  return {"encoder_input_tokens": spec(inputs),
          **{k: spec(targets) for k in (
              "decoder_input_tokens", "decoder_target_tokens",
              "decoder_loss_weights")}}


def _with_shardings(abstract: Any, shardings: Any) -> Any:
  return jax.tree.map(
      lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
      abstract, shardings)


def abstract_train_state(model: families.Model, pattern: str,
                         optimizer: optax.GradientTransformation,
                         state_sh: train_state_lib.TrainState):
  """The TrainState `lta train` builds, as shapes with its shardings."""
  variables = jax.eval_shape(model.init_unboxed, jax.random.PRNGKey(0))
  create = functools.partial(train_state_lib.create, pattern=pattern,
                             optimizer=optimizer)
  return _with_shardings(jax.eval_shape(create, variables), state_sh)


def plan_train_step(model: families.Model, pattern: str,
                    optimizer: optax.GradientTransformation,
                    mesh: jax.sharding.Mesh, rules, batch_size: int,
                    lengths: dict[str, int], num_microbatches: int = 1
                    ) -> MemoryStats:
  """Compiles lta train's step for `mesh` from shapes; its accounting."""
  _, state_sh = steps.state_shardings(model, pattern, optimizer, mesh, rules)
  state = abstract_train_state(model, pattern, optimizer, state_sh)
  batch = abstract_batch(model, batch_size, lengths,
                         partitioning.batch_sharding(mesh), "train")
  with partitioning.activated(mesh, rules):
    step = steps.jit_train_step(model, optimizer, state_sh, mesh,
                                num_microbatches=num_microbatches)
    compiled = step.lower(state, batch).compile(COMPILER_OPTIONS)
    return MemoryStats.of(compiled)


def plan_decode_step(model: families.Model, mesh: jax.sharding.Mesh, rules,
                     batch_size: int, lengths: dict[str, int],
                     decoding: DecodingConfig) -> MemoryStats:
  """Compiles predict_batch (prompt encoding, cache, decode loop) with the
  variables placed as in training; its accounting."""
  boxed = jax.eval_shape(model.init_variables, jax.random.PRNGKey(0))
  var_sh = partitioning.logical_to_sharding(boxed, mesh, rules)
  variables = _with_shardings(nn.meta.unbox(boxed), var_sh)
  batch = abstract_batch(model, batch_size, lengths,
                         partitioning.batch_sharding(mesh), "decode")
  with partitioning.activated(mesh, rules):
    predict = jax.jit(functools.partial(model.predict_batch,
                                        config=decoding))
    return MemoryStats.of(predict.lower(variables, batch).compile(
        COMPILER_OPTIONS))


# -------------------------------------------------------------- the plan --


def mesh_shapes(target_: Target, model_axis_sizes: Sequence[int]
                ) -> list[tuple[int, int]]:
  """(data, model) meshes over all of the target's chips."""
  shapes = []
  for model in model_axis_sizes:
    if model <= 0 or target_.chips % model:
      raise errors.ConfigError(
          f"plan_memory.model_axis_sizes: {model} does not divide "
          f"{target_.name}'s {target_.chips} chips (a (data, model) mesh "
          "uses them all)")
    shapes.append((target_.chips // model, model))
  return shapes


def _check_options(batch_sizes, lengths, num_microbatches) -> None:
  if not batch_sizes or any(not isinstance(b, int) or b <= 0
                            for b in batch_sizes):
    raise errors.ConfigError(
        f"plan_memory.batch_sizes={batch_sizes!r}: give positive global "
        "batch sizes, e.g. (32, 64)")
  missing = {"inputs", "targets"} - set(lengths)
  if missing:
    raise errors.ConfigError(
        f"TASK_FEATURE_LENGTHS={dict(lengths)!r} lacks "
        f"{', '.join(sorted(missing))}")
  if num_microbatches <= 0:
    raise errors.ConfigError(
        f"plan_memory.num_microbatches={num_microbatches}; expected >= 1")


def _skip_reason(batch_size: int, data: int, num_microbatches: int) -> str:
  if batch_size % (data * num_microbatches):
    return (f"batch {batch_size} / {num_microbatches} microbatch(es) does "
            f"not split over data={data}")
  return ""


@gin.configurable
def plan_memory(*,
                model_config: families.ModelConfig = gin.REQUIRED,
                task_feature_lengths: dict[str, int] = gin.REQUIRED,
                adapter: Optional[AdapterConfig] = None,
                trainable: str = "adapters",
                optimizer: Optional[optax.GradientTransformation] = None,
                execution: Optional[ExecutionConfig] = None,
                targets: Sequence[str] = ("v4-32", "8xH100"),
                batch_sizes: Sequence[int] = (32,),
                model_axis_sizes: Sequence[int] = (1, 4, 8),
                num_microbatches: int = 1,
                decode: bool = False,
                max_decode_length: int = 64,
                report: Callable[[PlanRow], None] = lambda row: None,
                ) -> list[PlanRow]:
  """Compiles the train (and decode) step for every target, mesh and batch.

  Args:
    model_config: T5Config or DecoderConfig (gin/models).
    task_feature_lengths: {'inputs': ..., 'targets': ...}, as in training
      (decoder-only rows are inputs + targets long).
    adapter, trainable, optimizer, execution: as `lta train` takes them;
      adapter=None with trainable='full' plans full fine-tuning.
    targets: names of TARGETS.
    batch_sizes: global batch sizes to try.
    model_axis_sizes: the model axis of each (data, model) mesh tried.
    num_microbatches: gradient accumulation of the train step.
    decode: also plan greedy decoding of `max_decode_length` tokens.
    report: called with each row as soon as it is compiled.
  """
  _check_options(batch_sizes, task_feature_lengths, num_microbatches)
  if adapter is None and trainable == "adapters":
    raise errors.ConfigError(
        "plan_memory.adapter=None leaves nothing to train with "
        "TRAINABLE='adapters'; for full fine-tuning bind "
        "--gin.TRAINABLE=\\\"full\\\"")
  chosen = [target(name) for name in targets]
  meshes = {t.name: mesh_shapes(t, model_axis_sizes) for t in chosen}
  devices = use_fake_cpu_devices(max(t.chips for t in chosen))
  model = families.build_model(model_config, adapter,
                               execution or ExecutionConfig())
  optimizer = optimizer if optimizer is not None else (
      optimizers.make_optimizer())
  pattern = trainable_lib.resolve_pattern(trainable)
  rules = partitioning.MeshConfig().rules
  lengths = dict(task_feature_lengths)
  rows = []
  # v4-32 and v5e-16 both have 16 chips: the same mesh gives the same
  # program, so its accounting is compiled once (minutes for a large model).
  compiled: dict[tuple, tuple[MemoryStats, str]] = {}
  for t in chosen:
    for data, model_size in meshes[t.name]:
      mesh = partitioning.make_mesh(
          partitioning.MeshConfig(data=data, model=model_size),
          devices[:t.chips])
      for batch_size in batch_sizes:
        for step in ("train", "decode") if decode else ("train",):
          micro = num_microbatches if step == "train" else 1
          skipped = _skip_reason(batch_size, data, micro)
          start = time.perf_counter()
          program = (t.chips, data, model_size, batch_size, step, micro)
          stats, same_as = compiled.get(program, (None, ""))
          if stats is None and not skipped:
            stats = plan_train_step(
                model, pattern, optimizer, mesh, rules, batch_size, lengths,
                micro) if step == "train" else plan_decode_step(
                    model, mesh, rules, batch_size, lengths,
                    DecodingConfig(max_decode_length=max_decode_length))
            compiled[program] = stats, t.name
          row = PlanRow(t, step, data, model_size, batch_size, stats,
                        time.perf_counter() - start, skipped, same_as)
          report(row)
          rows.append(row)
  return rows


# ---------------------------------------------------------------- output --


def size(n: int) -> str:
  """Bytes in GiB, or MiB / KiB below 1 GiB."""
  for unit, scale in (("GiB", GIB), ("MiB", 1024 ** 2)):
    if n >= scale:
      return f"{n / scale:.2f} {unit}"
  return f"{n / 1024:.1f} KiB"


TABLE_HEADER = ("| target | step | mesh (data×model) | batch | arguments "
                "| outputs | aliased | temporaries | total | per chip "
                "| fits | compile s |\n" + "|---" * 12 + "|")


def table_row(row: PlanRow) -> str:
  where = (f"| {row.target.name} | {row.step} | {row.data}×{row.model} "
           f"| {row.batch_size} ")
  if row.stats is None:
    return where + (f"| — | — | — | — | — | {row.target.memory_gib:g} GiB "
                    f"| skipped: {row.skipped} | — |")
  s = row.stats
  seconds = (f"as {row.same_program_as}" if row.same_program_as else
             f"{row.compile_seconds:.0f}")
  return where + (f"| {size(s.arguments)} | {size(s.outputs)} "
                  f"| {size(s.aliased)} | {size(s.temporaries)} "
                  f"| {size(s.total)} | {row.target.memory_gib:g} GiB "
                  f"| {'yes' if row.fits else 'no'} "
                  f"| {seconds} |")


def summary(rows: Sequence[PlanRow]) -> list[str]:
  """Per target and step: the meshes and largest batch that fit."""
  lines = []
  for name in dict.fromkeys(r.target.name for r in rows):
    for step in dict.fromkeys(r.step for r in rows):
      mine = [r for r in rows if r.target.name == name and r.step == step]
      fitting = [r for r in mine if r.fits]
      if not fitting:
        lines.append(f"{name} {step}: nothing tried fits")
        continue
      best = max(r.batch_size for r in fitting)
      meshes = ", ".join(f"{r.data}×{r.model}" for r in fitting
                         if r.batch_size == best)
      lines.append(f"{name} {step}: fits at batch {best} on mesh(es) "
                   f"{meshes}")
  return lines
