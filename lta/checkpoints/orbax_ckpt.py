"""Training checkpoints: trainable tree only, with data position and manifest.

A checkpoint `<model_dir>/checkpoints/<step>/` holds these orbax items:
  state     step, trainable tree, its optimizer state, rng (never the frozen
            base: that is re-read from INITIAL_CHECKPOINT_PATH on resume)
  data      how many global batches were consumed, how the position is kept,
            and the pipeline's identity
  iterator  each host's tf.data iterator state (`process_<i>-of-<n>.*`),
            written on the calling thread when the save starts, so it is
            the position after exactly `step` batches
  run       what was trained: trainable pattern, task, base-model
            fingerprint, and for adapter runs the AdapterManifest
Items land in a temporary directory that orbax renames into place once all
are written, so a process killed mid-save leaves no half checkpoint; keep-N
drops whole steps. The state is written asynchronously.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Optional, Protocol

from etils import epath
import jax
import orbax.checkpoint as ocp

from lta import errors

STATE, DATA, ITERATOR, RUN = "state", "data", "iterator", "run"
SUBDIR = "checkpoints"


class SaveableIterator(Protocol):
  """What the iterator item needs (lta.data.input_pipeline.TrainBatches)."""

  def save(self, prefix: str) -> None: ...

  def restore(self, prefix: str) -> None: ...


def _iterator_prefix(directory: epath.Path) -> str:
  return os.fspath(directory / (f"process_{jax.process_index()}-of-"
                                f"{jax.process_count()}"))


class IteratorHandler(ocp.CheckpointHandler):
  """Each host's data iterator state, inside orbax's atomic step directory."""

  def save(self, directory: epath.Path, args: "IteratorSave") -> None:
    args.iterator.save(_iterator_prefix(directory))

  def restore(self, directory: epath.Path,
              args: "IteratorRestore") -> SaveableIterator:
    prefix = _iterator_prefix(directory)
    if not os.path.exists(prefix + ".index"):
      raise errors.CheckpointError(
          f"{prefix}.index is missing: this checkpoint holds no input "
          f"position for process {jax.process_index()} of "
          f"{jax.process_count()}")
    args.iterator.restore(prefix)
    return args.iterator


@ocp.args.register_with_handler(IteratorHandler, for_save=True)
@dataclasses.dataclass
class IteratorSave(ocp.args.CheckpointArgs):
  iterator: SaveableIterator


@ocp.args.register_with_handler(IteratorHandler, for_restore=True)
@dataclasses.dataclass
class IteratorRestore(ocp.args.CheckpointArgs):
  iterator: SaveableIterator


class TrainCheckpointer:
  """An orbax CheckpointManager over the (state, data, iterator, run) items."""

  def __init__(self, model_dir: str, keep: int = 3, async_save: bool = True):
    self.directory = os.path.join(os.path.abspath(model_dir), SUBDIR)
    # Temporary directories are saves a killed process never finished.
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, create=True, cleanup_tmp_directories=True,
        enable_async_checkpointing=async_save)
    # Explicit handlers let a fresh manager read metadata before any save.
    self.manager = ocp.CheckpointManager(
        self.directory, options=options,
        item_handlers={STATE: ocp.StandardCheckpointHandler(),
                       DATA: ocp.JsonCheckpointHandler(),
                       ITERATOR: IteratorHandler(),
                       RUN: ocp.JsonCheckpointHandler()})

  def latest_step(self) -> Optional[int]:
    return self.manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self.manager.all_steps())

  def save(self, step: int, state_items: dict[str, Any], data: dict[str, Any],
           run: dict[str, Any], iterator: Optional[SaveableIterator] = None,
           force: bool = False) -> bool:
    """Saves; `iterator` (the input position) is None if it cannot be kept."""
    items = {STATE: ocp.args.StandardSave(state_items),
             DATA: ocp.args.JsonSave(data), RUN: ocp.args.JsonSave(run)}
    if iterator is not None:
      items[ITERATOR] = IteratorSave(iterator)
    return self.manager.save(step, args=ocp.args.Composite(**items),
                             force=force)

  def read_json(self, step: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(data, run) of `step`: cheap, to check a resume before reading arrays."""
    restored = self.manager.restore(step, args=ocp.args.Composite(**{
        DATA: ocp.args.JsonRestore(), RUN: ocp.args.JsonRestore()}))
    return restored[DATA], restored[RUN]

  def restore(self, step: int, abstract_items: dict[str, Any],
              iterator: Optional[SaveableIterator] = None) -> dict[str, Any]:
    """The state items of `step`, placed as `abstract_items` says.

    `abstract_items` holds jax.ShapeDtypeStruct leaves with shardings, so
    each host reads only the shards it owns. `iterator` is moved to the
    saved input position.
    """
    items = {STATE: ocp.args.StandardRestore(abstract_items)}
    if iterator is not None:
      where = os.path.join(self.directory, str(step), ITERATOR)
      if not os.path.isdir(where):
        raise errors.CheckpointError(
            f"{where} is missing: this checkpoint holds no input position")
      items[ITERATOR] = IteratorRestore(iterator)
    return self.manager.restore(step, args=ocp.args.Composite(**items))[STATE]

  def state_metadata(self, step: int) -> Any:
    """The saved state's tree of array metadata (shapes, dtypes), unread."""
    return self.manager.item_metadata(step)[STATE]

  def run_info(self, step: int) -> dict[str, Any]:
    return self.read_json(step)[1]

  def reached_preemption(self, step: int) -> bool:
    """True on every host once any host got a preemption notice (multi-host)."""
    if jax.process_count() == 1:
      return False
    return self.manager.reached_preemption(step)

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.close()


def abstract_like(tree: Any) -> Any:
  """ShapeDtypeStructs carrying each array's sharding, as restore targets."""
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
      tree)
