"""Decode a seqio task's examples with one set of variables, and score them."""

from __future__ import annotations

import dataclasses
import datetime
import functools
import time
from typing import Any, Callable, Mapping, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import seqio

from lta import partitioning
from lta.eval import langid
from lta.eval import metrics
from lta.data import vocab
from lta.data import task_names
from lta.models import families
from lta.models.contract import DecodingConfig
# Re-exported: main_metric lives in the light results module.
from lta.eval.results import main_metric  # pylint: disable=unused-import


@dataclasses.dataclass
class TaskResult:
  """scores: metric -> value; notes: metric -> why it has no value."""
  task: str
  language: str
  scores: dict[str, float]
  examples: list[dict[str, Any]]
  notes: dict[str, str] = dataclasses.field(default_factory=dict)


def load_examples(task_name: str, split: str,
                  feature_lengths: Mapping[str, int],
                  max_examples: Optional[int] = None) -> list[dict[str, Any]]:
  task = seqio.get_mixture_or_task(task_name)
  ds = task.get_dataset(dict(feature_lengths), split=split, shuffle=False,
                        num_epochs=1, use_cached=False)
  if max_examples:
    ds = ds.take(max_examples)
  examples = list(ds.as_numpy_iterator())
  if not examples:
    raise ValueError(f"Task {task_name!r} split {split!r} has no examples.")
  return examples


def _text(value) -> str:
  return value.decode("utf-8") if isinstance(value, bytes) else str(value)


class PredictFn:
  """A model's jitted predict_batch, and how it batches prompts.

  `stacked` decodes one batch with several sets of variables in one call
  (vmap over the stacked leaves): leaves that every set shares, the base's
  embeddings and the unchanged kernels, are read once per decoding step for
  all of them. One program per pattern of stacked leaves and count.
  """

  def __init__(self, model: families.Model, decoding: DecodingConfig):
    self._predict_batch = functools.partial(model.predict_batch,
                                            config=decoding)
    self._predict = jax.jit(self._predict_batch)
    self._stacked: dict[Any, Callable[..., jax.Array]] = {}
    self.prompt_batch = model.prompt_batch

  def __call__(self, variables, batch, **kwargs):
    return self._predict(variables, batch, **kwargs)

  def stacked(self, variables, in_axes, batch,
              rng: Optional[jax.Array] = None) -> jax.Array:
    """Ids (sets, batch, length): `variables`' leaves marked 0 in
    `in_axes` are stacked on a leading axis, one entry per set; those
    marked None are shared. The batch and `rng` are the same for every set.
    """
    key = jax.tree.structure(in_axes)  # where the Nones are, too
    if key not in self._stacked:
      def predict_batch_stacked(variables, batch, rng):
        return self._predict_batch(variables, batch, rng=rng)
      self._stacked[key] = jax.jit(jax.vmap(predict_batch_stacked,
                                            in_axes=(in_axes, None, None)))
    return self._stacked[key](variables, batch, rng)


def make_predict_fn(model: families.Model,
                    decoding: DecodingConfig) -> PredictFn:
  return PredictFn(model, decoding)


class EncoderReuse:
  """The encoder's outputs for one task split, computed once per batch and
  reused by every later decode of the same batches.

  Valid only while the decoded variables leave the encoder's weights as
  `variables` has them (MergedScorer decides: a composition that changes
  decoder weights only, or whose encoder deltas are zero). The outputs stay
  on the device: batch x input length x d_model floats per batch.
  """

  def __init__(self, model: families.Model, variables: Mapping[str, Any]):
    self._encode = jax.jit(model.encode)
    self.variables = variables
    self.by_batch: dict[int, jax.Array] = {}

  def __call__(self, index: int, batch: Mapping[str, Any]) -> jax.Array:
    if index not in self.by_batch:
      self.by_batch[index] = self._encode(self.variables, batch)
    return self.by_batch[index]


# progress(batches_done, batches_total, examples_done, examples_total)
ProgressFn = Callable[[int, int, int, int], None]


