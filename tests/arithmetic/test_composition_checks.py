"""What `compose` refuses: λ out of range, mislabelled inputs, overflow.

The λ and mislabelling refusals run on mT5 and decoder-only adapter trees
(the `family` fixture)."""

import math

import numpy as np
import pytest

from lta.arithmetic import compositions as arithmetic
from lta.arithmetic import compat
from lta.errors import CheckpointError, ConfigError, LtaError
from lta.adapters.tree import flatten_tree
from tests.arithmetic.random_adapters import lora_config, make_adapter


def _vectors(seed=0, family="mt5"):
  rng = np.random.default_rng(seed)
  tasks = {l: make_adapter(rng, lora_config(), "xlsum", l, family=family)
           for l in ("en", "ar")}
  langs = {l: make_adapter(rng, lora_config(), "mc4_prefix_lm", l,
                           family=family)
           for l in ("en", "ar", "pt")}
  return tasks, langs


def _compose(tasks, langs, name="lang_task_add_subtract", **kwargs):
  """(tree, manifest) of the composed adapter."""
  kwargs = {"target": "pt", "sources": "en", **kwargs}
  adapter = arithmetic.compose(name, task_vectors=tasks,
                               language_vectors=langs, **kwargs)
  return adapter.tree, adapter.manifest


def _one_line(error):
  text = str(error.value)
  assert isinstance(error.value, LtaError) and "\n" not in text
  return text


@pytest.mark.parametrize("lam", [-0.5, 1.5, 1e6])
def test_lambda_outside_unit_interval_needs_extrapolation_by_name(lam,
                                                                  family):
  tasks, langs = _vectors(family=family)
  with pytest.raises(ConfigError) as error:
    _compose(tasks, langs, lam=lam)
  text = _one_line(error)
  assert f"lam={lam!r} is outside [0, 1]" in text
  assert "allow_extrapolation=True" in text
  tree, manifest = _compose(tasks, langs, lam=lam, allow_extrapolation=True)
  assert manifest.provenance["allow_extrapolation"] is True
  assert manifest.provenance["lam"] == lam
  task_weight = [i["weight"] for i in manifest.provenance["inputs"]
                 if i["task"] == "xlsum"]
  assert task_weight == [lam]
  _, inside = _compose(tasks, langs, lam=0.5)
  assert inside.provenance["allow_extrapolation"] is False


@pytest.mark.parametrize("lam", [math.nan, math.inf, -math.inf, "0.5x"])
def test_non_finite_lambda_is_always_refused(lam):
  tasks, langs = _vectors()
  with pytest.raises(ConfigError, match=r"lam=.*(must be finite|not a "
                                        r"number)") as error:
    _compose(tasks, langs, lam=lam, allow_extrapolation=True)
  _one_line(error)


@pytest.mark.parametrize("space,output", [("factor", None),
                                          ("delta", "delta")])
@pytest.mark.parametrize("lam", [1e39, -1e39])
def test_a_composition_that_overflows_is_refused(lam, space, output):
  tasks, langs = _vectors()
  with pytest.raises(CheckpointError) as error:
    _compose(tasks, langs, lam=lam, allow_extrapolation=True, space=space,
             output=output)
  text = _one_line(error)
  assert "merging 1e+39 xlsum[en]" in text or "merging -1e+39" in text
  assert "holds non-finite values" in text


def test_lambda_check_names_the_binding():
  with pytest.raises(ConfigError, match=r"run_eval.lambdas=1.5 is outside "
                                        r".*task by 1.5 and the language by "
                                        r"-0.5; set run_eval.allow_"):
    compat.check_lambda(1.5, name="run_eval.lambdas",
                        switch="run_eval.allow_extrapolation=True")
  assert compat.check_lambda(0) == 0.0 and compat.check_lambda(1) == 1.0


