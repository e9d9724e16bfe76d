"""The training loop: `train`, a gin configurable, as a list of named stages.

check the options -> make the mesh -> build the model, load the base and make
the sharded state -> describe the run (manifest, resume identity) -> restore
or start (state and data position) -> loop (steps, progress, eval,
checkpoints, preemption) -> export the adapter or model. The pure steps and
their jitting are in lta.train.steps.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping, Optional
import warnings

import gin
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import numpy as np
import optax

from lta import errors
from lta import partitioning
from lta.adapters import adapter_io
from lta.adapters import manifest as manifest_lib
from lta.adapters import trainable as trainable_lib
from lta.adapters.config import AdapterConfig
from lta.checkpoints import base_model
from lta.checkpoints import fingerprint
from lta.checkpoints import orbax_ckpt
from lta.data import input_pipeline
from lta.data import task_names
from lta.models import families
from lta.models.contract import token_means
from lta.models.execution import ExecutionConfig
from lta.models.mt5.config import T5Config
from lta.train import optimizers
from lta.train import preemption
from lta.train import progress as train_progress
from lta.train import state as train_state_lib
from lta.train import steps
from lta.train.state import TrainState

ADAPTER_EXPORT_DIR = "adapter"
MODEL_EXPORT_DIR = "model"
CONFIG_FILE = "config.gin"
# How a checkpoint keeps the input position: tf.data's iterator state, or
# (for pipelines that cannot save it) the count of batches to replay.
_ITERATOR, _REPLAY = "iterator", "replay"


@dataclasses.dataclass
class TrainResult:
  state: TrainState
  step: int
  history: list[dict[str, float]]
  eval_history: list[dict[str, float]]
  preempted: bool  # stopped early (signal, preemption) after a checkpoint
  adapter_dir: Optional[str]
  model_dir: Optional[str]


@dataclasses.dataclass(frozen=True)
class TrainOptions:
  """`train`'s parameters, one field each (see `train` for their meaning)."""
  model_dir: str
  mixture_or_task_name: str
  task_feature_lengths: Mapping[str, int]
  train_steps: int
  initial_checkpoint_path: Optional[str]
  mixture_or_task_module: Optional[str]
  adapter: Optional[AdapterConfig]
  trainable: str
  model_config: Optional[families.ModelConfig]
  execution: Optional[ExecutionConfig]
  batch_size: int
  num_microbatches: int
  optimizer: Optional[optax.GradientTransformation]
  seed: int
  log_period: int
  eval_period: int
  eval_steps: int
  eval_split: str
  checkpoint_period: int
  keep_checkpoints: int
  async_checkpointing: bool
  mesh_config: Optional[partitioning.MeshConfig]
  data_shards: Optional[int]
  initial_adapter_path: Optional[str]
  adapter_task: Optional[str]
  adapter_language: Optional[str]
  export_adapter: bool
  export_model: bool


