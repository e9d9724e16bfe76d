"""Scoring composed adapters: fold into one base, decode, score; λ per target.

`MergedScorer` merges an adapter into a base model and decodes and scores a
task with it (prompt and bottleneck adapters, which fold into nothing, run
unmerged beside the base instead). `score_composition` composes a named composition for one
task's language at each λ of a grid, picks λ on the selection split and
scores that λ on the reported split: the paper's protocol, shared by
`lta eval` (lta.jobs.evaluate) and the staged pipeline (lta.pipeline.run).
"""

from __future__ import annotations

import collections.abc
import contextlib
import dataclasses
from typing import Any, Callable, Mapping, Optional, Sequence

import jax
import numpy as np

from lta import errors
from lta.adapters import deltas
from lta.adapters.manifest import Adapter
from lta.adapters.tree import flatten_tree
from lta.adapters.tree import unflatten_tree
from lta.arithmetic import compat
from lta.arithmetic import compositions
from lta.checkpoints import base_model
from lta.checkpoints import fingerprint
from lta.data import decoder_only
from lta.data import language_codes
from lta.data import task_names
from lta.data import vocab
from lta.eval import lambda_selection
from lta.eval import methods
from lta.eval import scoring
from lta.eval.results import ResultRecord
from lta.models import families
from lta.models.contract import DecodingConfig


def merged_variables(params: Mapping[str, Any], adapter: Optional[Adapter]
                     ) -> tuple[dict[str, Any], bool]:
  """The variables that decode `adapter` on base `params`, and whether
  their encoder weights are the base's (every nonzero ΔW is under
  'decoder/'). Prompt and bottleneck adapters run unmerged beside the base.
  """
  if adapter is None:
    return {"params": params}, True
  if not adapter.config.foldable:
    return {"params": params, "adapters": adapter.tree}, False
  dws = deltas.adapter_deltas(adapter.tree, adapter.config)
  encoder_unchanged = all(path.startswith("decoder/") or not np.any(dw)
                          for path, dw in dws.items())
  return {"params": deltas.add_deltas(params, dws)}, encoder_unchanged


def _is_base_leaf(path: str, leaf: Any, base_flat: Mapping[str, Any]) -> bool:
  collection, _, rest = path.partition("/")
  return collection == "params" and base_flat.get(rest) is leaf


def on_device(variables: Mapping[str, Any], base: Mapping[str, Any],
              base_on_device: Mapping[str, Any]) -> dict[str, Any]:
  """`variables` on the device, reusing `base_on_device` (the device copy
  of the base params `base`) for every leaf that is the base's own array:
  a merged adapter transfers only the kernels it changed, so each λ of a
  sweep does not copy the whole model (the embeddings) again."""
  base_flat = flatten_tree(base)
  device_flat = flatten_tree(base_on_device)
  return unflatten_tree({
      path: (device_flat[path.partition("/")[2]]
             if _is_base_leaf(path, leaf, base_flat) else jax.device_put(leaf))
      for path, leaf in flatten_tree(variables).items()})


def stacked_on_device(variables: Sequence[Mapping[str, Any]],
                      base: Mapping[str, Any],
                      base_on_device: Mapping[str, Any]
                      ) -> tuple[dict[str, Any], dict[str, Any]]:
  """Several adapters' variables as one tree on the device, and its vmap
  in_axes (scoring.PredictFn.stacked): a leaf that is the base's own array
  in all of them is the base's device copy (None: shared); any other leaf
  is stacked on a new leading axis (0). They must share a stack_signature.
  """
  base_flat = flatten_tree(base)
  device_flat = flatten_tree(base_on_device)
  flats = [flatten_tree(v) for v in variables]
  tree, axes = {}, {}
  for path in flats[0]:
    leaves = [flat[path] for flat in flats]
    if all(_is_base_leaf(path, leaf, base_flat) for leaf in leaves):
      tree[path], axes[path] = device_flat[path.partition("/")[2]], None
    else:
      tree[path] = jax.device_put(np.stack([np.asarray(x) for x in leaves]))
      axes[path] = 0
  return unflatten_tree(tree), unflatten_tree(axes)


def stack_signature(variables: Mapping[str, Any],
                    base: Mapping[str, Any]) -> tuple:
  """What must match for variables to stack: each leaf's path, shape,
  dtype and whether it is the base's own array."""
  base_flat = flatten_tree(base)
  return tuple((path, np.shape(leaf), str(np.result_type(leaf)),
                _is_base_leaf(path, leaf, base_flat))
               for path, leaf in flatten_tree(variables).items())


