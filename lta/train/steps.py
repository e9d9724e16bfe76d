"""Pure train and eval steps, and their jitting with explicit shardings.

One trainer serves LoRA/KronA adapters, full fine-tuning and the frozen-
decoder variant: `trainable` (a regex or lta.adapters.trainable preset) chooses
the leaves that get gradients and optimizer state. `train_step` and
`eval_step` are pure; the caller jits them with shardings and donates the
state (`jit_train_step`, `jit_eval_step`), as MaxText and big_vision do.
No TensorFlow here: benchmarks import the steps alone.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from lta import host_memory
from lta import partitioning
from lta.adapters import trainable as trainable_lib
from lta.adapters.tree import flatten_tree
from lta.models import families
from lta.models.contract import token_means
from lta.train import state as train_state_lib
from lta.train.state import TrainState

Batch = Mapping[str, jax.Array]


def token_sums(trainable, frozen, batch: Batch, dropout_rng,
               model: families.Model
               ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Loss summed over target tokens, and the sums the metrics are made of.

  Sums, not means, so that microbatches and eval batches add up exactly.
  """
  loss, aux = model.token_sums(trainable_lib.combine(trainable, frozen),
                               batch, dropout_rng)
  return loss, {"loss": loss, **aux}


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


def accumulate_gradients(state: TrainState, batch: Batch, *,
                         model: families.Model, num_microbatches: int,
                         enable_dropout: bool) -> tuple[Any, dict[str, Any]]:
  """Token-summed gradients of the trainable tree and token sums, over k
  microbatches (a `lax.scan`), each with its own dropout key."""
  step_rng = jax.random.fold_in(jax.random.wrap_key_data(state.rng),
                                state.step)
  grad_fn = jax.grad(token_sums, has_aux=True)

  def micro(mb, i):
    mb = jax.tree.map(
        lambda x: nn.with_logical_constraint(
            x, ("batch",) + (None,) * (x.ndim - 1)), mb)
    rng = jax.random.fold_in(step_rng, i) if enable_dropout else None
    return grad_fn(state.trainable, state.frozen, mb, rng, model)

  if num_microbatches == 1:
    return micro(batch, 0)
  mbs = split_microbatches(batch, num_microbatches)
  first = jax.tree.map(lambda x: x[0], mbs)
  zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype),
                       jax.eval_shape(micro, first, 0))

  def body(acc, xs):
    return jax.tree.map(jnp.add, acc, micro(*xs)), None

  (grads, sums), _ = jax.lax.scan(body, zeros,
                                  (mbs, jnp.arange(num_microbatches)))
  return grads, sums


