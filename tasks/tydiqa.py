"""TyDi QA GoldP as text-to-text: `tydiqa_goldp.<lang>` for 9 languages.

Inputs are `question: <question> context: <passage>`, targets the first gold
answer; scores are SQuAD F1/EM against all gold answers. Read from TFDS
`tydi_qa/goldp:3.0.0` (`lta prepare-data --tydiqa`, see `tydiqa_builder`),
whose `train` and `validation` splits mix all languages; each task keeps one language by the example id, which starts
with the language's name (`finnish--7633091408814529542-0`).

The paper trains on English and evaluates the others zero-shot:
mixture `tydiqa_goldp_zeroshot` = `tydiqa_goldp.en` plus validation-only
`tydiqa_goldp_dev.<lang>` for the rest.
"""

import functools

import seqio
import tensorflow as tf
from tensorflow_datasets.question_answering import tydi_qa

from lta import errors
from lta.data import language_codes
from lta.data import vocab

TFDS_NAME = "tydi_qa/goldp:3.0.0"
# ISO code -> the language name that prefixes example ids.
TYDIQA_LANGUAGES = dict(tydi_qa.LANGUAGES)
TYDIQA_LANGS = tuple(TYDIQA_LANGUAGES)


def task_name(lang: str) -> str:
  return f"tydiqa_goldp.{lang}"


def dev_task_name(lang: str) -> str:
  return f"tydiqa_goldp_dev.{lang}"


def filter_language(dataset: tf.data.Dataset, lang: str) -> tf.data.Dataset:
  """Keeps the examples of `lang` (an ISO code in TYDIQA_LANGUAGES)."""
  prefix = TYDIQA_LANGUAGES[lang] + "-"
  filtered = dataset.filter(lambda x: tf.strings.regex_full_match(
      x["id"], prefix + ".*"))
  # An empty split is an error, never a silent empty dataset. Pipelines are
  # built eagerly, so this reads only up to the first match.
  if next(iter(filtered.take(1)), None) is None:
    raise errors.DataError(
        f"TyDi QA GoldP split has no {lang!r} examples (no id starts with"
        f" {prefix!r}).")
  return filtered


@seqio.map_over_dataset
def question_context(x):
  """SQuAD-like example -> text-to-text, keeping all answers for scoring."""
  return {
      "inputs": tf.strings.join(
          ["question: ", x["question"], " context: ", x["context"]]
      ),
      "targets": x["answers"]["text"][0],
      "id": x["id"],
      "answers": x["answers"]["text"],
  }


def qa_postprocess(output, example=None, is_target=False):
  """Targets become every gold answer; predictions are stripped strings."""
  if is_target:
    return [
        a.decode("utf-8") if isinstance(a, bytes) else str(a)
        for a in example["answers"]
    ]
  return output.strip()


def squad(targets, predictions) -> dict[str, float]:
  """SQuAD F1/EM, delegating to `lta.eval.metrics`."""
  from lta.eval import metrics  # pylint: disable=g-import-not-at-top

  return metrics.squad_f1_em(targets, predictions)


def _add_task(name: str, lang: str, splits) -> None:
  seqio.TaskRegistry.add(
      name,
      source=seqio.TfdsDataSource(tfds_name=TFDS_NAME, splits=splits),
      preprocessors=[
          functools.partial(filter_language, lang=lang),
          question_context,
          seqio.preprocessors.tokenize,
          seqio.CacheDatasetPlaceholder(),
          functools.partial(language_codes.add_language_codes, lang=lang),
          seqio.preprocessors.append_eos_after_trim,
      ],
      output_features=vocab.output_features(),
      postprocess_fn=qa_postprocess,
      metric_fns=[squad],
  )


for _lang in TYDIQA_LANGS:
  _add_task(task_name(_lang), _lang, ("train", "validation"))
  _add_task(dev_task_name(_lang), _lang, ("validation",))

seqio.MixtureRegistry.add(
    "tydiqa_goldp_zeroshot",
    [task_name("en")]
    + [dev_task_name(lang) for lang in TYDIQA_LANGS if lang != "en"],
    default_rate=1.0,
)
