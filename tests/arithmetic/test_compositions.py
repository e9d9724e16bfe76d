"""Each named composition equals the paper's equation written out in numpy,
on mT5 and decoder-only adapter trees (the `family` fixture)."""

import numpy as np
import pytest

from lta.arithmetic import compositions as arithmetic
from lta.arithmetic import merge_methods
from lta.errors import ConfigError
from lta.languages import related
from lta.adapters.tree import flatten_tree
from tests.arithmetic.random_adapters import (krona_config, lora_config,
                                             make_adapter)

SEEN = ["ar", "bn", "en", "ja", "ru"]
LAM = 0.7


def _vectors(config, seed=0, family="mt5"):
  rng = np.random.default_rng(seed)
  tasks = {l: make_adapter(rng, config, "xlsum", l, family=family)
           for l in SEEN}
  langs = {l: make_adapter(rng, config, "mc4_prefix_lm", l, family=family)
           for l in SEEN + ["pt"]}
  return tasks, langs


def _leaves(adapter):
  return {p: np.asarray(v, np.float64)
          for p, v in flatten_tree(adapter.tree).items()}


def _expected(name, tasks, langs, target, sources):
  """The paper's equations (section 2), leaf by leaf."""
  t = {l: _leaves(a) for l, a in tasks.items()}
  g = {l: _leaves(a) for l, a in langs.items()}
  mean = lambda trees, p: sum(tr[p] for tr in trees) / len(trees)
  out = {}
  for p in t[SEEN[0]]:
    if name == "task_only":
      out[p] = t[sources[0]][p]
    elif name == "lang_task_add":                                  # Eq. 1
      out[p] = LAM * t[sources[0]][p] + (1 - LAM) * g[target][p]
    elif name == "lang_task_add_subtract":                         # Eq. 2
      out[p] = (LAM * t[sources[0]][p] +
                (1 - LAM) * (g[target][p] - g[sources[0]][p]))
    elif name in ("task_only_add_all", "task_only_add_related"):   # Eq. 3
      out[p] = mean([t[s] for s in sources], p)
    elif name == "lang_task_add_subtract_related":                 # Eq. 4
      out[p] = (LAM * mean([t[s] for s in sources], p) +
                (1 - LAM) * (g[target][p] - mean([g[s] for s in sources], p)))
  return out


CASES = [("task_only", ["en"]), ("lang_task_add", ["en"]),
         ("lang_task_add_subtract", ["en"]), ("task_only_add_all", SEEN),
         ("task_only_add_related", ["ar", "ru"]),
         ("lang_task_add_subtract_related", ["ar", "bn", "ru"])]


@pytest.mark.parametrize("config", [lora_config(), krona_config(),
                                    krona_config(kron_b_rank=2)],
                         ids=["lora", "krona", "lokr"])
@pytest.mark.parametrize("name,sources", CASES)
def test_factor_space_matches_equation(name, sources, config, family):
  tasks, langs = _vectors(config, family=family)
  composed = arithmetic.compose(
      name, task_vectors=tasks, language_vectors=langs, target="pt",
      sources=sources, lam=LAM, space="factor")
  tree, manifest = composed.tree, composed.manifest
  expected = _expected(name, tasks, langs, "pt", sources)
  got = flatten_tree(tree)
  assert set(got) == set(expected)
  for p in expected:
    np.testing.assert_allclose(got[p], expected[p], rtol=1e-5, atol=1e-5)
  assert manifest.provenance["composition"] == name
  assert manifest.language == "pt" and manifest.task == "xlsum"


def _expected_delta(name, tasks, langs, target, sources, config):
  """The same equations on dW = scale * A @ B (or scale * kron(A, B))."""
  def dw(adapter):
    return {m: merge_methods.module_delta(leaves, config, np.float64)
            for m, leaves in merge_methods.modules(adapter.tree).items()}
  t = {l: dw(a) for l, a in tasks.items()}
  g = {l: dw(a) for l, a in langs.items()}
  out = {}
  for m in t[SEEN[0]]:
    mt = np.mean([t[s][m] for s in sources], axis=0)
    mg = np.mean([g[s][m] for s in sources], axis=0)
    out[m] = {
        "task_only": mt,
        "lang_task_add": LAM * mt + (1 - LAM) * g[target][m],
        "lang_task_add_subtract": LAM * mt + (1 - LAM) * (g[target][m] - mg),
        "task_only_add_all": mt,
        "task_only_add_related": mt,
        "lang_task_add_subtract_related":
            LAM * mt + (1 - LAM) * (g[target][m] - mg),
    }[name]
  return out


@pytest.mark.parametrize("config", [lora_config(), krona_config()],
                         ids=["lora", "krona"])
@pytest.mark.parametrize("name,sources", CASES)
def test_delta_space_matches_equation(name, sources, config, family):
  tasks, langs = _vectors(config, seed=1, family=family)
  composed = arithmetic.compose(
      name, task_vectors=tasks, language_vectors=langs, target="pt",
      sources=sources, lam=LAM, space="delta", output="delta")
  tree, manifest = composed.tree, composed.manifest
  expected = _expected_delta(name, tasks, langs, "pt", sources, config)
  got = merge_methods.modules(tree)
  assert set(got) == set(expected)
  for m in expected:
    np.testing.assert_allclose(got[m]["delta"], expected[m], rtol=1e-4,
                               atol=1e-4)
  assert manifest.provenance["space"] == "delta"