def train_step(state: TrainState, batch: Batch, *,
               model: families.Model,
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
  grads, sums = accumulate_gradients(
      state, batch, model=model, num_microbatches=num_microbatches,
      enable_dropout=enable_dropout)
  denom = jnp.maximum(sums["num_tokens"], 1.0)
  grads = jax.tree.map(lambda g: g / denom.astype(g.dtype), grads)
  updates, opt_state = optimizer.update(grads, state.opt_state,
                                        state.trainable)
  new_state = state.replace(
      step=state.step + 1,
      trainable=optax.apply_updates(state.trainable, updates),
      opt_state=opt_state)
  metrics = token_means(sums)
  metrics["grad_norm"] = optax.global_norm(grads)
  return new_state, metrics


def eval_step(state: TrainState, batch: Batch, *,
              model: families.Model) -> dict[str, jax.Array]:
  """Token sums (loss, cross entropy, accuracy, tokens) without dropout."""
  _, sums = token_sums(state.trainable, state.frozen, batch, None, model)
  return sums


# --------------------------------------------------------------- sharding --


def state_shardings(model: families.Model, pattern: str,
                    optimizer: optax.GradientTransformation,
                    mesh: jax.sharding.Mesh, rules) -> tuple[Any, TrainState]:
  """(variable shardings, TrainState of shardings) from logical axis names.

  An optimizer-state leaf shaped like the trainable leaf whose path ends
  its own (Adam's mu and nu, momentum) takes that leaf's sharding: left to
  XLA, optimizer.init's zeros come back replicated. Other leaves (Adafactor's
  factored moments, step counts) keep what XLA chooses, or are replicated.
  """
  boxed = jax.eval_shape(model.init_variables, jax.random.PRNGKey(0))
  var_sh = partitioning.logical_to_sharding(boxed, mesh, rules)
  abstract = nn.meta.unbox(boxed)
  trainable_sh, frozen_sh = trainable_lib.split_trainable(var_sh, pattern)
  abstract_trainable, _ = trainable_lib.split_trainable(abstract, pattern)
  opt_sh = jax.jit(optimizer.init, in_shardings=(trainable_sh,)).lower(
      abstract_trainable).compile().output_shardings
  rep = partitioning.replicated(mesh)
  like_params = _shardings_by_path(abstract_trainable, trainable_sh)

  def place(path, leaf, chosen):
    match = like_params.get(_dict_keys(path))
    if match is not None and match[0] == leaf.shape:
      return match[1]
    # Leaves not derived from a parameter (step counts) come back placed on
    # one device; they belong replicated on the mesh.
    return chosen if isinstance(chosen, jax.sharding.NamedSharding) else rep

  opt_sh = jax.tree_util.tree_map_with_path(
      place, jax.eval_shape(optimizer.init, abstract_trainable), opt_sh)
  return var_sh, TrainState(step=rep, trainable=trainable_sh,
                            frozen=frozen_sh, opt_state=opt_sh, rng=rep)


def _dict_keys(path) -> tuple[str, ...]:
  """The trailing dictionary keys of a tree path: the parameter's path
  within an optimizer state's parameter-shaped subtree."""
  keys = []
  for entry in reversed(path):
    if not isinstance(entry, jax.tree_util.DictKey):
      break
    keys.append(str(entry.key))
  return tuple(reversed(keys))


def _shardings_by_path(abstract, shardings) -> dict[tuple[str, ...], Any]:
  """{parameter path: (shape, sharding)} of the trainable tree."""
  leaves = jax.tree_util.tree_leaves_with_path(abstract)
  return {_dict_keys(path): (leaf.shape, sh) for (path, leaf), sh in
          zip(leaves, jax.tree.leaves(shardings))}


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


def init_variables(model: families.Model, var_sh, seed: int,
                   base: Optional[dict[str, Any]] = None) -> dict[str, Any]:
  """Sharded random variables; `base` (numpy) replaces the random params.

  With a base, the random params are never made, and `base` is emptied as
  its leaves reach the devices, so that the host holds one copy of the
  model at most (BENCHMARKS.md: a 0.5B base's set-up peaked at 11.0 GB,
  now at 2.8 GB).

  On several processes each compiles the init, then waits for the others
  before the first collective of start-up (partitioning.compile_then_wait):
  a host that loads or compiles slower must not fail its peers.
  """
  keep = var_sh if base is None else {
      k: v for k, v in var_sh.items() if k != "params"}

  def init():
    variables = model.init_unboxed(
        jax.random.fold_in(jax.random.PRNGKey(seed), 1))
    return {k: variables[k] for k in keep}  # XLA drops the rest

  variables = partitioning.compile_then_wait(
      jax.jit(init, out_shardings=keep), "init_variables")()
  if base is None:
    return variables
  _check_same_shapes(base, jax.eval_shape(
      model.init_unboxed, jax.random.PRNGKey(0))["params"],
                     "INITIAL_CHECKPOINT_PATH")
  # Placing host values on a multi-process mesh checks, leaf by leaf in a
  # collective, that every process holds the same values.
  partitioning.wait_for_processes("base_to_devices")
  variables = {**variables, "params": put_consuming(base, var_sh["params"])}
  host_memory.release_free_memory()  # the base's host copy, where freed
  return variables


def put_consuming(tree: dict[str, Any], shardings) -> dict[str, Any]:
  """`tree`'s leaves placed as `shardings` says, one at a time, each
  removed from `tree` (a nested dict) once placed: its host memory is
  freed as the device copy grows, where nothing else holds the leaf."""
  placed = {}
  for key in list(tree):
    value = tree.pop(key)
    if isinstance(value, dict):
      placed[key] = put_consuming(value, shardings[key])
    else:  # waits: a transfer in flight holds its host array
      placed[key] = jax.block_until_ready(_owned_copy(
          jax.device_put(value, shardings[key]), value))
    del value
  return placed


def _owned_copy(placed: jax.Array, host: Any) -> jax.Array:
  """`placed`, in memory apart from `host`'s. On CPU, device_put of an
  aligned numpy array may share its memory; a train step cannot donate such
  a buffer, so its first call would copy it while the host array lives."""
  interface = getattr(host, "__array_interface__", None)
  if (interface is None or
      next(iter(placed.sharding.device_set)).platform != "cpu"):
    return placed
  start = interface["data"][0]
  if not any(start <= shard.data.unsafe_buffer_pointer() < start + host.nbytes
             for shard in placed.addressable_shards):
    return placed
  return jax.device_put(placed, placed.sharding, may_alias=False)


def create_state(variables: dict[str, Any], pattern: str, optimizer,
                 var_sh, state_sh: TrainState, seed: int) -> TrainState:
  """The train state of `variables` (device arrays or numpy leaves, such as
  an initial adapter), placed as `state_sh` says.

  The frozen leaves (the base) join the state as they are, not through a
  program that would copy them: only the trainable's state is computed.
  """
  partitioning.wait_for_processes("variables_to_devices")
  variables = jax.device_put(variables, var_sh)
  trainable, frozen = trainable_lib.split_trainable(variables, pattern)
  create = functools.partial(train_state_lib.create, pattern=pattern,
                             optimizer=optimizer, seed=seed)
  state = partitioning.compile_then_wait(
      jax.jit(create, in_shardings=(state_sh.trainable,),
              out_shardings=state_sh.replace(frozen={})),
      "create_state")(trainable)
  return state.replace(frozen=frozen)  # placed as state_sh.frozen already


def _check_same_shapes(loaded, expected, what: str) -> None:
  got = {k: tuple(np.shape(v)) for k, v in
         flatten_tree(loaded).items()}
  want = {k: tuple(np.shape(v)) for k, v in
          flatten_tree(expected).items()}
  if got != want:
    bad = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
    raise ValueError(f"{what}: parameters do not match the model config at "
                     f"{[(k, got.get(k), want.get(k)) for k in bad[:5]]}")