@gin.configurable
def train(*,
          model_dir: str = gin.REQUIRED,
          mixture_or_task_name: str = gin.REQUIRED,
          task_feature_lengths: Mapping[str, int] = gin.REQUIRED,
          train_steps: int = gin.REQUIRED,
          initial_checkpoint_path: Optional[str] = gin.REQUIRED,
          mixture_or_task_module: Optional[str] = None,
          adapter: Optional[AdapterConfig] = None,
          trainable: str = "adapters",
          model_config: Optional[families.ModelConfig] = None,
          execution: Optional[ExecutionConfig] = None,
          batch_size: int = 32,
          num_microbatches: int = 1,
          optimizer: Optional[optax.GradientTransformation] = None,
          seed: int = 0,
          log_period: int = 100,
          eval_period: int = 0,
          eval_steps: int = 20,
          eval_split: str = "validation",
          checkpoint_period: int = 1000,
          keep_checkpoints: int = 3,
          async_checkpointing: bool = True,
          mesh_config: Optional[partitioning.MeshConfig] = None,
          data_shards: Optional[int] = None,
          initial_adapter_path: Optional[str] = None,
          adapter_task: Optional[str] = None,
          adapter_language: Optional[str] = None,
          export_adapter: bool = True,
          export_model: bool = False) -> TrainResult:
  """Trains the `trainable` leaves on a seqio task; resumes from model_dir.

  Args:
    model_dir: checkpoints, TensorBoard events, config.gin and the exported
      adapter (`<model_dir>/adapter`) go here. A run finding checkpoints
      here resumes from the latest one, data position included.
    mixture_or_task_name: seqio task or mixture, e.g. 'xlsum.en'.
    task_feature_lengths: {'inputs': ..., 'targets': ...}.
    train_steps: total steps, counted from step 0 of this model_dir.
    initial_checkpoint_path: HF dir/file or T5X checkpoint with the base
      model; None or '' initialises it randomly (tiny runs, pre-training).
    mixture_or_task_module: module(s) imported to register the task.
    adapter: adapter config; None for a plain model (full fine-tuning).
    trainable: regex over 'collection/path' or a TRAINABLE_PRESETS name.
    model_config: architecture (and dropout) for random or T5X init; an HF
      checkpoint brings its own architecture. T5Config (mT5) or
      DecoderConfig (decoder-only: the tasks are then the prompt -> answer
      ones of lta_tasks.decoder_only).
    execution: dropout masks, remat and the chunked loss (speed and memory
      only; every family); default ExecutionConfig() with its gin bindings.
    batch_size: global batch size; split over hosts and the data axis.
    num_microbatches: gradient accumulation steps within a batch.
    optimizer: default `optimizers.make_optimizer()`.
    seed: model init, dropout and data order.
    log_period, eval_period, eval_steps, eval_split: progress lines and
      eval on `eval_steps` batches of `eval_split` (0 disables eval).
    checkpoint_period, keep_checkpoints, async_checkpointing: orbax saving.
    mesh_config: (data, model) mesh shape.
    data_shards: seqio shards the training data is cut into (default: one
      per process). The data order depends on it, not on the process
      count: a 1-process run with data_shards=N trains on the batches an
      N-process run does.
    initial_adapter_path: exported adapter to start from (intermediate
      tuning: the task stage starts from the prefix-LM stage's adapter).
    adapter_task, adapter_language: manifest fields; default from the task
      name ('xlsum.en' -> 'xlsum', 'en').
    export_adapter: write `<model_dir>/adapter` (save_adapter format) at the
      end, for `lta merge`.
    export_model: write the trained model's params as an HF checkpoint to
      `<model_dir>/model` (full fine-tuning; a next stage's base).
  """
  opts = TrainOptions(**locals())  # first statement: locals() = parameters
  _check_options(opts)
  mesh, rules, host_batch_size = _make_mesh(opts)
  run, state = _build_model_and_state(opts, mesh, rules, host_batch_size)
  _say_what_trains(opts, run, state)
  identity = _describe_run(opts, run, state)
  # Orbax synchronises the processes (gloo collectives) from here on.
  partitioning.wait_for_processes("checkpoints")
  ckpt = orbax_ckpt.TrainCheckpointer(opts.model_dir, opts.keep_checkpoints,
                                      opts.async_checkpointing)
  state, batches = _resume(ckpt, state, _training_data(opts, run), identity)
  _write_operative_config(opts.model_dir)
  state, outcome = _loop(opts, run, state, batches, ckpt, identity)
  return _export(opts, run, state, outcome, identity.manifest)


# ------------------------------------------------------------- the stages --


@dataclasses.dataclass(frozen=True)
class _Run:
  """What the stages share once the model is built."""
  config: families.ModelConfig
  model: families.Model
  optimizer: optax.GradientTransformation
  pattern: str  # the trainable regex
  mesh: jax.sharding.Mesh
  rules: Any
  state_shardings: TrainState
  host_batch_size: int
  base_fingerprint: str


@dataclasses.dataclass(frozen=True)
class _Identity:
  """What a checkpoint records so only the run that wrote it resumes it."""
  manifest: Optional[manifest_lib.AdapterManifest]
  run_info: dict[str, Any]
  data: dict[str, Any]


