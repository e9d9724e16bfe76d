"""Evaluation metrics of the paper and the companion study.

* `rouge_spm`: ROUGE-1/2/L over SentencePiece pieces of the mT5 vocabulary,
  the paper's "ROUGE-2 spm" for non-English XLSum. `rouge_plain`: ROUGE with
  rouge-score's default tokenizer and Porter stemming, for English.
* `squad_f1_em`: SQuAD v1.1 F1 and exact match, used for TyDi QA GoldP.
* `make_language_fidelity_metric`: share of outputs in the target language
  (`lta.eval.langid.language_fidelity`).
* `bootstrap_ci`: percentile bootstrap over per-example scores.

All scores are in [0, 100] and are means over examples. (XLSum's and T5's
scripts report the `mid` of rouge-score's BootstrapAggregator, which is a
resampled estimate of this mean; the mean is deterministic.) The
`make_*_metric` factories build seqio metric fns, `fn(targets, predictions)`.
"""

from __future__ import annotations

import collections
import functools
import os
import re
import string
import unicodedata
from typing import Callable, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from rouge_score import rouge_scorer
from rouge_score import tokenizers as rouge_tokenizers
import sentencepiece as spm

from lta.eval import langid

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
Target = Union[str, Sequence[str]]  # one reference or several
MetricFn = Callable[[Sequence, Sequence[str]], Mapping[str, float]]


def _check_pairs(targets: Sequence, predictions: Sequence[str]):
  if len(targets) != len(predictions):
    raise ValueError(f"{len(targets)} targets but {len(predictions)} "
                     "predictions; they must pair up")
  if not len(predictions):
    raise ValueError("no examples to score")
  for i, p in enumerate(predictions):
    if not isinstance(p, str):
      raise TypeError(f"prediction {i} is {type(p).__name__}, not str")


def _references(target: Target, index: int) -> list[str]:
  refs = [target] if isinstance(target, str) else list(target)
  if not refs or not all(isinstance(r, str) for r in refs):
    raise TypeError(f"target {index} must be a string or a non-empty list of "
                    f"strings, got {target!r}")
  return refs


def _means(per_example: Mapping[str, np.ndarray]) -> dict[str, float]:
  return {k: float(np.mean(v)) for k, v in per_example.items()}


# ----------------------------------------------------------------------------
# ROUGE.
# ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def load_sentencepiece(model_path: str) -> spm.SentencePieceProcessor:
  """Loads (once per path) a SentencePiece model, local or gs://."""
  if "://" in model_path:
    import tensorflow as tf  # only remote paths need gfile
    with tf.io.gfile.GFile(model_path, "rb") as f:
      return spm.SentencePieceProcessor(model_proto=f.read())
  if not os.path.isfile(model_path):
    raise FileNotFoundError(f"SentencePiece model not found: {model_path}")
  return spm.SentencePieceProcessor(model_file=model_path)


class SentencePieceTokenizer(rouge_tokenizers.Tokenizer):
  """rouge-score tokenizer yielding SentencePiece pieces.

  Text is scored verbatim: no lowercasing (the mT5 vocabulary is cased), no
  stemming, and the word-boundary marker stays part of a piece, so `▁abc`
  and `abc` differ as they do for the model.
  """

  def __init__(self, model_path: str):
    self._sp = load_sentencepiece(os.fspath(model_path))

  def tokenize(self, text: str) -> list[str]:
    return self._sp.encode(text, out_type=str)


@functools.lru_cache(maxsize=16)
def _scorer(rouge_types: Tuple[str, ...],
            tokenizer_key: Tuple[str, object]) -> rouge_scorer.RougeScorer:
  kind, value = tokenizer_key
  if kind == "spm":
    return rouge_scorer.RougeScorer(list(rouge_types),
                                    tokenizer=SentencePieceTokenizer(value))
  return rouge_scorer.RougeScorer(list(rouge_types), use_stemmer=value)


def _rouge_per_example(targets, predictions, rouge_types, tokenizer_key):
  _check_pairs(targets, predictions)
  scorer = _scorer(tuple(rouge_types), tokenizer_key)
  scores = {k: np.zeros(len(predictions)) for k in rouge_types}
  for i, (target, prediction) in enumerate(zip(targets, predictions)):
    # Several references: rouge-score keeps the best-matching one per type.
    result = scorer.score_multi(_references(target, i), prediction)
    for k in rouge_types:
      scores[k][i] = 100.0 * result[k].fmeasure
  return scores


