"""Companion-study mixtures: target-language text and multiple sources."""

import gin
import numpy as np
import pytest
import seqio

from lta.data import vocab
from lta.languages.related import XLSUM_UNSEEN
from lta_tasks import mixtures
from lta_tasks import tydiqa
from lta_tasks import xlsum
from tests.tasks.conftest import FIXTURES


def _rates(mixture):
  return {t.name: mixture.get_rate(t) for t in mixture.tasks}


def test_preregistered_target_lm_mixtures():
  for lang in XLSUM_UNSEEN:
    mixture = seqio.get_mixture_or_task(f"xlsum_target_lm.en.{lang}")
    assert _rates(mixture) == {"xlsum.en": 0.5, f"mc4_prefix_lm.{lang}": 0.5}
  for lang in tydiqa.TYDIQA_LANGS:
    if lang != "en":
      mixture = seqio.get_mixture_or_task(f"tydiqa_goldp_target_lm.en.{lang}")
      assert set(_rates(mixture)) == {"tydiqa_goldp.en", f"mc4_prefix_lm.{lang}"}


def test_register_target_lm_mixture_splits_the_lm_share():
  name = mixtures.register_target_lm_mixture("xlsum", "ru", ["uk", "fa"], 0.4)
  assert name == "xlsum_target_lm.ru.uk_fa"
  rates = _rates(seqio.get_mixture_or_task(name))
  assert rates == pytest.approx({"xlsum.ru": 0.6, "mc4_prefix_lm.uk": 0.2,
                                 "mc4_prefix_lm.fa": 0.2})


def test_registering_again_replaces_the_mixture():
  name = mixtures.register_target_lm_mixture("xlsum", "en", ["mr"], 0.2)
  assert name == "xlsum_target_lm.en.mr"
  assert _rates(seqio.get_mixture_or_task(name))["xlsum.en"] == pytest.approx(0.8)
  mixtures.register_target_lm_mixture("xlsum", "en", ["mr"])
  assert _rates(seqio.get_mixture_or_task(name))["xlsum.en"] == 0.5


def test_register_multi_source_mixture():
  name = mixtures.register_multi_source_mixture("tydiqa_goldp", ["en", "fi", "id"])
  assert name == "tydiqa_goldp_multi.en_fi_id"
  assert _rates(seqio.get_mixture_or_task(name)) == {
      "tydiqa_goldp.en": 1.0, "tydiqa_goldp.fi": 1.0, "tydiqa_goldp.id": 1.0}
  name = mixtures.register_multi_source_mixture("xlsum", ["ar", "tr"])
  mixture = seqio.get_mixture_or_task(name)
  assert {t.name for t in mixture.tasks} == {"xlsum.ar", "xlsum.tr"}


@pytest.mark.parametrize("call, message", [
    (lambda: mixtures.register_target_lm_mixture("xnli", "en", ["fr"]), "unknown task family"),
    (lambda: mixtures.register_target_lm_mixture("xlsum", "xx", ["fr"]), "no task 'xlsum.xx'"),
    (lambda: mixtures.register_target_lm_mixture("xlsum", "en", ["qq"]), "mC4 prefix-LM task for language 'qq'"),
    (lambda: mixtures.register_target_lm_mixture("xlsum", "en", []), "at least one target"),
    (lambda: mixtures.register_target_lm_mixture("xlsum", "en", ["fr"], 1.0), "lm_fraction"),
    (lambda: mixtures.register_multi_source_mixture("xlsum", ["en"]), "2\\+ languages"),
])
def test_bad_requests_are_rejected(call, message):
  with pytest.raises(ValueError, match=message):
    call()


def test_target_lm_mixture_yields_task_and_lm_examples(tfds_dir):
  with gin.unlock_config():
    gin.bind_parameter("lta_tasks.mc4_local_dir.path", str(FIXTURES / "mc4"))
  name = mixtures.register_target_lm_mixture("xlsum", "en", ["ru"], 0.5)
  assert name == "xlsum_target_lm.en.ru"  # Pre-registration is only for unseen.
  mixture = seqio.get_mixture_or_task(name)
  ds = mixture.get_dataset({"inputs": 64, "targets": 16}, split="train",
                           shuffle=False, seed=0, num_epochs=None)
  examples = [ex for _, ex in zip(range(40), ds.as_numpy_iterator())]
  prompt = vocab.get_vocabulary().encode("summarize:")
  summarize = [ex for ex in examples
               if ex["inputs"][:len(prompt)].tolist() == prompt]
  assert 0 < len(summarize) < len(examples)
  assert all(np.all(ex["targets"][-1:] == 1) for ex in examples)
