"""Arithmetic on prompt and bottleneck adapters: the paper's equations
element-wise, exact against numpy; every pair that cannot be combined is
refused in one line naming both adapters; neither folds into the base
unless it is the identity."""

import numpy as np
import pytest

from lta.adapters import deltas
from lta.adapters.config import AdapterConfig
from lta.adapters.tree import flatten_tree, unflatten_tree
from lta.arithmetic import compat
from lta.arithmetic import compositions as arithmetic
from lta.errors import CheckpointError, ConfigError
from tests.arithmetic.random_adapters import lora_config, make_adapter
from tests.arithmetic.test_compositions import CASES, LAM, SEEN, _expected

PROMPT = AdapterConfig(kind="prompt", num_virtual_tokens=3)
HOULSBY = AdapterConfig(kind="bottleneck", bottleneck_width=4)
PFEIFFER = AdapterConfig(kind="bottleneck", bottleneck_width=4,
                         bottleneck_placement="pfeiffer")
KINDS = {"prompt": PROMPT, "houlsby": HOULSBY, "pfeiffer": PFEIFFER}


def _vectors(config):
  rng = np.random.default_rng(3)
  tasks = {l: make_adapter(rng, config, "xlsum", l) for l in SEEN}
  langs = {l: make_adapter(rng, config, "mc4_prefix_lm", l)
           for l in SEEN + ["pt"]}
  return tasks, langs


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name,sources", CASES)
def test_compositions_are_the_equations_element_wise(name, sources, kind):
  tasks, langs = _vectors(KINDS[kind])
  composed = arithmetic.compose(
      name, task_vectors=tasks, language_vectors=langs, target="pt",
      sources=sources, lam=LAM)
  expected = _expected(name, tasks, langs, "pt", sources)
  got = flatten_tree(composed.tree)
  assert set(got) == set(expected)
  for path, want in expected.items():
    np.testing.assert_allclose(got[path], want, rtol=1e-6, atol=1e-6)
  assert composed.manifest.config == KINDS[kind]


def _pair(config_a, config_b):
  rng = np.random.default_rng(0)
  return (make_adapter(rng, config_a, name="task[en]"),
          make_adapter(rng, config_b, name="lang[pt]"))


@pytest.mark.parametrize("config_a,config_b,what", [
    (PROMPT, AdapterConfig(kind="prompt", num_virtual_tokens=4),
     "prompt length \\(num_virtual_tokens\\): 3 vs 4"),
    (HOULSBY, PFEIFFER, "bottleneck placement: 'houlsby' vs 'pfeiffer'"),
    (PROMPT, lora_config(), "adapter type: 'prompt' vs 'lora'"),
    (HOULSBY, AdapterConfig(kind="bottleneck", bottleneck_width=8),
     "bottleneck width: 4 vs 8"),
], ids=["prompt_lengths", "houlsby_pfeiffer", "prompt_lora", "widths"])
def test_incompatible_pairs_are_refused_naming_both(config_a, config_b, what):
  a, b = _pair(config_a, config_b)
  with pytest.raises(compat.IncompatibleAdaptersError,
                     match=f"task\\[en\\] and lang\\[pt\\] differ in {what}"
                     ) as e:
    arithmetic.merge_adapters([a, b], [0.5, 0.5])
  assert "\n" not in str(e.value)


@pytest.mark.parametrize("kind", KINDS)
def test_delta_space_is_refused(kind):
  a, b = _pair(KINDS[kind], KINDS[kind])
  with pytest.raises(compat.IncompatibleAdaptersError,
                     match="task\\[en\\] and lang\\[pt\\] are .* no dW"):
    arithmetic.merge_adapters([a, b], [0.5, 0.5], space="delta")


def test_only_an_identity_bottleneck_merges_into_the_base():
  rng = np.random.default_rng(1)
  params = {"encoder": {"layers_0": {"mlp": {"wo": {"kernel": np.ones(
      (4, 12), np.float32)}}}}}
  for config in (HOULSBY, PFEIFFER):
    trained = make_adapter(rng, config).tree
    fresh = {m: {**leaves, "up_kernel": np.zeros_like(leaves["up_kernel"]),
                 "up_bias": np.zeros_like(leaves["up_bias"])}
             for m, leaves in deltas.adapter_modules(trained).items()}
    fresh = unflatten_tree({f"{m}/{leaf}": v for m, leaves in fresh.items()
                            for leaf, v in leaves.items()})
    merged = deltas.merge_into_base(params, fresh, config)
    assert flatten_tree(merged).keys() == flatten_tree(params).keys()
    np.testing.assert_array_equal(
        flatten_tree(merged)["encoder/layers_0/mlp/wo/kernel"], 1.0)
    with pytest.raises(CheckpointError, match="trained bottleneck adapter "
                       "is a nonlinear layer.*decode it unmerged"):
      deltas.merge_into_base(params, trained, config)
  with pytest.raises(CheckpointError, match="prompt adapter .* cannot be "
                     "merged into the base"):
    deltas.merge_into_base(params, make_adapter(rng, PROMPT).tree, PROMPT)


def test_configs_check_their_fields_and_keep_old_dicts():
  with pytest.raises(ConfigError, match="bottleneck_placement='pfeifer'.*"
                     "did you mean 'pfeiffer'"):
    AdapterConfig(kind="bottleneck", bottleneck_placement="pfeifer")
  with pytest.raises(ConfigError, match="num_virtual_tokens must be a "
                     "positive int, got 0"):
    AdapterConfig(kind="prompt", num_virtual_tokens=0)
  # LoRA / Kronecker dicts (and so their manifests' hashes) are unchanged.
  assert "num_virtual_tokens" not in lora_config().to_dict()
  assert "bottleneck_width" not in PROMPT.to_dict()
  for config in KINDS.values():
    assert AdapterConfig.from_dict(config.to_dict()) == config
