"""Decode a seqio task's examples with one set of variables, and score them."""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Callable, Mapping, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import seqio

from lta import langid
from lta import metrics
from lta import vocab
from lta.models import DecodingConfig, EncoderDecoderModel

# The score each task family reports in the paper's tables.
MAIN_METRIC = {"xlsum": "rouge2", "tydiqa_goldp": "f1"}


def task_language(task_name: str) -> str:
  """'xlsum.pt' -> 'pt'."""
  if "." not in task_name:
    raise ValueError(f"Task name {task_name!r} has no '.<lang>' suffix.")
  return task_name.rsplit(".", 1)[1]


def main_metric(task_name: str) -> str:
  family = task_name.split(".", 1)[0]
  for prefix, metric in MAIN_METRIC.items():
    if family.startswith(prefix):
      return metric
  raise ValueError(f"No main metric known for task {task_name!r}; expected "
                   f"a family among {sorted(MAIN_METRIC)}.")


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


def _pad_inputs(examples, length):
  ids = np.zeros((len(examples), length), np.int32)
  for i, ex in enumerate(examples):
    row = ex["inputs"][:length]
    ids[i, :len(row)] = row
  return ids


def _text(value) -> str:
  return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def make_predict_fn(model: EncoderDecoderModel,
                    decoding: DecodingConfig) -> Callable:
  return jax.jit(functools.partial(model.predict_batch, config=decoding))


def decode_examples(predict_fn: Callable, variables: Mapping[str, Any],
                    examples: Sequence[Mapping[str, Any]], batch_size: int,
                    input_length: int,
                    progress: Optional[Callable[[int, int], None]] = None
                    ) -> list[np.ndarray]:
  """Decoded ids for each example, batched; the last batch is padded."""
  outputs = []
  for start in range(0, len(examples), batch_size):
    chunk = list(examples[start:start + batch_size])
    n = len(chunk)
    chunk += [chunk[-1]] * (batch_size - n)  # fixed shapes: one compile
    batch = {"encoder_input_tokens": jnp.asarray(
        _pad_inputs(chunk, input_length))}
    ids = np.asarray(predict_fn(variables, batch))[:n]
    outputs.extend(ids)
    if progress:
      progress(min(start + batch_size, len(examples)), len(examples))
  return outputs


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
  lang = task_language(task_name)
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
  elif fidelity and metrics.fidelity_gap(lang):
    notes["language_fidelity"] = metrics.fidelity_gap(lang)
  elif fidelity:
    scores["language_fidelity"] = metrics.language_fidelity(texts, lang)
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
  if task_language(task_name) == "en":
    return metrics.rouge_plain_per_example(targets, predictions)[main]
  return metrics.rouge_spm_per_example(targets, predictions,
                                       vocab.vocabulary_path())[main]


def evaluate(model: EncoderDecoderModel, variables: Mapping[str, Any],
             task_names: Sequence[str], *, split: str,
             feature_lengths: Mapping[str, int], batch_size: int = 8,
             decoding: DecodingConfig = DecodingConfig(),
             max_examples: Optional[int] = None, fidelity: bool = True,
             fidelity_fn: Optional[FidelityFn] = None,
             log: Callable[[str], None] = print) -> list[TaskResult]:
  """Decodes and scores every task with the same variables."""
  predict_fn = make_predict_fn(model, decoding)
  results = []
  for name in task_names:
    t0 = time.time()
    examples = load_examples(name, split, feature_lengths, max_examples)

    def progress(done, total, name=name):
      log(f"  decoding {name}: {done}/{total}")

    ids = decode_examples(predict_fn, variables, examples, batch_size,
                          feature_lengths["inputs"], progress)
    result = score_task(name, examples, ids, fidelity, fidelity_fn)
    main = main_metric(name)
    log(f"  {name}: {main}={result.scores.get(main, float('nan')):.2f} "
        f"({len(examples)} examples, {time.time() - t0:.1f}s)")
    results.append(result)
  return results