def rouge_spm_per_example(targets: Sequence[Target],
                          predictions: Sequence[str],
                          spm_model_path: str,
                          rouge_types: Sequence[str] = ROUGE_TYPES
                          ) -> dict[str, np.ndarray]:
  """F-measure x100 of each example over SentencePiece pieces."""
  return _rouge_per_example(targets, predictions, rouge_types,
                            ("spm", os.fspath(spm_model_path)))


def rouge_spm(targets: Sequence[Target], predictions: Sequence[str],
              spm_model_path: str,
              rouge_types: Sequence[str] = ROUGE_TYPES) -> dict[str, float]:
  """Mean SentencePiece ROUGE F-measure x100 ("ROUGE-2 spm" is `rouge2`)."""
  return _means(rouge_spm_per_example(targets, predictions, spm_model_path,
                                      rouge_types))


def rouge_plain_per_example(targets: Sequence[Target],
                            predictions: Sequence[str],
                            use_stemmer: bool = True,
                            rouge_types: Sequence[str] = ROUGE_TYPES
                            ) -> dict[str, np.ndarray]:
  return _rouge_per_example(targets, predictions, rouge_types,
                            ("default", bool(use_stemmer)))


def rouge_plain(targets: Sequence[Target], predictions: Sequence[str],
                use_stemmer: bool = True,
                rouge_types: Sequence[str] = ROUGE_TYPES) -> dict[str, float]:
  """rouge-score's default tokenizer (lowercased [a-z0-9] words; drops every
  other script), Porter-stemmed as XLSum does for English."""
  return _means(rouge_plain_per_example(targets, predictions, use_stemmer,
                                        rouge_types))


# ----------------------------------------------------------------------------
# SQuAD F1 / exact match.
# ----------------------------------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_ASCII_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str, unicode_punctuation: bool = False) -> str:
  """SQuAD v1.1 normalisation: lowercase, drop punctuation, drop the English
  articles a/an/the, collapse whitespace.

  The official script (and T5/mT5's TyDi QA metric) removes ASCII
  punctuation only; `unicode_punctuation=True` also removes every Unicode
  punctuation character (danda, CJK and Arabic punctuation, ...).
  """
  text = text.lower()
  if unicode_punctuation:
    text = "".join(ch for ch in text
                    if not unicodedata.category(ch).startswith("P")
                    and ch not in _ASCII_PUNCTUATION)
  else:
    text = "".join(ch for ch in text if ch not in _ASCII_PUNCTUATION)
  text = _ARTICLES.sub(" ", text)
  return " ".join(text.split())


def _token_f1(prediction_tokens: list[str], target_tokens: list[str]) -> float:
  common = collections.Counter(prediction_tokens) & collections.Counter(
      target_tokens)
  overlap = sum(common.values())
  if overlap == 0:
    return 0.0
  precision = overlap / len(prediction_tokens)
  recall = overlap / len(target_tokens)
  return 2 * precision * recall / (precision + recall)


def squad_per_example(targets: Sequence[Target], predictions: Sequence[str],
                      unicode_punctuation: bool = False
                      ) -> dict[str, np.ndarray]:
  """Max over reference answers of token F1 and exact match, x100.

  Tokens are the whitespace-separated words of the normalised text, as in
  SQuAD and mT5's TyDi QA GoldP; every TyDi QA language separates words with
  spaces. (For unsegmented scripts such as Chinese, Japanese or Thai, F1
  degenerates towards exact match.) As in SQuAD v1.1, an empty normalised
  prediction has F1 0 even against an empty answer, whose EM is 1.
  """
  _check_pairs(targets, predictions)
  f1 = np.zeros(len(predictions))
  em = np.zeros(len(predictions))
  for i, (target, prediction) in enumerate(zip(targets, predictions)):
    pred = normalize_answer(prediction, unicode_punctuation)
    refs = [normalize_answer(r, unicode_punctuation)
            for r in _references(target, i)]
    em[i] = 100.0 * max(float(pred == r) for r in refs)
    f1[i] = 100.0 * max(_token_f1(pred.split(), r.split()) for r in refs)
  return {"f1": f1, "em": em}


def squad_f1_em(targets: Sequence[Target], predictions: Sequence[str],
                unicode_punctuation: bool = False) -> dict[str, float]:
  """Mean SQuAD F1 and exact match x100 (TyDi QA GoldP)."""
  return _means(squad_per_example(targets, predictions, unicode_punctuation))