def side_by_side(members: Sequence[int], per_call: int) -> list[list[int]]:
  """`members` in calls of at most `per_call`, as even as possible; a short
  last call repeats its last member, so every call has one shape (one
  compiled program) and the repeats' outputs are dropped."""
  calls = -(-len(members) // max(per_call, 1))
  size = -(-len(members) // calls)
  chunks = [list(members[i:i + size]) for i in range(0, len(members), size)]
  chunks[-1] += [chunks[-1][-1]] * (size - len(chunks[-1]))
  return chunks


def decode_side_by_side(
    predict: scoring.PredictFn, variables: Sequence[Mapping[str, Any]],
    base: Mapping[str, Any], base_on_device: Mapping[str, Any],
    examples: Sequence[Mapping[str, Any]], batch_size: int,
    input_length: int, per_call: int,
    encoder: Optional[scoring.EncoderReuse] = None,
    progress: Optional[Callable[[list[int]], scoring.ProgressFn]] = None
) -> list[list[np.ndarray]]:
  """Each of `variables`' decoded ids (scoring.decode_examples), up to
  `per_call` of them side by side in one call, which reads its members'
  entries of `variables` (they must share a stack_signature;
  `encoder`'s outputs must hold for all). progress(call),
  for the indices one call decodes, gives that call's progress function.
  """
  ids: dict[int, list[np.ndarray]] = {}
  for call in side_by_side(range(len(variables)), per_call):
    report = None if progress is None else progress(call)
    if len(call) == 1:
      decoded = [scoring.decode_examples(
          predict, on_device(variables[call[0]], base, base_on_device),
          examples, batch_size, input_length, report, encoder=encoder)]
    else:
      tree, in_axes = stacked_on_device([variables[i] for i in call], base,
                                        base_on_device)
      decoded = scoring.decode_examples_stacked(
          predict, tree, in_axes, examples, batch_size, input_length, report,
          encoder=encoder)
    ids.update(zip(call, decoded))  # a repeat overwrites its equal
  return [ids[i] for i in range(len(variables))]


def _call_label(labels: Sequence[str]) -> str:
  """One decoding call's adapters: '+ lang, λ=0.3, 0.5' for one method's
  λ, else their labels joined."""
  labels = list(dict.fromkeys(labels))
  heads = {label.rpartition("λ=")[0] for label in labels}
  if len(labels) > 1 and len(heads) == 1 and "" not in heads:
    return f"{heads.pop()}λ=" + ", ".join(
        label.rpartition("λ=")[2] for label in labels)
  return "; ".join(labels)


class _Merged(collections.abc.Sequence):
  """Adapters' merged variables, each merged when read (decode_side_by_side
  reads one call's at a time)."""

  def __init__(self, scorer: "MergedScorer",
               adapters: Sequence[Optional[Adapter]]):
    self._scorer, self._adapters = scorer, adapters

  def __len__(self) -> int:
    return len(self._adapters)

  def __getitem__(self, i):
    return self._scorer.variables(self._adapters[i])


class MergedScorer:
  """Merges an adapter into one base model, then decodes and scores a task.

  `vocabulary`: the SentencePiece model the tasks read and score with (None:
  the configured one, `lta.vocab.get_vocabulary.path`). `log` receives the
  decoding progress lines (None: silent).

  Every adapter decodes through one compiled program (the merged weights
  are arguments of the jitted predict_batch), so a λ sweep compiles once.
  With `reuse_encoder`, an encoder-decoder base encodes each batch of a task
  split once: adapters whose merged weights leave the encoder as the base
  has it (decoder-only adapters, or encoder deltas of zero, e.g. at λ = 0)
  reuse those outputs; any other adapter encodes again.
  """

  def __init__(self, base_path: str, feature_lengths: Mapping[str, int],
               batch_size: int, decoding: DecodingConfig,
               max_examples: Optional[int] = None,
               fidelity_fn: Optional[scoring.FidelityFn] = None,
               model_config: Optional[families.ModelConfig] = None,
               log: Optional[Callable[[str], None]] = print,
               vocabulary: Optional[str] = None, reuse_encoder: bool = True,
               adapters_per_call: int = 4):
    if adapters_per_call < 1:
      raise errors.ConfigError(
          f"adapters_per_call={adapters_per_call}: must be at least 1 (how "
          "many adapters, the λ of a sweep, one decoding call runs)")
    self.adapters_per_call = adapters_per_call
    self.base_path = base_path
    self.config, self.params = base_model.load_base_model(
        base_path, model_config, "run_eval.base_checkpoint",
        "run_eval.model_config")
    self.fingerprint = fingerprint.base_model_fingerprint(self.config,
                                                          self.params)
    # Decode as the decoder-only objective trained (the same gin binding).
    self._bidirectional = (families.is_decoder_only(self.config) and
                           decoder_only.DecoderObjective().bidirectional_prompt)
    self.model = families.build_model(
        self.config, bidirectional_prompt=self._bidirectional)
    self.decoding = decoding
    self.language_scheme = language_codes.scheme_for(self.config)
    self._predict_fns: dict[tuple[Optional[int], Any], scoring.PredictFn] = {}
    self.feature_lengths = dict(feature_lengths)
    self.batch_size = batch_size
    self.max_examples = max_examples
    self.fidelity_fn = fidelity_fn
    self.log = log
    self.vocabulary = vocabulary
    self._examples: dict[tuple[str, str], list] = {}
    self.reuse_encoder = (reuse_encoder and self.model.ARCHITECTURE ==
                          "encoder_decoder")
    self.encodings: dict[tuple[str, str], scoring.EncoderReuse] = {}
    self._base_on_device = None

  def _vocabulary_in_use(self):
    return (vocab.use_vocabulary(self.vocabulary) if self.vocabulary
            else contextlib.nullcontext())

  def examples(self, task: str, split: str) -> list:
    if (task, split) not in self._examples:
      with self._vocabulary_in_use(), language_codes.use_scheme(
          self.language_scheme):
        self._examples[(task, split)] = scoring.load_examples(
            task, split, self.feature_lengths, self.max_examples)
    return self._examples[(task, split)]

  def predict_fn(self, task: str,
                 adapter: Optional[Adapter] = None) -> scoring.PredictFn:
    """The jitted decoder for `task`: mBART / NLLB force its language's
    code as the first token, unless DecodingConfig.forced_first_id does.
    Adapter kinds that do not fold into the base (prompt, bottleneck) get
    an unmerged model, one per adapter config."""
    forced = self.decoding.forced_first_id
    if forced is None and self.language_scheme is not None:
      with self._vocabulary_in_use(), language_codes.use_scheme(
          self.language_scheme):
        forced = language_codes.forced_first_id(
            vocab.current_vocabulary(), task_names.language(task))
    unmerged = (adapter.config if adapter is not None
                and not adapter.config.foldable else None)
    key = (forced, unmerged)
    if key not in self._predict_fns:
      model = (self.model if unmerged is None
               else families.build_model(
                   self.config, unmerged,
                   bidirectional_prompt=self._bidirectional))
      self._predict_fns[key] = scoring.make_predict_fn(
          model, dataclasses.replace(self.decoding, forced_first_id=forced))
    return self._predict_fns[key]

  def variables(self, adapter: Optional[Adapter]) -> dict[str, Any]:
    return self._variables(adapter)[0]

  def _variables(self, adapter: Optional[Adapter]
                 ) -> tuple[dict[str, Any], bool]:
    if adapter is not None:
      compat.check_base([adapter], self.fingerprint, self.base_path)
    return merged_variables(self.params, adapter)

  def _base_variables_on_device(self) -> dict[str, Any]:
    if self._base_on_device is None:  # one copy for every adapter and task
      self._base_on_device = jax.device_put({"params": self.params})
    return self._base_on_device

  def _encoder_reuse(self, task: str, split: str) -> scoring.EncoderReuse:
    if (task, split) not in self.encodings:
      self.encodings[(task, split)] = scoring.EncoderReuse(
          self.model, self._base_variables_on_device())
    return self.encodings[(task, split)]

  def score(self, adapter: Optional[Adapter], task: str,
            split: str) -> scoring.TaskResult:
    return self.score_all([adapter], task, split)[0]

  def score_all(self, adapters: Sequence[Optional[Adapter]], task: str,
                split: str) -> list[scoring.TaskResult]:
    """score() of each adapter. Those that change the same base leaves
    (the λ of one composition) decode side by side, adapters_per_call at a
    time: what they share of the base is read once per step for all."""
    examples = self.examples(task, split)
    groups: dict[Any, list[int]] = {}
    for i, adapter in enumerate(adapters):
      # Merged again per call: host memory holds one call's merges, not
      # every λ's changed kernels at once.
      variables, unchanged = self._variables(adapter)
      key = (self.predict_fn(task, adapter), unchanged,
             stack_signature(variables, self.params))
      groups.setdefault(key, []).append(i)
      del variables
    ids: dict[int, list[np.ndarray]] = {}
    labels = [a.label if a is not None else "base model" for a in adapters]
    for (predict, unchanged, _), members in groups.items():
      def progress(call, members=members):
        what = _call_label([labels[members[i]] for i in call])
        return scoring.DecodeProgress(f"{task} ({split}) | {what}", self.log)
      decoded = decode_side_by_side(
          predict, _Merged(self, [adapters[i] for i in members]), self.params,
          self._base_variables_on_device()["params"], examples,
          self.batch_size, self.feature_lengths["inputs"],
          self.adapters_per_call,
          encoder=(self._encoder_reuse(task, split)
                   if self.reuse_encoder and unchanged else None),
          progress=progress if self.log else None)
      ids.update(zip(members, decoded))
    return [self.score_decoded(task, examples, ids[i])
            for i in range(len(adapters))]

  def score_decoded(self, task: str, examples: Sequence[Any],
                    ids: Sequence[np.ndarray]) -> scoring.TaskResult:
    """The scores of `task` from the decoded ids of its examples."""
    with self._vocabulary_in_use():
      return scoring.score_task(task, examples, ids,
                                fidelity_fn=self.fidelity_fn)


def select_lambda_and_score(
    score_all: Callable[[Sequence[Adapter], str], list[scoring.TaskResult]],
    compose: Callable[[float], Adapter], grid: Sequence[float],
    selection_split: str, split: str,
    selection_score: Callable[[scoring.TaskResult], float]
) -> tuple[scoring.TaskResult, dict[float, float]]:
  """Scores every λ of `grid` on selection_split, then the best on split.

  score_all(adapters, split) decodes and scores one task for each adapter
  (MergedScorer.score_all: the λ decode side by side). The selection
  scores are returned (λ -> score) for plots, even for a single λ.
  """
  lambdas = [float(lam) for lam in grid]
  results = score_all([compose(lam) for lam in lambdas], selection_split)
  by_lambda = {lam: selection_score(r) for lam, r in zip(lambdas, results)}
  lam = lambda_selection.best_lambda({"": by_lambda})[""]
  result = score_all([compose(lam)], split)[0]
  result.scores["lambda"] = lam
  return result, by_lambda


def score_composition(
    scorer: MergedScorer, task: str, name: str, *,
    task_vectors: Mapping[str, Adapter],
    language_vectors: Optional[Mapping[str, Adapter]],
    sources: Optional[Sequence[str]], grid: Sequence[float],
    space: str = "factor", split: str = "test",
    selection_split: str = "validation",
    selection_metric: Optional[str] = None, **checks: Any
) -> tuple[ResultRecord, list[dict[str, Any]]]:
  """Composition `name` for `task`'s language, λ chosen, scored.

  Composed at each λ of `grid` (at λ = 1 alone for a method without λ),
  scored on selection_split by `selection_metric` (default: the task's main
  metric), the best λ scored on `split`. `checks` go to
  `compositions.compose` (allow_extrapolation, allow_unlabelled). Returns
  the result record, with the selection sweep, and the decoded examples.
  """
  target = task_names.language(task)
  metric = selection_metric or scoring.main_metric(task)
  used: dict[str, tuple[str, ...]] = {}

  def compose(lam: float) -> Adapter:
    adapter = compositions.compose(
        name, task_vectors=task_vectors, language_vectors=language_vectors,
        target=target, sources=sources, lam=lam, space=space, **checks)
    used["sources"] = tuple(adapter.manifest.provenance["sources"])
    return dataclasses.replace(adapter, name=methods.instance_label(
        name, lam, used["sources"]))

  def selection_score(result: scoring.TaskResult) -> float:
    if metric not in result.scores:
      raise errors.ConfigError(
          f"The λ selection metric {metric!r} is not among the scores "
          f"{sorted(result.scores)} of {task}")
    return result.scores[metric]

  result, by_lambda = select_lambda_and_score(
      lambda adapters, s: scorer.score_all(adapters, task, s), compose,
      grid if methods.get(name).uses_lambda else (1.0,), selection_split,
      split, selection_score)
  record = ResultRecord.from_scored(
      name, result, split=split, sources=used["sources"],
      selection_scores=by_lambda, selection_split=selection_split,
      selection_metric=metric, base_checkpoint=scorer.base_path)
  return record, result.examples
