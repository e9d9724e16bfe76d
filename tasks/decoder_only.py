"""The same data as prompt -> answer tasks for decoder-only models.

Same sources, splits, metrics and TFDS names as the encoder-decoder tasks;
only the examples differ (`lta.data.decoder_only`): the prompt has no EOS,
and the model reads prompt and answer as one sequence.

  mc4_decoder_prefix_lm.<lang>       language vectors: prefix LM on mC4
  xlsum_prompt.<lang>                task vectors: the XL-Sum prompt
  xlsum_prompt_eval.<lang>           (validation and test only)
  tydiqa_goldp_prompt.<lang>         task vectors: the TyDi QA prompt
  tydiqa_goldp_prompt_dev.<lang>     (validation only)
Mixtures: xlsum_prompt_zeroshot, tydiqa_goldp_prompt_zeroshot (English
training, the zero-shot languages for evaluation, as their mT5 twins).
"""

import functools

import seqio

from lta.data import decoder_only
from lta.languages.related import XLSUM_UNSEEN

from . import mc4
from . import tydiqa
from . import xlsum


def lm_task_name(lang: str) -> str:
  return f"mc4_decoder_prefix_lm.{lang.replace('-', '_')}"


def xlsum_task_name(lang: str) -> str:
  return f"xlsum_prompt.{lang}"


def xlsum_eval_task_name(lang: str) -> str:
  return f"xlsum_prompt_eval.{lang}"


def tydiqa_task_name(lang: str) -> str:
  return f"tydiqa_goldp_prompt.{lang}"


def tydiqa_dev_task_name(lang: str) -> str:
  return f"tydiqa_goldp_prompt_dev.{lang}"


@seqio.map_over_dataset
def xlsum_prompt(x):
  return {"inputs": decoder_only.PROMPTS["xlsum"].render(x),
          "targets": x["summary"], "id": x["id"]}


@seqio.map_over_dataset
def tydiqa_prompt(x):
  return {"inputs": decoder_only.PROMPTS["tydiqa_goldp"].render(x),
          "targets": x["answers"]["text"][0], "id": x["id"],
          "answers": x["answers"]["text"]}


_TEXT_TO_TEXT = (seqio.preprocessors.tokenize, seqio.CacheDatasetPlaceholder(),
                 seqio.preprocessors.append_eos_after_trim)


def _add_xlsum(name: str, lang: str, splits) -> None:
  seqio.TaskRegistry.add(
      name,
      source=seqio.TfdsDataSource(
          tfds_name=f"xlsum/{lang}:{xlsum.TFDS_VERSION}", splits=splits),
      preprocessors=[xlsum_prompt, *_TEXT_TO_TEXT],
      output_features=decoder_only.output_features(),
      metric_fns=[functools.partial(xlsum.rouge, lang=lang)])


def _add_tydiqa(name: str, lang: str, splits) -> None:
  seqio.TaskRegistry.add(
      name,
      source=seqio.TfdsDataSource(tfds_name=tydiqa.TFDS_NAME, splits=splits),
      preprocessors=[functools.partial(tydiqa.filter_language, lang=lang),
                     tydiqa_prompt, *_TEXT_TO_TEXT],
      output_features=decoder_only.output_features(),
      postprocess_fn=tydiqa.qa_postprocess, metric_fns=[tydiqa.squad])


for _lang in mc4.MC4_LANGS:
  seqio.TaskRegistry.add(
      lm_task_name(_lang),
      source=seqio.get_mixture_or_task(mc4.task_name(_lang)).source,
      preprocessors=[
          functools.partial(seqio.preprocessors.rekey,
                            key_map={"targets": "text"}),
          seqio.preprocessors.tokenize,
          seqio.CacheDatasetPlaceholder(),
          decoder_only.prefix_lm,
          seqio.preprocessors.append_eos_after_trim,
      ],
      output_features=decoder_only.output_features(), metric_fns=[])

for _lang in xlsum.XLSUM_LANGS:
  _add_xlsum(xlsum_task_name(_lang), _lang, xlsum.SPLITS)
  _add_xlsum(xlsum_eval_task_name(_lang), _lang, ("validation", "test"))

for _lang in tydiqa.TYDIQA_LANGS:
  _add_tydiqa(tydiqa_task_name(_lang), _lang, ("train", "validation"))
  _add_tydiqa(tydiqa_dev_task_name(_lang), _lang, ("validation",))

seqio.MixtureRegistry.add(
    "xlsum_prompt_zeroshot",
    [xlsum_task_name("en")] + [xlsum_eval_task_name(l) for l in XLSUM_UNSEEN],
    default_rate=1.0)
seqio.MixtureRegistry.add(
    "tydiqa_goldp_prompt_zeroshot",
    [tydiqa_task_name("en")] + [tydiqa_dev_task_name(l)
                                for l in tydiqa.TYDIQA_LANGS if l != "en"],
    default_rate=1.0)
