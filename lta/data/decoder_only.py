"""Objectives for a decoder-only model: one sequence, prompt then answer.

A decoder-only model reads `inputs` (a prompt, or the prefix of a document)
and `targets` (the answer, or the continuation) as one sequence. seqio's
`PrefixLMFeatureConverter` concatenates them, shifts the sequence right into
`decoder_input_tokens` and puts loss weights on the targets only, so the
loss never sees the prompt; with `pack=True` several examples share a row,
told apart by `decoder_segment_ids` and `decoder_positions`.

Two attention patterns over the prompt (`DecoderObjective.prefix_attention`):
  'causal'        (default) every token attends to the tokens before it, as
                  the open decoder-only families were pre-trained;
  'bidirectional' T5X's decoder-only prefix LM: the prompt, and the first
                  answer position, attend to the whole prompt. The batch then
                  carries `decoder_causal_attention` (1 on those positions),
                  which the model reads when present.

Features: `inputs` has no EOS (the prompt runs straight into its answer),
`targets` ends with EOS. The prompt templates of the task vectors are in
`PROMPTS` and docs/decoder_only.md.
"""

from __future__ import annotations

import dataclasses
import string
from typing import Mapping, Optional

import gin
import seqio
import tensorflow as tf

from lta import errors
from lta.data import preprocessors
from lta.data import vocab

PREFIX_ATTENTION = ("causal", "bidirectional")
# Batch features a decoder-only model reads (positions and segment ids only
# in packed batches, causal attention only with a bidirectional prefix).
MODEL_FEATURES = ("decoder_input_tokens", "decoder_target_tokens",
                  "decoder_loss_weights", "decoder_causal_attention",
                  "decoder_segment_ids", "decoder_positions")


@gin.configurable
@dataclasses.dataclass(frozen=True)
class DecoderObjective:
  """How prompt + answer examples become decoder-only batches.

  prefix_attention: 'causal' or 'bidirectional' (see the module docstring).
  pack: several examples per row (segment ids keep them apart).
  """
  prefix_attention: str = "causal"
  pack: bool = False

  def __post_init__(self):
    if self.prefix_attention not in PREFIX_ATTENTION:
      raise errors.ConfigError(
          f"DecoderObjective.prefix_attention={self.prefix_attention!r};"
          f" expected one of {', '.join(map(repr, PREFIX_ATTENTION))}"
          f"{errors.did_you_mean(str(self.prefix_attention), PREFIX_ATTENTION)}")

  @property
  def bidirectional_prompt(self) -> bool:
    """Whether decoding must let the prompt attend to itself both ways, as
    training did (DecoderOnlyModel's bidirectional_prompt)."""
    return self.prefix_attention == "bidirectional"

  def feature_converter(self, bos_id: int = 0) -> seqio.FeatureConverter:
    """Decoder inputs start with `bos_id`, the model's start token."""
    converter = seqio.PrefixLMFeatureConverter(
        loss_on_targets_only=True, pack=self.pack, bos_id=bos_id)
    if self.prefix_attention == "causal":
      return _CausalPrefixLM(converter)
    return converter


class _CausalPrefixLM(seqio.FeatureConverter):
  """PrefixLMFeatureConverter without `decoder_causal_attention`."""

  TASK_FEATURES = seqio.PrefixLMFeatureConverter.TASK_FEATURES
  MODEL_FEATURES = seqio.LMFeatureConverter.MODEL_FEATURES
  PACKING_FEATURE_DTYPES = seqio.PrefixLMFeatureConverter.PACKING_FEATURE_DTYPES

  def __init__(self, prefix_lm: seqio.PrefixLMFeatureConverter):
    self._prefix_lm = prefix_lm
    super().__init__(pack=prefix_lm.pack, bos_id=prefix_lm.bos_id)

  def _convert_features(self, ds, task_feature_lengths):
    ds = self._prefix_lm(ds, task_feature_lengths)
    return ds.map(lambda x: {k: v for k, v in x.items()
                             if k != "decoder_causal_attention"})

  def get_model_feature_lengths(self, task_feature_lengths):
    lengths = dict(self._prefix_lm.get_model_feature_lengths(
        task_feature_lengths))
    lengths.pop("decoder_causal_attention")
    return lengths