class DecodeProgress:
  """Progress lines while decoding one task: batches, examples/s and ETA.

  The first batch includes compilation, so the rate and ETA come from the
  batches after it. Lines are printed after the first batch, then at most
  every `interval_s`, and always at the end.
  """

  def __init__(self, what: str, log: Callable[[str], None] = print,
               interval_s: float = 10.0,
               clock: Callable[[], float] = time.time):
    self.what = what
    self.log = log
    self.interval_s = interval_s
    self.clock = clock
    self.start = clock()
    self.first = None  # (time, examples) when the first batch finished
    self.last_print = float("-inf")

  def __call__(self, batches_done: int, batches_total: int,
               examples_done: int, examples_total: int) -> None:
    now = self.clock()
    if self.first is None:
      self.first = (now, examples_done)
    finished = batches_done == batches_total
    if not finished and batches_done > 1 and (
        now - self.last_print < self.interval_s):
      return
    self.last_print = now
    t0, n0 = self.first
    if examples_done > n0 and now > t0:
      rate = (examples_done - n0) / (now - t0)
    else:
      rate = examples_done / max(now - self.start, 1e-9)
    line = (f"  decoding {self.what}: batch {batches_done}/{batches_total}, "
            f"{examples_done}/{examples_total} examples, {rate:.1f} "
            "examples/s")
    if finished:
      line += f", done in {now - self.start:.1f}s"
    else:
      eta = (examples_total - examples_done) / max(rate, 1e-9)
      line += f", ETA {datetime.timedelta(seconds=round(eta))}"
    self.log(line)


def decode_examples(predict_fn: PredictFn, variables: Mapping[str, Any],
                    examples: Sequence[Mapping[str, Any]], batch_size: int,
                    input_length: int,
                    progress: Optional[ProgressFn] = None,
                    rng: Optional[jax.Array] = None,
                    encoder: Optional[EncoderReuse] = None
                    ) -> list[np.ndarray]:
  """Decoded ids for each example, batched; the last batch is padded.

  On N processes each decodes a contiguous 1/N of the batches and every
  process gets all ids back, in order. `rng` (sampling) is folded with the
  batch index, one key per batch, so the split does not change samples.
  `encoder` supplies each batch's encoder output (an encoder-decoder model
  then decodes only).
  """
  ids = _decode_batches(
      lambda batch, rng: predict_fn(variables, batch,
                                    **({} if rng is None else {"rng": rng})),
      predict_fn, examples, batch_size, input_length, progress, rng, encoder)
  return list(ids.reshape(-1, ids.shape[-1])[:len(examples)])


def decode_examples_stacked(predict_fn: PredictFn, variables: Mapping[str, Any],
                            in_axes: Mapping[str, Any],
                            examples: Sequence[Mapping[str, Any]],
                            batch_size: int, input_length: int,
                            progress: Optional[ProgressFn] = None,
                            rng: Optional[jax.Array] = None,
                            encoder: Optional[EncoderReuse] = None
                            ) -> list[list[np.ndarray]]:
  """decode_examples for several sets of variables at once (PredictFn.
  stacked): one list of ids per set, each as decode_examples would give it.
  `encoder`'s outputs must hold for every set."""
  ids = _decode_batches(
      lambda batch, rng: predict_fn.stacked(variables, in_axes, batch, rng),
      predict_fn, examples, batch_size, input_length, progress, rng, encoder)
  ids = np.moveaxis(ids, 2, 0)  # (sets, processes, batches, batch, length)
  return [list(s.reshape(-1, s.shape[-1])[:len(examples)]) for s in ids]