def test_delta_space_lora_output_is_exact_when_rank_suffices():
  tasks, langs = _vectors(lora_config(rank=2), seed=2)
  sources = ["ar", "bn"]
  # Eq. 4 with 2 sources: 2 task + 1 + 2 language terms, rank <= 5 * 2.
  composed = arithmetic.compose(
      "lang_task_add_subtract_related", task_vectors=tasks,
      language_vectors=langs, target="pt", sources=sources, lam=LAM,
      space="delta", output="lora", rank=10)
  tree, manifest = composed.tree, composed.manifest
  expected = _expected_delta("lang_task_add_subtract_related", tasks, langs,
                             "pt", sources, lora_config(rank=2))
  config = manifest.config
  assert config.rank == 10 and config.scale == pytest.approx(
      lora_config(rank=2).scale)
  for m, leaves in merge_methods.modules(tree).items():
    np.testing.assert_allclose(
        merge_methods.module_delta(leaves, config, np.float64), expected[m],
        rtol=1e-4, atol=1e-4)


def test_provenance_records_inputs_weights_and_fingerprints():
  tasks, langs = _vectors(lora_config())
  composed = arithmetic.compose(
      "lang_task_add_subtract", task_vectors=tasks, language_vectors=langs,
      target="pt", sources="en", lam=0.25)
  manifest = composed.manifest
  prov = manifest.provenance
  assert prov["lam"] == 0.25 and prov["sources"] == ["en"]
  assert prov["method"] == "linear" and prov["space"] == "factor"
  weights = {(i["task"], i["language"]): i["weight"] for i in prov["inputs"]}
  assert weights == {("xlsum", "en"): 0.25, ("mc4_prefix_lm", "pt"): 0.75,
                     ("mc4_prefix_lm", "en"): -0.75}
  assert all(i["fingerprint"].startswith("sha256:") for i in prov["inputs"])


def test_related_defaults_to_the_papers_table5():
  config = lora_config()
  rng = np.random.default_rng(3)
  seen = ["ar", "bn", "en", "ja", "ko", "id", "sw", "ru", "te", "th", "tr"]
  tasks = {l: make_adapter(rng, config, "xlsum", l) for l in seen}
  # What the jobs choose once (lta.languages.related) and pass down.
  sources = related.related_by_target(["zh"], sorted(tasks))["zh"]
  manifest = arithmetic.compose("task_only_add_related", task_vectors=tasks,
                                target="zh", sources=sources).manifest
  assert manifest.provenance["sources"] == ["en", "ko", "ja", "id", "th"]
  manifest = arithmetic.compose("task_only_add_all", task_vectors=tasks,
                                target="zh").manifest
  assert manifest.provenance["sources"] == sorted(seen)


def test_same_target_and_source_cancels_language_vectors():
  tasks, langs = _vectors(lora_config())
  composed = arithmetic.compose(
      "lang_task_add_subtract", task_vectors=tasks, language_vectors=langs,
      target="en", sources="en", lam=0.5)
  tree, manifest = composed.tree, composed.manifest
  expected = arithmetic.scale(tasks["en"].tree, 0.5)
  for p, v in flatten_tree(expected).items():
    np.testing.assert_allclose(flatten_tree(tree)[p], v, rtol=1e-6)
  assert [i["language"] for i in manifest.provenance["inputs"]] == ["en"] * 2


def test_compose_errors_name_what_is_missing():
  tasks, langs = _vectors(lora_config())
  cases = [
      (dict(name="task_add", sources="en"),
       "Unknown composition 'task_add' (did you mean 'lang_task_add'"),
      (dict(name="lang_task_add", target="fa", sources="en"),
       "'lang_task_add' for 'fa' needs the language vector of 'fa'; have "),
      (dict(name="lang_task_add", sources=["en", "ar"]),
       "exactly one source language, got sources=['en', 'ar']"),
      (dict(name="task_only_add_all", sources=["en"]),
       "averages every task vector"),
      (dict(name="task_only", sources="en", method="ties"),
       "Factor space supports"),
      (dict(name="task_only", sources="en", space="deltas"),
       "space='deltas' (did you mean 'delta'?)"),
      (dict(name="task_only", sources="en", space="delta", method="tie"),
       "method='tie' (did you mean 'ties'?)"),
      (dict(name="task_only", sources="en", space="delta", method="ties",
            density=0.0), "TIES density=0.0 must be in (0, 1]"),
      (dict(name="task_only_add_related"),
       "'task_only_add_related' needs `sources`: the related languages of "
       "'pt'"),
  ]
  for kwargs, message in cases:
    kwargs = {"target": "pt", **kwargs}
    with pytest.raises(ConfigError) as info:
      arithmetic.compose(task_vectors=tasks, language_vectors=langs,
                         **kwargs)
    assert message in str(info.value) and "\n" not in str(info.value)