def output_features(
    vocabulary: Optional[seqio.Vocabulary] = None,
) -> dict[str, seqio.Feature]:
  """The prompt without EOS, the answer with it."""
  vocabulary = vocabulary or vocab.LAZY_VOCABULARY
  return {
      "inputs": seqio.Feature(vocabulary=vocabulary, add_eos=False),
      "targets": seqio.Feature(vocabulary=vocabulary, add_eos=True),
  }


@dataclasses.dataclass(frozen=True)
class PromptTemplate:
  """A prompt with `{field}` slots filled from the raw example's features."""
  text: str

  @property
  def fields(self) -> tuple[str, ...]:
    return tuple(name for _, name, _, _ in string.Formatter().parse(self.text)
                 if name is not None)

  def format(self, fields: Mapping[str, str]) -> str:
    """The prompt of one example's text fields, as `render` builds it."""
    missing = [f for f in self.fields if f not in fields]
    if missing:
      raise errors.ConfigError(
          f"prompt template {self.text!r} needs field(s) {missing}; got "
          f"{sorted(fields)}")
    return self.text.format(**{f: fields[f] for f in self.fields})

  def render(self, features: Mapping[str, tf.Tensor]) -> tf.Tensor:
    missing = [f for f in self.fields if f not in features]
    if missing:
      raise errors.DataError(
          f"prompt template {self.text!r} needs feature(s) {missing}; the"
          f" examples have {sorted(features)}")
    pieces = []
    for literal, name, _, _ in string.Formatter().parse(self.text):
      if literal:
        pieces.append(tf.constant(literal))
      if name is not None:
        pieces.append(features[name])
    return tf.strings.join(pieces)


# The task vectors' prompts (docs/decoder_only.md shows them rendered).
PROMPTS = {
    "xlsum": PromptTemplate(
        "Summarize the article in one sentence.\n\nArticle: {text}\n\n"
        "Summary:"),
    "tydiqa_goldp": PromptTemplate(
        "Answer the question with words from the passage.\n\n"
        "Passage: {context}\n\nQuestion: {question}\n\nAnswer:"),
}


def prefix_lm(
    dataset: tf.data.Dataset,
    sequence_length: Mapping[str, Optional[int]],
    output_features: Mapping[str, seqio.Feature],
    key: str = "targets",
    max_chunk_tokens: int = preprocessors.MAX_CHUNK_TOKENS,
) -> tf.data.Dataset:
  """Prefix-LM examples that fill a decoder-only model's whole sequence.

  As `lta.data.preprocessors.prefix_lm` (one random chunk per document, cut
  into consecutive segments, each split at a random point), except that a
  segment is as long as inputs and targets together, and the split point k
  is uniform over the points that fit both: inputs k <= its budget, targets
  n - k <= its budget (n - k >= 1 always).
  """
  inputs_budget = preprocessors.token_budget(
      "inputs", sequence_length, output_features)
  targets_budget = preprocessors.token_budget(
      "targets", sequence_length, output_features)
  dataset = preprocessors.select_random_chunk(
      dataset, key=key, max_tokens=max_chunk_tokens)
  dataset = preprocessors.split_into_segments(
      dataset, key=key, segment_tokens=inputs_budget + targets_budget)
  return _split_within_budgets(dataset, key=key, inputs_budget=inputs_budget,  # pylint: disable=unexpected-keyword-arg
                               targets_budget=targets_budget)


@seqio.map_over_dataset(num_seeds=1)
def _split_within_budgets(features, seed, *, key: str, inputs_budget: int,
                          targets_budget: int):
  tokens = features[key]
  n = tf.size(tokens)
  low = tf.maximum(tf.minimum(1, n - 1), n - targets_budget)
  high = tf.minimum(tf.maximum(n - 1, low), inputs_budget)
  k = tf.random.stateless_uniform(
      [], seed=seed, minval=low, maxval=high + 1, dtype=tf.int32)
  return {"inputs": tokens[:k], "targets": tokens[k:]}