def test_a_task_vector_given_as_a_language_vector_is_refused(family):
  tasks, langs = _vectors(family=family)
  with pytest.raises(compat.MislabelledAdapterError) as error:
    _compose(tasks, {**langs, "pt": make_adapter(
        np.random.default_rng(9), lora_config(), "xlsum", "pt",
        family=family)}, lam=0.5)
  text = _one_line(error)
  assert ("language vector 'pt': xlsum[pt] (manifest: task 'xlsum', "
          "language 'pt') was not trained on a language-modelling") in text
  with pytest.raises(compat.MislabelledAdapterError,
                     match=r"task vector 'en': mc4_prefix_lm\[en\] .* is a "
                           r"language vector, not a task vector"):
    _compose({"en": langs["en"]}, langs, lam=0.5)


def test_a_language_vector_under_another_language_is_refused(family):
  tasks, langs = _vectors(family=family)
  german = make_adapter(np.random.default_rng(9), lora_config(),
                        "mc4_prefix_lm", "de", family=family)
  with pytest.raises(compat.MislabelledAdapterError) as error:
    _compose(tasks, {**langs, "pt": german}, lam=0.5)
  assert _one_line(error).endswith(
      "language vector 'pt': mc4_prefix_lm[de] (manifest: task "
      "'mc4_prefix_lm', language 'de') is a 'de' language vector, given as "
      "'pt'")
  with pytest.raises(compat.MislabelledAdapterError,
                     match="is a 'ar' task vector, given as 'en'"):
    _compose({"en": tasks["ar"]}, langs, lam=0.5)


def test_task_vectors_of_different_tasks_are_refused():
  tasks, langs = _vectors()
  tasks["ar"] = make_adapter(np.random.default_rng(9), lora_config(),
                             "tydiqa_goldp", "ar")
  with pytest.raises(compat.MislabelledAdapterError,
                     match=r"different tasks: \{'ar': 'tydiqa_goldp', "
                           r"'en': 'xlsum'\}"):
    _compose(tasks, langs, name="task_only_add_all", sources=None)


def test_unlabelled_inputs_need_the_escape_hatch_by_name():
  tasks, langs = _vectors()
  old = make_adapter(np.random.default_rng(9), lora_config(),
                     "mc4_prefix_lm", "", name="old_lang_pt")
  with pytest.raises(compat.MislabelledAdapterError) as error:
    _compose(tasks, {**langs, "pt": old}, lam=0.5)
  text = _one_line(error)
  assert "language vector 'pt': old_lang_pt" in text
  assert "does not say which language it was trained on" in text
  assert "allow_unlabelled=True" in text
  tree, manifest = _compose(tasks, {**langs, "pt": old}, lam=0.5,
                            allow_unlabelled=True)
  assert manifest.provenance["unlabelled_inputs"] == ["old_lang_pt"]
  _, labelled = _compose(tasks, langs, lam=0.5)
  assert "unlabelled_inputs" not in labelled.provenance
  # The hatch only covers missing labels, never contradicting ones.
  german = make_adapter(np.random.default_rng(9), lora_config(),
                        "mc4_prefix_lm", "de")
  with pytest.raises(compat.MislabelledAdapterError, match="given as 'pt'"):
    _compose(tasks, {**langs, "pt": german}, lam=0.5, allow_unlabelled=True)


def test_region_tags_match_whatever_the_separator():
  rng = np.random.default_rng(4)
  tasks = {"en": make_adapter(rng, lora_config(), "xlsum", "en")}
  langs = {"en": make_adapter(rng, lora_config(), "mc4_prefix_lm", "en"),
           "zh-CN": make_adapter(rng, lora_config(), "mc4_prefix_lm",
                                 "zh_cn")}
  composed = arithmetic.compose(
      "lang_task_add", task_vectors=tasks, language_vectors=langs,
      target="zh-CN", sources="en", lam=0.5)
  tree, manifest = composed.tree, composed.manifest
  assert manifest.language == "zh-CN"
  assert all(np.isfinite(v).all() for v in flatten_tree(tree).values())