# ----------------------------------------------------------------------------
# Bootstrap confidence intervals.
# ----------------------------------------------------------------------------


def _percentile_ci(samples: np.ndarray, confidence: float
                   ) -> Tuple[float, float]:
  tail = 100.0 * (1.0 - confidence) / 2.0
  low, high = np.percentile(samples, [tail, 100.0 - tail])
  return float(low), float(high)


def _check_bootstrap(num_samples: int, confidence: float):
  if num_samples <= 0:
    raise ValueError(f"num_samples must be positive, got {num_samples}")
  if not 0.0 < confidence < 1.0:
    raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def bootstrap_ci(per_example_scores: Sequence[float],
                 num_samples: int = 1000,
                 confidence: float = 0.95,
                 seed: int = 0) -> Tuple[float, float, float]:
  """(mean, low, high): percentile bootstrap CI of the mean of the scores.

  Every metric here is a mean over examples, so resampling the per-example
  scores (`*_per_example`) is exact and cheap.
  """
  _check_bootstrap(num_samples, confidence)
  scores = np.asarray(per_example_scores, dtype=np.float64)
  if scores.ndim != 1 or not scores.size:
    raise ValueError(f"per_example_scores must be a non-empty 1-D sequence, "
                     f"got shape {scores.shape}")
  rng = np.random.default_rng(seed)
  idx = rng.integers(0, scores.size, size=(num_samples, scores.size))
  low, high = _percentile_ci(scores[idx].mean(axis=1), confidence)
  return float(scores.mean()), low, high


def bootstrap_metric_ci(metric_fn: Callable[[Sequence, Sequence[str]], float],
                        targets: Sequence, predictions: Sequence[str],
                        num_samples: int = 1000, confidence: float = 0.95,
                        seed: int = 0) -> Tuple[float, float, float]:
  """(value, low, high) for any corpus-level `metric_fn(targets, preds)`.

  Resamples examples and recomputes the metric; use it for metrics that are
  not means over examples. `value` is the metric on the full data.
  """
  _check_bootstrap(num_samples, confidence)
  _check_pairs(targets, predictions)
  rng = np.random.default_rng(seed)
  n = len(predictions)
  samples = np.empty(num_samples)
  for s in range(num_samples):
    idx = rng.integers(0, n, size=n)
    samples[s] = metric_fn([targets[i] for i in idx],
                           [predictions[i] for i in idx])
  low, high = _percentile_ci(samples, confidence)
  return float(metric_fn(targets, predictions)), low, high


# ----------------------------------------------------------------------------
# seqio metric fns: fn(targets, predictions) -> {name: value}.
# ----------------------------------------------------------------------------


def make_rouge_spm_metric(spm_path_provider: Union[str, Callable[[], str]],
                          rouge_types: Sequence[str] = ROUGE_TYPES
                          ) -> MetricFn:
  """seqio metric fn for SentencePiece ROUGE.

  `spm_path_provider` is a path, or a callable returning one, so a task can
  register the metric before the vocabulary path is known.
  """
  def rouge_spm_metric(targets, predictions):
    path = spm_path_provider() if callable(spm_path_provider) else (
        spm_path_provider)
    return rouge_spm(targets, predictions, path, rouge_types)
  return rouge_spm_metric


def make_rouge_plain_metric(use_stemmer: bool = True,
                            rouge_types: Sequence[str] = ROUGE_TYPES
                            ) -> MetricFn:
  def rouge_plain_metric(targets, predictions):
    return rouge_plain(targets, predictions, use_stemmer, rouge_types)
  return rouge_plain_metric


def squad_metric(targets: Sequence[Target],
                 predictions: Sequence[str]) -> dict[str, float]:
  """seqio metric fn: SQuAD v1.1 F1 and EM (targets: answer lists)."""
  return squad_f1_em(targets, predictions)


def make_language_fidelity_metric(
    target_lang: str,
    identifier: Optional[langid.LanguageIdentifier] = None) -> MetricFn:
  """seqio metric fn returning {'language_fidelity': percent}.

  identifier: fastText lid.176 when None (see `langid.language_fidelity`).
  """
  identifier = (langid.FastTextIdentifier() if identifier is None
                else identifier)
  identifier.label(target_lang)  # fail at registration, not at eval
  def language_fidelity_metric(targets, predictions):
    del targets
    return {"language_fidelity": langid.language_fidelity(
        predictions, target_lang, identifier)}
  return language_fidelity_metric
