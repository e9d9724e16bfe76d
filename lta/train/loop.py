"""Training: pure train and eval steps, and the loop that drives them.

One trainer serves LoRA/KronA adapters, full fine-tuning and the frozen-
decoder variant: `trainable` (a regex or lta.adapters.trainable preset) chooses
the leaves that get gradients and optimizer state. The caller jits the steps
with explicit shardings and donates the state.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Mapping, Optional

import flax.linen as nn
import gin
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import numpy as np
import optax

from lta import errors
from lta.train import optimizers
from lta import partitioning
from lta.train import preemption
from lta.train import progress as train_progress
from lta.train import state as train_state_lib
from lta.checkpoints import base_model
from lta.checkpoints import fingerprint
from lta.checkpoints import hf
from lta.checkpoints import orbax_ckpt
from lta.models.mt5.config import T5Config
from lta.models.mt5.network import Transformer
from lta.models.contract import EncoderDecoderModel
from lta.adapters import adapter_io
from lta.adapters import manifest as manifest_lib
from lta.adapters import trainable as trainable_lib
from lta.adapters.config import AdapterConfig
from lta.train.state import TrainState
from lta.adapters.tree import flatten_tree

Batch = Mapping[str, jax.Array]
ADAPTER_EXPORT_DIR = "adapter"
MODEL_EXPORT_DIR = "model"
CONFIG_FILE = "config.gin"

# ------------------------------------------------------------------ steps --


def _token_sums(trainable, frozen, batch, dropout_rng, model):
  """Loss summed over target tokens (so microbatches add up exactly)."""
  loss, aux = model.loss_fn(trainable_lib.combine(trainable, frozen), batch,
                            dropout_rng)
  denom = jnp.maximum(aux["num_tokens"], 1.0)
  sums = {"loss": loss * denom,
          "cross_entropy": aux["cross_entropy"] * denom,
          "accuracy": aux["accuracy"] * denom,
          "num_tokens": aux["num_tokens"]}
  return sums["loss"], sums


def _means(sums: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
  denom = jnp.maximum(sums["num_tokens"], 1.0)
  return {"loss": sums["loss"] / denom,
          "cross_entropy": sums["cross_entropy"] / denom,
          "accuracy": sums["accuracy"] / denom,
          "num_tokens": sums["num_tokens"]}


def split_microbatches(batch: Batch, num_microbatches: int) -> Batch:
  """(B, ...) -> (k, B/k, ...); microbatch i takes rows i, i+k, ...

  Interleaving keeps every microbatch spread over all data shards.
  """
  def split(x):
    if x.shape[0] % num_microbatches:
      raise ValueError(f"Batch size {x.shape[0]} does not split into "
                       f"{num_microbatches} microbatches")
    x = x.reshape((x.shape[0] // num_microbatches, num_microbatches) +
                  x.shape[1:])
    return jnp.swapaxes(x, 0, 1)
  return jax.tree.map(split, batch)


def train_step(state: TrainState, batch: Batch, *,
               model: EncoderDecoderModel,
               optimizer: optax.GradientTransformation,
               num_microbatches: int = 1,
               enable_dropout: bool = True
               ) -> tuple[TrainState, dict[str, jax.Array]]:
  """One optimizer update of the trainable tree; the frozen tree is an input.

  Gradients are taken with respect to `state.trainable` only, so the frozen
  base has neither gradients nor optimizer state. With k microbatches the
  token-summed gradients are accumulated and divided by the batch's token
  count: the update equals that of one k-times larger batch.
  """
  step_rng = jax.random.fold_in(jax.random.wrap_key_data(state.rng),
                                state.step)
  grad_fn = jax.grad(_token_sums, has_aux=True)

  def micro(mb, i):
    mb = jax.tree.map(
        lambda x: nn.with_logical_constraint(
            x, ("batch",) + (None,) * (x.ndim - 1)), mb)
    rng = jax.random.fold_in(step_rng, i) if enable_dropout else None
    return grad_fn(state.trainable, state.frozen, mb, rng, model)

  if num_microbatches == 1:
    grads, sums = micro(batch, 0)
  else:
    mbs = split_microbatches(batch, num_microbatches)
    first = jax.tree.map(lambda x: x[0], mbs)
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype),
                         jax.eval_shape(micro, first, 0))

    def body(acc, xs):
      return jax.tree.map(jnp.add, acc, micro(*xs)), None

    (grads, sums), _ = jax.lax.scan(body, zeros,
                                    (mbs, jnp.arange(num_microbatches)))
  denom = jnp.maximum(sums["num_tokens"], 1.0)
  grads = jax.tree.map(lambda g: g / denom.astype(g.dtype), grads)
  updates, opt_state = optimizer.update(grads, state.opt_state,
                                        state.trainable)
  new_state = state.replace(
      step=state.step + 1,
      trainable=optax.apply_updates(state.trainable, updates),
      opt_state=opt_state)
  metrics = _means(sums)
  metrics["grad_norm"] = optax.global_norm(grads)
  return new_state, metrics


def eval_step(state: TrainState, batch: Batch, *,
              model: EncoderDecoderModel) -> dict[str, jax.Array]:
  """Token sums (loss, cross entropy, accuracy, tokens) without dropout."""
  _, sums = _token_sums(state.trainable, state.frozen, batch, None, model)
  return sums


# --------------------------------------------------------------- sharding --


def state_shardings(model: EncoderDecoderModel, pattern: str,
                    optimizer: optax.GradientTransformation,
                    mesh: jax.sharding.Mesh, rules) -> tuple[Any, TrainState]:
  """(variable shardings, TrainState of shardings) from logical axis names.

  The optimizer state's placement is what XLA chooses for optimizer.init
  on the sharded trainable tree (Adafactor's factored moments have no
  parameter-shaped counterpart to copy a sharding from).
  """
  boxed = jax.eval_shape(model.init_variables, jax.random.PRNGKey(0))
  var_sh = partitioning.logical_to_sharding(boxed, mesh, rules)
  abstract = nn.meta.unbox(boxed)
  trainable_sh, frozen_sh = trainable_lib.split_trainable(var_sh, pattern)
  abstract_trainable, _ = trainable_lib.split_trainable(abstract, pattern)
  opt_sh = jax.jit(optimizer.init, in_shardings=(trainable_sh,)).lower(
      abstract_trainable).compile().output_shardings
  rep = partitioning.replicated(mesh)
  # Leaves not derived from a parameter (step counts) come back placed on
  # one device; they belong replicated on the mesh.
  opt_sh = jax.tree.map(
      lambda s: s if isinstance(s, jax.sharding.NamedSharding) else rep,
      opt_sh)
  return var_sh, TrainState(step=rep, trainable=trainable_sh,
                            frozen=frozen_sh, opt_state=opt_sh, rng=rep)


def jit_train_step(model, optimizer, shardings: TrainState, mesh,
                   num_microbatches: int = 1, enable_dropout: bool = True):
  """train_step jitted with explicit shardings; the state is donated."""
  step = functools.partial(train_step, model=model, optimizer=optimizer,
                           num_microbatches=num_microbatches,
                           enable_dropout=enable_dropout)
  rep = partitioning.replicated(mesh)
  return jax.jit(step, in_shardings=(shardings,
                                     partitioning.batch_sharding(mesh)),
                 out_shardings=(shardings, rep), donate_argnums=(0,))


def jit_eval_step(model, shardings: TrainState, mesh):
  return jax.jit(functools.partial(eval_step, model=model),
                 in_shardings=(shardings, partitioning.batch_sharding(mesh)),
                 out_shardings=partitioning.replicated(mesh))


def init_variables(model: EncoderDecoderModel, var_sh, seed: int,
                   base: Optional[dict[str, Any]] = None) -> dict[str, Any]:
  """Sharded random variables; `base` (numpy) replaces the random params."""
  init = jax.jit(model.init_unboxed, out_shardings=var_sh)
  variables = init(jax.random.fold_in(jax.random.PRNGKey(seed), 1))
  if base is None:
    return variables
  _check_same_shapes(base, variables["params"], "INITIAL_CHECKPOINT_PATH")
  params = jax.device_put(base, var_sh["params"])
  return {**variables, "params": params}


def create_state(variables: dict[str, Any], pattern: str, optimizer,
                 var_sh, state_sh: TrainState, seed: int) -> TrainState:
  create = functools.partial(train_state_lib.create, pattern=pattern,
                             optimizer=optimizer, seed=seed)
  return jax.jit(create, in_shardings=(var_sh,),
                 out_shardings=state_sh)(variables)


def _check_same_shapes(loaded, expected, what: str) -> None:
  got = {k: tuple(np.shape(v)) for k, v in
         flatten_tree(loaded).items()}
  want = {k: tuple(np.shape(v)) for k, v in
          flatten_tree(expected).items()}
  if got != want:
    bad = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
    raise ValueError(f"{what}: parameters do not match the model config at "
                     f"{[(k, got.get(k), want.get(k)) for k in bad[:5]]}")


def to_host(tree: Any) -> Any:
  """Numpy copies of (possibly multi-host sharded) arrays."""
  if jax.process_count() > 1:
    return multihost_utils.process_allgather(tree, tiled=True)
  return jax.device_get(tree)


# ------------------------------------------------------------------- loop --


@dataclasses.dataclass
class TrainResult:
  state: TrainState
  step: int
  history: list[dict[str, float]]
  eval_history: list[dict[str, float]]
  preempted: bool  # stopped early (signal, preemption) after a checkpoint
  adapter_dir: Optional[str]
  model_dir: Optional[str]


def _say(message: str) -> None:
  if jax.process_index() == 0:
    print(message, flush=True)


def _task_and_language(name: str) -> tuple[str, str]:
  """'xlsum.en' -> ('xlsum', 'en'); a name without '.' has no language."""
  task, _, lang = name.rpartition(".")
  return (task, lang) if task else (name, "")


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
          model_config: Optional[T5Config] = None,
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
      checkpoint brings its own architecture.
    batch_size: global batch size; split over hosts and the data axis.
    num_microbatches: gradient accumulation steps within a batch.
    optimizer: default `optimizers.make_optimizer()`.
    seed: model init, dropout and data order.
    log_period, eval_period, eval_steps, eval_split: progress lines and
      eval on `eval_steps` batches of `eval_split` (0 disables eval).
    checkpoint_period, keep_checkpoints, async_checkpointing: orbax saving.
    mesh_config: (data, model) mesh shape.
    initial_adapter_path: exported adapter to start from (intermediate
      tuning: the task stage starts from the prefix-LM stage's adapter).
    adapter_task, adapter_language: manifest fields; default from the task
      name ('xlsum.en' -> 'xlsum', 'en').
    export_adapter: write `<model_dir>/adapter` (save_adapter format) at the
      end, for `lta merge`.
    export_model: write the trained model's params as an HF checkpoint to
      `<model_dir>/model` (full fine-tuning; a next stage's base).
  """
  from lta.data import input_pipeline  # pylint: disable=g-import-not-at-top
  partitioning.initialize_distributed()
  input_pipeline.import_task_modules(mixture_or_task_module)
  input_pipeline.check_task(mixture_or_task_name)
  for name, value in (("train_steps", train_steps),
                      ("batch_size", batch_size),
                      ("num_microbatches", num_microbatches),
                      ("log_period", log_period),
                      ("checkpoint_period", checkpoint_period)):
    if not isinstance(value, int) or value <= 0:
      raise errors.ConfigError(
          f"train.{name} must be a positive int, got {value!r}")
  mesh_config = mesh_config or partitioning.MeshConfig()
  mesh = partitioning.make_mesh(mesh_config)
  rules = mesh_config.rules
  host_batch_size = partitioning.check_batch_size(batch_size, mesh)
  if (batch_size // num_microbatches) % mesh.shape[partitioning.DATA]:
    raise errors.ConfigError(
        f"batch_size={batch_size} / num_microbatches={num_microbatches} does "
        f"not split over the mesh's data axis ({mesh.shape['data']})")

  config, base = model_config or T5Config(), None
  if initial_checkpoint_path:
    config, base = base_model.load_base_model(
        initial_checkpoint_path, config, "INITIAL_CHECKPOINT_PATH")
  model = EncoderDecoderModel(Transformer(config, adapter))
  optimizer = optimizer if optimizer is not None else (
      optimizers.make_optimizer())
  pattern = trainable_lib.resolve_pattern(trainable)
  var_sh, state_sh = state_shardings(model, pattern, optimizer, mesh, rules)

  with partitioning.activated(mesh, rules):
    variables = init_variables(model, var_sh, seed, base)
    del base
    # Recorded before training donates the buffers.
    base_fp = fingerprint.base_model_fingerprint(config, variables["params"])
    if initial_adapter_path:
      if "adapters" not in variables:
        raise errors.ConfigError("INITIAL_ADAPTER_PATH needs train.adapter")
      variables["adapters"] = train_state_lib.load_initial_adapter(
          initial_adapter_path, variables["adapters"], base_fp)
    state = create_state(variables, pattern, optimizer, var_sh, state_sh,
                         seed)
    del variables
  summary = trainable_lib.trainable_summary(state.trainable,
                                           state.variables["params"])
  _say(f"{config.name}: training {summary['trainable']:,} parameters "
       f"({summary['share_percent']:.3f}% of {summary['base']:,}) matching "
       f"{pattern!r} on {mixture_or_task_name}; mesh {dict(mesh.shape)}")

  task, language = _task_and_language(mixture_or_task_name)
  manifest = None
  if adapter is not None and "adapters" in state.variables:
    manifest = manifest_lib.AdapterManifest(
        base_model_fingerprint=base_fp, base_model_name=config.name,
        adapter=adapter.to_dict(),
        shapes=manifest_lib.tree_shapes(state.variables["adapters"]),
        dtype=str(jnp.dtype(adapter.dtype)),
        task=adapter_task or task, language=adapter_language or language,
        provenance={"mixture_or_task_name": mixture_or_task_name,
                    "trainable": pattern, "model_dir": model_dir,
                    "initial_checkpoint_path": initial_checkpoint_path or "",
                    "initial_adapter_path": initial_adapter_path or ""})
  run_info = {"trainable": pattern, "base_model_fingerprint": base_fp,
              "mixture_or_task_name": mixture_or_task_name,
              "model_config": config.to_dict(),
              "manifest": manifest.to_dict() if manifest else None}
  data_identity = {"mixture_or_task_name": mixture_or_task_name,
                   "task_feature_lengths": dict(task_feature_lengths),
                   "batch_size": batch_size, "seed": seed,
                   "process_count": jax.process_count()}

  ckpt = orbax_ckpt.TrainCheckpointer(model_dir, keep_checkpoints,
                                      async_checkpointing)
  state, batches = _resume(ckpt, state, input_pipeline.get_dataset(
      mixture_or_task_name, task_feature_lengths, host_batch_size,
      seed=seed), data_identity, run_info)
  step = int(state.step)
  if jax.process_index() == 0:
    os.makedirs(model_dir, exist_ok=True)
    with open(os.path.join(model_dir, CONFIG_FILE), "w") as f:
      f.write(gin.operative_config_str())

  reporter = train_progress.Reporter(model_dir, train_steps, step)
  history, eval_history, preempted = [], [], False
  saveable = batches.unsaveable_reason is None

  def save(at: int):
    ckpt.save(at, state.checkpoint_items(),
              {**data_identity, "consumed_batches": at,
               "position": _ITERATOR if saveable else _REPLAY}, run_info,
              iterator=batches if saveable else None, force=True)

  with (partitioning.activated(mesh, rules),
        preemption.StopRequest() as stop):
    p_train = jit_train_step(model, optimizer, state_sh, mesh,
                             num_microbatches)
    p_eval = jit_eval_step(model, state_sh, mesh)
    while step < train_steps:
      try:
        host_batch = next(batches)
      except StopIteration as e:
        raise errors.DataError(f"{mixture_or_task_name} ran out of training "
                               "batches") from e
      batch = partitioning.host_batch_to_global(host_batch, mesh)
      state, metrics = p_train(state, batch)
      step += 1
      reporter.add(metrics, input_pipeline.batch_tokens(host_batch))
      if step % log_period == 0 or step == train_steps:
        history.append(reporter.flush(step))
      if eval_period and step % eval_period == 0:
        eval_history.append(reporter.eval(step, _means(_evaluate(
            p_eval, state, mesh, mixture_or_task_name, task_feature_lengths,
            host_batch_size, eval_split, eval_steps))))
      # Hosts must agree on the step they stop at: multi-host runs use
      # JAX's preemption sync point, one host its own signal handler.
      preempted = step < train_steps and (
          ckpt.reached_preemption(step) if jax.process_count() > 1
          else stop.requested)
      if step % checkpoint_period == 0 or step == train_steps or preempted:
        save(step)
      if preempted:
        _say(f"{stop.signal_name or 'Preemption notice'}: saved a checkpoint "
             f"at step {step} in {ckpt.directory}; run the same command to "
             "resume")
        break
  ckpt.wait()
  ckpt.close()
  reporter.close()

  adapter_dir = None
  if manifest is not None and export_adapter and step >= train_steps:
    tree = to_host(state.variables["adapters"])
    adapter_dir = os.path.join(model_dir, ADAPTER_EXPORT_DIR)
    if jax.process_index() == 0:
      exported = dataclasses.replace(
          manifest, provenance={**manifest.provenance, "step": step})
      adapter_io.save_adapter(adapter_dir, tree, exported)
  model_export_dir = None
  if export_model and step >= train_steps:
    params = to_host(state.variables["params"])
    model_export_dir = os.path.join(model_dir, MODEL_EXPORT_DIR)
    if jax.process_index() == 0:
      hf.save_hf_checkpoint(params, config, model_export_dir)
  return TrainResult(state=state, step=step, history=history,
                     eval_history=eval_history, preempted=preempted,
                     adapter_dir=adapter_dir,
                     model_dir=model_export_dir)


# How a checkpoint keeps the input position: tf.data's iterator state, or
# (for pipelines that cannot save it) the count of batches to replay.
_ITERATOR, _REPLAY = "iterator", "replay"


def _resume(ckpt, state, ds, data_identity, run_info):
  """(state, this host's batches) at the latest checkpoint, or fresh ones."""
  from lta.data import input_pipeline  # pylint: disable=g-import-not-at-top
  reason = input_pipeline.unsaveable_reason(ds)
  if reason:
    _say(f"{data_identity['mixture_or_task_name']}: tf.data cannot save this "
         f"input pipeline's position ({reason}); a resumed run will replay "
         "the batches it consumed")
  latest = ckpt.latest_step()
  if latest is None:
    return state, input_pipeline.TrainBatches(ds)
  data_state, saved_run = ckpt.read_json(latest)
  _check_resumable(data_state, data_identity, saved_run, run_info,
                   ckpt.directory)
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


def _check_resumable(data_state, data_identity, saved_run, run_info,
                     directory) -> None:
  """A checkpoint only resumes the run that wrote it."""
  for key, want in data_identity.items():
    got = data_state.get(key)
    if got != want:
      raise errors.CheckpointError(
          f"{directory}: checkpoint was written with {key}={got!r}, this run "
          f"has {want!r}; use a new MODEL_DIR for a different run")
  for key in ("trainable", "base_model_fingerprint"):
    if saved_run.get(key) != run_info[key]:
      raise errors.CheckpointError(
          f"{directory}: checkpoint was written with {key}="
          f"{saved_run.get(key)!r}, this run has {run_info[key]!r}")


def _evaluate(p_eval, state, mesh, name, lengths, host_batch_size, split,
              steps) -> dict[str, float]:
  from lta.data import input_pipeline  # pylint: disable=g-import-not-at-top
  ds = input_pipeline.get_dataset(name, lengths, host_batch_size, split=split,
                                  shuffle=False, num_epochs=1)
  totals = None
  for host_batch in input_pipeline.numpy_batches(ds.take(steps)):
    sums = p_eval(state, partitioning.host_batch_to_global(host_batch, mesh))
    totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
  if totals is None:
    raise ValueError(f"{name} has no full {split!r} batch of "
                     f"{host_batch_size} examples for eval")
  return totals