def _decode_batches(call: Callable[[dict, Optional[jax.Array]], jax.Array],
                    predict_fn: PredictFn,
                    examples: Sequence[Mapping[str, Any]], batch_size: int,
                    input_length: int, progress: Optional[ProgressFn],
                    rng: Optional[jax.Array],
                    encoder: Optional[EncoderReuse]) -> np.ndarray:
  """call(batch, rng) on each batch of this process's share, gathered from
  every process: (processes, batches, *call's output shape)."""
  index, count = partitioning.data_shard()
  num_batches = -(-len(examples) // batch_size)
  per_process = -(-num_batches // count)
  mine = range(index * per_process, (index + 1) * per_process)
  # Past the end a process decodes the last batch again (and drops it):
  # every process runs the same steps and gathers the same shape.
  real = max(0, min(mine.stop, num_batches) - mine.start)
  examples_mine = (min(len(examples), (mine.start + real) * batch_size) -
                   mine.start * batch_size) if real else 0
  outputs = []
  for done, b in enumerate(mine, 1):
    start = min(b, num_batches - 1) * batch_size
    chunk = list(examples[start:start + batch_size])
    chunk += [chunk[-1]] * (batch_size - len(chunk))  # fixed shapes
    batch = jax.tree.map(jnp.asarray, predict_fn.prompt_batch(
        [ex["inputs"] for ex in chunk], input_length))
    if encoder is not None:
      batch["encoded"] = encoder(b, batch)
    key = None if rng is None else jax.random.fold_in(
        rng, min(b, num_batches - 1))
    outputs.append(np.asarray(call(batch, key)))
    if progress and done <= real:
      progress(done, real, min(done * batch_size, examples_mine),
               examples_mine)
  return partitioning.gather_from_processes(np.stack(outputs))


FidelityFn = Callable[[Sequence[str], str], float]


def score_task(task_name: str, examples: Sequence[Mapping[str, Any]],
               predicted_ids: Sequence[np.ndarray], fidelity: bool = True,
               fidelity_fn: Optional[FidelityFn] = None) -> TaskResult:
  """Detokenizes, postprocesses and applies the task's metric_fns.

  Language fidelity uses `fidelity_fn(predictions, lang)` when given (e.g.
  a synthetic world's identifier), else the bundled fastText identifier for
  the languages it knows.
  """
  task = seqio.get_mixture_or_task(task_name)
  vocab = task.output_features["targets"].vocabulary
  lang = task_names.language(task_name)
  targets, predictions, records = [], [], []
  for i, (ex, ids) in enumerate(zip(examples, predicted_ids)):
    raw = vocab.decode([int(t) for t in ids])
    pred = task.postprocess_fn(raw, example=ex, is_target=False)
    target_text = _text(ex.get("targets_pretokenized",
                               vocab.decode(list(ex["targets"]))))
    target = task.postprocess_fn(target_text, example=ex, is_target=True)
    targets.append(target)
    predictions.append(pred)
    records.append({"task": task_name, "language": lang, "index": i,
                    "inputs": _text(ex.get("inputs_pretokenized", "")),
                    "target": target_text, "prediction": _text(raw)})
  scores: dict[str, float] = {}
  for metric_fn in task.metric_fns:
    scores.update({k: float(v) for k, v in
                   metric_fn(targets, predictions).items()})
  texts = [_text(p) for p in predictions]
  notes: dict[str, str] = {}
  if fidelity and fidelity_fn is not None:
    scores["language_fidelity"] = float(fidelity_fn(texts, lang))
  elif fidelity and langid.fidelity_gap(lang):
    notes["language_fidelity"] = langid.fidelity_gap(lang)
  elif fidelity:
    scores["language_fidelity"] = langid.language_fidelity(texts, lang)
  main = main_metric(task_name)
  per_example = main_per_example(task_name, targets, predictions)
  _, low, high = metrics.bootstrap_ci(per_example)
  scores[f"{main}_ci_low"], scores[f"{main}_ci_high"] = low, high
  return TaskResult(task_name, lang, scores, records, notes)


def detectable(lang: str) -> bool:
  """Whether the bundled language identifier knows `lang`."""
  try:
    langid.to_lid_code(lang)
    return True
  except ValueError:
    return False


def main_per_example(task_name: str, targets, predictions) -> np.ndarray:
  """Per-example main metric, for bootstrap intervals (means resample)."""
  main = main_metric(task_name)
  if main == "f1":
    return metrics.squad_per_example(targets, predictions)["f1"]
  if task_names.language(task_name) == "en":
    return metrics.rouge_plain_per_example(targets, predictions)[main]
  return metrics.rouge_spm_per_example(targets, predictions,
                                       vocab.vocabulary_path())[main]