@dataclasses.dataclass
class _Outcome:
  """Where the loop stopped, and what it logged."""
  step: int
  history: list[dict[str, float]] = dataclasses.field(default_factory=list)
  eval_history: list[dict[str, float]] = dataclasses.field(
      default_factory=list)
  preempted: bool = False


def _say(message: str) -> None:
  if jax.process_index() == 0:
    print(message, flush=True)


def _check_options(opts: TrainOptions) -> None:
  """Fails before any model loads: the task and the positive counts."""
  partitioning.initialize_distributed()
  input_pipeline.import_task_modules(opts.mixture_or_task_module)
  input_pipeline.check_task(opts.mixture_or_task_name)
  for name in ("train_steps", "batch_size", "num_microbatches", "log_period",
               "checkpoint_period"):
    value = getattr(opts, name)
    if not isinstance(value, int) or value <= 0:
      raise errors.ConfigError(
          f"train.{name} must be a positive int, got {value!r}")
  chunk = (opts.execution or ExecutionConfig()).loss_chunk_length
  targets = opts.task_feature_lengths.get("targets")
  if chunk and targets and targets % chunk:
    raise errors.ConfigError(
        f"ExecutionConfig.loss_chunk_length={chunk} does not divide "
        f"TASK_FEATURE_LENGTHS['targets']={targets}")


def _make_mesh(opts: TrainOptions) -> tuple[jax.sharding.Mesh, Any, int]:
  """(mesh, logical axis rules, this host's batch size)."""
  mesh_config = opts.mesh_config or partitioning.MeshConfig()
  mesh = partitioning.make_mesh(mesh_config)
  host_batch_size = partitioning.check_batch_size(opts.batch_size, mesh)
  if (opts.batch_size // opts.num_microbatches) % mesh.shape[
      partitioning.DATA]:
    raise errors.ConfigError(
        f"batch_size={opts.batch_size} / num_microbatches="
        f"{opts.num_microbatches} does not split over the mesh's data axis "
        f"({mesh.shape['data']})")
  return mesh, mesh_config.rules, host_batch_size


def _build_model_and_state(opts: TrainOptions, mesh: jax.sharding.Mesh,
                           rules, host_batch_size: int
                           ) -> tuple[_Run, TrainState]:
  """The architecture, the base weights and the sharded train state.

  The base's host copy is dropped once it is on the devices.
  """
  config, base = opts.model_config or T5Config(), None
  if opts.initial_checkpoint_path:
    # Without a gin model config an HF base brings its own, of any family.
    if opts.model_config is None and base_model.is_hf_checkpoint(
        opts.initial_checkpoint_path):
      config = None
    config, base = base_model.load_base_model(
        opts.initial_checkpoint_path, config, "INITIAL_CHECKPOINT_PATH")
  model = families.build_model(config, opts.adapter,
                               opts.execution or ExecutionConfig())
  optimizer = opts.optimizer if opts.optimizer is not None else (
      optimizers.make_optimizer())
  pattern = trainable_lib.resolve_pattern(opts.trainable)
  var_sh, state_sh = steps.state_shardings(model, pattern, optimizer, mesh,
                                           rules)
  with partitioning.activated(mesh, rules):
    variables = steps.init_variables(model, var_sh, opts.seed, base)
    del base
    # Recorded before training donates the buffers. Its samples of sharded
    # leaves are gathered in collectives: every process starts them together.
    partitioning.wait_for_processes("fingerprint")
    base_fp = fingerprint.base_model_fingerprint(config, variables["params"])
    if opts.initial_adapter_path:
      if "adapters" not in variables:
        raise errors.ConfigError("INITIAL_ADAPTER_PATH needs train.adapter")
      variables["adapters"] = train_state_lib.load_initial_adapter(
          opts.initial_adapter_path, variables["adapters"], base_fp)
    state = steps.create_state(variables, pattern, optimizer, var_sh,
                               state_sh, opts.seed)
  run = _Run(config=config, model=model, optimizer=optimizer,
             pattern=pattern, mesh=mesh, rules=rules,
             state_shardings=state_sh, host_batch_size=host_batch_size,
             base_fingerprint=base_fp)
  return run, state


