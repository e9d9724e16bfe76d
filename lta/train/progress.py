"""Training progress: console lines and TensorBoard scalars (process 0)."""

from __future__ import annotations

import datetime
import os
import time
from typing import Mapping

import jax
import numpy as np

from lta import partitioning


class ScalarWriter:
  """TensorBoard scalar events, written with TF alone (no tensorboard pip)."""

  def __init__(self, logdir: str):
    # TF (like seqio) is imported by the loop only: lta.train.steps
    # stays importable without it, which keeps benchmark processes lean.
    # pylint: disable=g-import-not-at-top
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2
    # pylint: enable=g-import-not-at-top
    self._tf = tf
    self._metadata = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(
            plugin_name="scalars"))
    self._writer = tf.summary.create_file_writer(logdir)

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    tf = self._tf
    with self._writer.as_default():
      for name, value in scalars.items():
        tf.summary.write(name, tf.constant(float(value), tf.float32),
                         step=step, metadata=self._metadata)
    self._writer.flush()

  def close(self) -> None:
    self._writer.close()


class Reporter:
  """Console progress lines and TensorBoard scalars."""

  def __init__(self, model_dir: str, train_steps: int, start_step: int):
    self.is_main = jax.process_index() == 0
    self.writer = (ScalarWriter(os.path.join(model_dir, "train"))
                   if self.is_main else None)
    self.eval_writer = (ScalarWriter(os.path.join(model_dir, "eval"))
                        if self.is_main else None)
    self.train_steps = train_steps
    self.pending: list[dict[str, jax.Array]] = []
    self.tokens = 0
    self.last_time, self.last_step = time.time(), start_step

  def add(self, metrics: dict[str, jax.Array], tokens: int) -> None:
    """A step's metrics and the tokens of this process's share of its batch."""
    self.pending.append(metrics)
    self.tokens += tokens

  def flush(self, step: int) -> dict[str, float]:
    """Every process calls it at the same step: the token counts of all
    processes add up to the global batches' ('tokens', 'tokens_per_s')."""
    values = jax.device_get(self.pending)
    tokens = int(partitioning.gather_from_processes(
        np.asarray(self.tokens, np.int64)).sum())
    now = time.time()
    elapsed = max(now - self.last_time, 1e-9)
    steps_per_s = (step - self.last_step) / elapsed
    means = {k: float(np.mean([v[k] for v in values])) for k in values[0]}
    means.update(steps_per_s=steps_per_s, tokens=tokens,
                 tokens_per_s=tokens / elapsed)
    eta = datetime.timedelta(
        seconds=int((self.train_steps - step) / max(steps_per_s, 1e-9)))
    if self.is_main:
      print(f"step {step}/{self.train_steps} | loss {means['loss']:.4f} | "
            f"{steps_per_s:.2f} steps/s | {means['tokens_per_s']:,.0f} "
            f"tokens/s | ETA {eta}", flush=True)
      self.writer.write_scalars(step, means)
    self.pending, self.tokens = [], 0
    self.last_time, self.last_step = now, step
    return {"step": step, **means}

  def eval(self, step: int, means: dict[str, jax.Array]) -> dict[str, float]:
    means = {k: float(v) for k, v in jax.device_get(means).items()}
    if self.is_main:
      print(f"step {step}/{self.train_steps} | eval loss {means['loss']:.4f} "
            f"| eval accuracy {means['accuracy']:.4f}", flush=True)
      self.eval_writer.write_scalars(step, means)
    # Eval excludes its own time from the next steps/s.
    self.last_time = time.time()
    return {"step": step, **means}

  def close(self):
    for w in (self.writer, self.eval_writer):
      if w is not None:
        w.close()
