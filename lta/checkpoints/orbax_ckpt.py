"""Training checkpoints: trainable tree only, with data position and manifest.

A checkpoint `<model_dir>/checkpoints/<step>/` holds three orbax items:
  state  step, trainable tree, its optimizer state, rng (never the frozen
         base: that is re-read from INITIAL_CHECKPOINT_PATH on resume)
  data   how many global batches were consumed, and the pipeline's identity
  run    what was trained: trainable pattern, task, base-model fingerprint,
         and for adapter runs the AdapterManifest
Saves are asynchronous; keep-N drops old steps.
"""

from __future__ import annotations

import os
from typing import Any, Optional

import jax
import orbax.checkpoint as ocp

STATE, DATA, RUN = "state", "data", "run"
SUBDIR = "checkpoints"


class TrainCheckpointer:
  """An orbax CheckpointManager over the (state, data, run) items."""

  def __init__(self, model_dir: str, keep: int = 3, async_save: bool = True):
    self.directory = os.path.join(os.path.abspath(model_dir), SUBDIR)
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, create=True,
        enable_async_checkpointing=async_save)
    # Explicit handlers let a fresh manager read metadata before any save.
    self.manager = ocp.CheckpointManager(
        self.directory, options=options,
        item_handlers={STATE: ocp.StandardCheckpointHandler(),
                       DATA: ocp.JsonCheckpointHandler(),
                       RUN: ocp.JsonCheckpointHandler()})

  def latest_step(self) -> Optional[int]:
    return self.manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self.manager.all_steps())

  def save(self, step: int, state_items: dict[str, Any], data: dict[str, Any],
           run: dict[str, Any], force: bool = False) -> bool:
    return self.manager.save(
        step, args=ocp.args.Composite(**{
            STATE: ocp.args.StandardSave(state_items),
            DATA: ocp.args.JsonSave(data),
            RUN: ocp.args.JsonSave(run)}), force=force)

  def restore(self, step: int, abstract_items: dict[str, Any]
              ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(state items, data, run) of `step`, placed as `abstract_items` says.

    `abstract_items` holds jax.ShapeDtypeStruct leaves with shardings, so
    each host reads only the shards it owns.
    """
    restored = self.manager.restore(
        step, args=ocp.args.Composite(**{
            STATE: ocp.args.StandardRestore(abstract_items),
            DATA: ocp.args.JsonRestore(),
            RUN: ocp.args.JsonRestore()}))
    return restored[STATE], restored[DATA], restored[RUN]

  def state_metadata(self, step: int) -> Any:
    """The saved state's tree of array metadata (shapes, dtypes), unread."""
    return self.manager.item_metadata(step)[STATE]

  def run_info(self, step: int) -> dict[str, Any]:
    return self.manager.restore(
        step, args=ocp.args.Composite(**{RUN: ocp.args.JsonRestore()}))[RUN]

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