def _say_what_trains(opts: TrainOptions, run: _Run, state: TrainState):
  summary = trainable_lib.trainable_summary(state.trainable,
                                           state.variables["params"])
  _say(f"{run.config.name}: training {summary['trainable']:,} parameters "
       f"({summary['share_percent']:.3f}% of {summary['base']:,}) matching "
       f"{run.pattern!r} on {opts.mixture_or_task_name}; mesh "
       f"{dict(run.mesh.shape)}")


def _describe_run(opts: TrainOptions, run: _Run,
                  state: TrainState) -> _Identity:
  """The adapter's manifest and what a checkpoint of this run records."""
  task, language = task_names.family_and_language(opts.mixture_or_task_name)
  manifest = None
  if opts.adapter is not None and "adapters" in state.variables:
    manifest = manifest_lib.AdapterManifest(
        base_model_fingerprint=run.base_fingerprint,
        base_model_name=run.config.name, adapter=opts.adapter.to_dict(),
        shapes=manifest_lib.tree_shapes(state.variables["adapters"]),
        dtype=str(jnp.dtype(opts.adapter.dtype)),
        task=opts.adapter_task or task,
        language=opts.adapter_language or language,
        provenance={
            "mixture_or_task_name": opts.mixture_or_task_name,
            "trainable": run.pattern, "model_dir": opts.model_dir,
            "initial_checkpoint_path": opts.initial_checkpoint_path or "",
            "initial_adapter_path": opts.initial_adapter_path or ""})
  run_info = {"trainable": run.pattern,
              "base_model_fingerprint": run.base_fingerprint,
              "mixture_or_task_name": opts.mixture_or_task_name,
              "model_config": run.config.to_dict(),
              "manifest": manifest.to_dict() if manifest else None}
  data = {"mixture_or_task_name": opts.mixture_or_task_name,
          "task_feature_lengths": dict(opts.task_feature_lengths),
          "batch_size": opts.batch_size, "seed": opts.seed,
          "process_count": jax.process_count()}
  if opts.data_shards is not None:  # Older checkpoints have no such key.
    data["data_shards"] = opts.data_shards
  return _Identity(manifest=manifest, run_info=run_info, data=data)


def _training_data(opts: TrainOptions, run: _Run):
  return input_pipeline.get_dataset(
      opts.mixture_or_task_name, opts.task_feature_lengths,
      run.host_batch_size, seed=opts.seed, data_shards=opts.data_shards,
      **input_pipeline.model_data_options(run.model))


def _resume(ckpt: orbax_ckpt.TrainCheckpointer, state: TrainState, ds,
            identity: _Identity
            ) -> tuple[TrainState, input_pipeline.TrainBatches]:
  """(state, this host's batches) at the latest checkpoint, or fresh ones."""
  reason = input_pipeline.unsaveable_reason(ds)
  if reason:
    _say(f"{identity.data['mixture_or_task_name']}: tf.data cannot save this "
         f"input pipeline's position ({reason}); a resumed run will replay "
         "the batches it consumed")
  latest = ckpt.latest_step()
  if latest is None:
    return state, input_pipeline.TrainBatches(ds)
  data_state, saved_run = ckpt.read_json(latest)
  _check_resumable(data_state, saved_run, identity, ckpt.directory)
  where, consumed = f"{ckpt.directory}/{latest}", data_state["consumed_batches"]
  position = data_state.get("position")
  abstract = orbax_ckpt.abstract_like(state.checkpoint_items())
  if position == _ITERATOR and not reason:
    batches = input_pipeline.TrainBatches(ds)
    items = ckpt.restore(latest, abstract, iterator=batches)
    _say(f"Resuming from {where} at its saved input position ({consumed} "
         "batches consumed)")
  elif position == _REPLAY:
    batches = input_pipeline.TrainBatches(ds.skip(consumed))
    items = ckpt.restore(latest, abstract)
    _say(f"Resuming from {where}, replaying its {consumed} consumed batches")
  else:
    raise errors.CheckpointError(
        f"{where}: {'this run cannot restore' if reason else 'it has no'} "
        f"saved input position (data position={position!r}), so resuming "
        "would repeat or skip data; use a new MODEL_DIR, or the lta version "
        "and data source that wrote it")
  return state.replace_checkpoint_items(items), batches


