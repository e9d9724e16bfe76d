"""XL-Sum summarization tasks: `xlsum.<lang>` for all 45 languages.

Inputs are `summarize: <article>`, targets the one-sentence summary. Scores
are ROUGE-1/2/L: plain ROUGE for English and SentencePiece-ROUGE with the
configured (mT5) vocabulary for every other language, as in the paper.

The paper's language sets are `XLSUM_SEEN` (task vectors are trained on
these) and `XLSUM_UNSEEN` (zero-shot evaluation only), defined in
`lta.languages.related`. The mixture `xlsum_seen` is the paper's
multilingual baseline.
"""

import functools
from typing import Optional

import gin
import seqio
import tensorflow as tf

from lta.data import language_codes
from lta.data import vocab
from lta.languages.related import XLSUM_SEEN, XLSUM_UNSEEN

from . import xlsum_builder

XLSUM_LANGS = tuple(xlsum_builder.XLSUM_LANGUAGES)

TFDS_VERSION = "2.0.0"
SPLITS = ("train", "validation", "test")


def task_name(lang: str) -> str:
  return f"xlsum.{lang}"


def eval_task_name(lang: str) -> str:
  return f"xlsum_eval.{lang}"


@seqio.map_over_dataset
def summarize(x):
  return {
      "inputs": tf.strings.join(["summarize: ", x["text"]]),
      "targets": x["summary"],
      "id": x["id"],
  }


def rouge(targets, predictions, *, lang: str) -> dict[str, float]:
  """ROUGE for one language, delegating to `lta.eval.metrics`."""
  # Imported on use: the metrics module pulls in rouge-score.
  from lta.eval import metrics  # pylint: disable=g-import-not-at-top

  if lang == "en":
    return metrics.rouge_plain(targets, predictions)
  return metrics.rouge_spm(targets, predictions, vocab.vocabulary_path())


@gin.configurable(module="lta_tasks")
def xlsum_mixing_rate(
    task: seqio.Task,
    maximum: Optional[int] = None,
    temperature: float = 1.0,
) -> float:
  """Examples-proportional mixing rate for XL-Sum mixtures.

  The default (no cap, temperature 1) samples every training article equally
  often, which is the same as concatenating the datasets: the paper's
  multilingual baseline. For mT5-style mixing set `maximum` (a cap on the
  examples counted per language) and/or `temperature` (e.g. 1/0.3) in gin.

  Args:
    task: the task to weigh.
    maximum: count at most this many examples per task.
    temperature: rates are (count ** (1 / temperature)).

  Returns:
    The task's unnormalised rate.
  """
  return seqio.mixing_rate_num_examples(
      task, maximum=maximum, temperature=temperature
  )


def _add_task(name: str, lang: str, splits) -> None:
  seqio.TaskRegistry.add(
      name,
      source=seqio.TfdsDataSource(
          tfds_name=f"xlsum/{lang}:{TFDS_VERSION}", splits=splits
      ),
      preprocessors=[
          summarize,
          seqio.preprocessors.tokenize,
          seqio.CacheDatasetPlaceholder(),
          functools.partial(language_codes.add_language_codes, lang=lang),
          seqio.preprocessors.append_eos_after_trim,
      ],
      output_features=vocab.output_features(),
      metric_fns=[functools.partial(rouge, lang=lang)],
  )


for _lang in XLSUM_LANGS:
  _add_task(task_name(_lang), _lang, SPLITS)
  # Validation and test only: evaluation languages inside a training mixture.
  _add_task(eval_task_name(_lang), _lang, ("validation", "test"))

seqio.MixtureRegistry.add(
    "xlsum_seen",
    [task_name(lang) for lang in XLSUM_SEEN],
    default_rate=xlsum_mixing_rate,
)

# Task-in-one-language: train on English, evaluate on the unseen languages.
seqio.MixtureRegistry.add(
    "xlsum_zeroshot",
    [task_name("en")] + [eval_task_name(lang) for lang in XLSUM_UNSEEN],
    default_rate=1.0,
)