def _check_resumable(data_state, saved_run, identity: _Identity,
                     directory) -> None:
  """A checkpoint only resumes the run that wrote it."""
  for key, want in identity.data.items():
    got = data_state.get(key)
    if got != want:
      raise errors.CheckpointError(
          f"{directory}: checkpoint was written with {key}={got!r}, this run "
          f"has {want!r}; use a new MODEL_DIR for a different run")
  for key in ("trainable", "base_model_fingerprint"):
    if saved_run.get(key) != identity.run_info[key]:
      raise errors.CheckpointError(
          f"{directory}: checkpoint was written with {key}="
          f"{saved_run.get(key)!r}, this run has {identity.run_info[key]!r}")


def _write_operative_config(model_dir: str) -> None:
  if jax.process_index() == 0:
    os.makedirs(model_dir, exist_ok=True)
    with open(os.path.join(model_dir, CONFIG_FILE), "w") as f:
      f.write(gin.operative_config_str())


def _loop(opts: TrainOptions, run: _Run, state: TrainState,
          batches: input_pipeline.TrainBatches,
          ckpt: orbax_ckpt.TrainCheckpointer, identity: _Identity
          ) -> tuple[TrainState, _Outcome]:
  """Steps to train_steps, or to a stop request after its checkpoint."""
  outcome = _Outcome(step=int(state.step))
  reporter = train_progress.Reporter(opts.model_dir, opts.train_steps,
                                     outcome.step)
  with (partitioning.activated(run.mesh, run.rules),
        preemption.StopRequest() as stop):
    p_train = partitioning.compile_then_wait(steps.jit_train_step(
        run.model, run.optimizer, run.state_shardings, run.mesh,
        opts.num_microbatches), "train_step")
    p_eval = partitioning.compile_then_wait(steps.jit_eval_step(
        run.model, run.state_shardings, run.mesh), "eval_step")
    while outcome.step < opts.train_steps:
      host_batch = _next_batch(batches, opts.mixture_or_task_name)
      state, metrics = p_train(
          state, partitioning.host_batch_to_global(host_batch, run.mesh))
      outcome.step += 1
      step = outcome.step
      reporter.add(metrics, input_pipeline.batch_tokens(host_batch))
      if step % opts.log_period == 0 or step == opts.train_steps:
        outcome.history.append(reporter.flush(step))
      if opts.eval_period and step % opts.eval_period == 0:
        outcome.eval_history.append(reporter.eval(step, token_means(
            _evaluate(opts, run, p_eval, state))))
      # Hosts must agree on the step they stop at: multi-host runs use
      # JAX's preemption sync point, one host its own signal handler.
      outcome.preempted = step < opts.train_steps and (
          ckpt.reached_preemption(step) if jax.process_count() > 1
          else stop.requested)
      if (step % opts.checkpoint_period == 0 or step == opts.train_steps or
          outcome.preempted):
        _save(ckpt, step, state, batches, identity)
      if outcome.preempted:
        # Every process says where it stopped: they must all agree.
        where = (f" (process {jax.process_index()} of {jax.process_count()})"
                 if jax.process_count() > 1 else "")
        print(f"{stop.signal_name or 'Preemption notice'}: saved a "
              f"checkpoint at step {step} in {ckpt.directory}{where}; run "
              "the same command to resume", flush=True)
        break
  ckpt.wait()
  ckpt.close()
  reporter.close()
  return state, outcome


def _next_batch(batches: input_pipeline.TrainBatches, name: str):
  try:
    return next(batches)
  except StopIteration as e:
    raise errors.DataError(f"{name} ran out of training batches") from e


def _save(ckpt: orbax_ckpt.TrainCheckpointer, step: int, state: TrainState,
          batches: input_pipeline.TrainBatches, identity: _Identity) -> None:
  saveable = batches.unsaveable_reason is None
  ckpt.save(step, state.checkpoint_items(),
            {**identity.data, "consumed_batches": step,
             "position": _ITERATOR if saveable else _REPLAY},
            identity.run_info, iterator=batches if saveable else None,
            force=True)


def _evaluate(opts: TrainOptions, run: _Run, p_eval,
              state: TrainState) -> dict[str, jax.Array]:
  """Token sums over the first `eval_steps` batches of `eval_split`.

  Each process reads its shard of the split in host batches, the last one
  possibly smaller. All run as many steps as the process with the most
  batches: a partial batch is completed, and a missing one made, with
  padding examples of no loss weight. So no process waits in a collective
  its peers never start, and every example read counts once: on the whole
  split (eval_steps large enough) the sums equal one process's.
  """
  ds = input_pipeline.get_dataset(
      opts.mixture_or_task_name, opts.task_feature_lengths,
      run.host_batch_size, split=opts.eval_split, shuffle=False,
      num_epochs=1, drop_remainder=False,
      **input_pipeline.model_data_options(run.model))
  mine = list(input_pipeline.numpy_batches(ds.take(opts.eval_steps)))
  num_steps = int(partitioning.gather_from_processes(
      np.asarray(len(mine))).max())
  if not num_steps:
    raise errors.DataError(f"{opts.mixture_or_task_name} has no "
                           f"{opts.eval_split!r} example for eval")
  padding = input_pipeline.padding_batch(ds, run.host_batch_size)
  totals = None
  for i in range(num_steps):
    host_batch = (input_pipeline.pad_batch(mine[i], padding)
                  if i < len(mine) else padding)
    sums = p_eval(state, partitioning.host_batch_to_global(host_batch,
                                                           run.mesh))
    totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
  return totals


def _export(opts: TrainOptions, run: _Run, state: TrainState,
            outcome: _Outcome,
            manifest: Optional[manifest_lib.AdapterManifest]) -> TrainResult:
  """Writes the adapter and/or the model of a finished run."""
  finished = outcome.step >= opts.train_steps
  adapter_dir = None
  if manifest is not None and opts.export_adapter and finished:
    tree = to_host(state.variables["adapters"])
    adapter_dir = os.path.join(opts.model_dir, ADAPTER_EXPORT_DIR)
    if jax.process_index() == 0:
      exported = dataclasses.replace(
          manifest, provenance={**manifest.provenance, "step": outcome.step})
      adapter_io.save_adapter(adapter_dir, tree, exported)
  model_export_dir = None
  if opts.export_model and finished:
    params = to_host(state.variables["params"])
    model_export_dir = os.path.join(opts.model_dir, MODEL_EXPORT_DIR)
    if jax.process_index() == 0:
      base_model.save_base_model(params, run.config, model_export_dir)
  return TrainResult(state=state, step=outcome.step, history=outcome.history,
                     eval_history=outcome.eval_history,
                     preempted=outcome.preempted, adapter_dir=adapter_dir,
                     model_dir=model_export_dir)


def to_host(tree: Any) -> Any:
  """Numpy copies of (possibly multi-host sharded) arrays."""
  if jax.process_count() > 1:
    partitioning.wait_for_processes("to_host")
    return multihost_utils.process_allgather(tree, tiled=True)
  return jax.device_get(tree)


# lta.trainer (this module's old name) also held the steps, for one release.
_MOVED_TO_STEPS = ("train_step", "eval_step", "split_microbatches",
                   "state_shardings", "jit_train_step", "jit_eval_step",
                   "init_variables", "create_state")


def __getattr__(name: str):
  if name in _MOVED_TO_STEPS:
    warnings.warn(f"lta: {__name__}.{name} moved to lta.train.steps; the old "
                  "name works until the next release", FutureWarning,
                  stacklevel=2)
    return getattr(steps, name)
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
