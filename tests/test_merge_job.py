"""`lta merge` end to end: gin flags -> composed adapter (+ merged model)."""

import os

import jax
import numpy as np
import pytest

from lta import arithmetic
from lta import compat
from lta.checkpoints import fingerprint
from lta.checkpoints import hf
from lta.main import merge as merge_main
from lta.model.network import Transformer
from lta.models import EncoderDecoderModel
from lta.peft import adapter_io
from lta.peft import merge
from lta.peft.config import AdapterConfig
from lta.peft.manifest import Adapter, AdapterManifest

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "hf", "mt5_tiny")
LORA = AdapterConfig(rank=2, alpha=4.0)


@pytest.fixture(scope="module")
def base():
  config, params = hf.load_hf_checkpoint(FIXTURE)
  return config, params, fingerprint.base_model_fingerprint(config, params)


def _adapter(base, seed, task, lang, base_fp=None):
  config, params, fp = base
  model = EncoderDecoderModel(Transformer(config, LORA))
  shapes = jax.eval_shape(lambda: model.init_unboxed(jax.random.key(0)))
  rng = np.random.default_rng(seed)
  tree = jax.tree.map(
      lambda s: rng.normal(size=s.shape).astype(np.float32) * 0.1,
      shapes["adapters"])
  manifest = AdapterManifest.for_tree(
      tree, LORA, base_model_fingerprint=base_fp or fp,
      base_model_name=config.name, task=task, language=lang)
  return Adapter(tree, manifest, f"{task}[{lang}]")


def _save(tmp_path, adapter, name):
  path = str(tmp_path / name)
  adapter_io.save_adapter(path, adapter.tree, adapter.manifest)
  return path


def _flags(out, task_paths, lang_paths, **extra):
  flags = ["--gin_file=runs/merge.gin",
           f'--gin.run_merge.output_dir="{out}"',
           '--gin.run_merge.composition="lang_task_add_subtract"',
           '--gin.run_merge.target="pt"', "--gin.run_merge.sources=['en']",
           "--gin.run_merge.lam=0.7",
           f"--gin.run_merge.task_vectors={task_paths!r}",
           f"--gin.run_merge.language_vectors={lang_paths!r}"]
  return flags + [f"--gin.run_merge.{k}={v}" for k, v in extra.items()]


def test_merge_writes_the_composition_with_provenance(tmp_path, base):
  task = _adapter(base, 0, "xlsum", "en")
  lang_en = _adapter(base, 1, "mc4_prefix_lm", "en")
  lang_pt = _adapter(base, 2, "mc4_prefix_lm", "pt")
  tasks = {"en": _save(tmp_path, task, "task_en")}
  langs = {"en": _save(tmp_path, lang_en, "lang_en"),
           "pt": _save(tmp_path, lang_pt, "lang_pt")}
  out = tmp_path / "out"
  assert merge_main.main(_flags(out, tasks, langs,
                                merge_into_base_path=f'"{FIXTURE}"')) == 0
  tree, manifest = adapter_io.load_adapter(str(out / "adapter"))
  # Eq. 2 by hand, factor space: 0.7 task_en + 0.3 (lang_pt - lang_en).
  want = jax.tree.map(lambda t, p, e: 0.7 * t + 0.3 * (p - e), task.tree,
                      lang_pt.tree, lang_en.tree)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6),
               tree, want)
  prov = manifest.provenance
  assert prov["composition"] == "lang_task_add_subtract" and prov["lam"] == 0.7
  assert {i["fingerprint"] for i in prov["inputs"]} == {
      arithmetic.adapter_fingerprint(a.tree) for a in (task, lang_en, lang_pt)}
  # The merged model equals the base plus the composition's dW.
  config, params, _ = base
  _, merged = hf.load_hf_checkpoint(str(out / "model"))
  expected = merge.merge_into_base(params, tree, manifest.config)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6),
               merged, expected)


def test_merge_refuses_an_adapter_from_another_base(tmp_path, base):
  task = _adapter(base, 0, "xlsum", "en", base_fp="sha256:another-model")
  lang_en = _adapter(base, 1, "mc4_prefix_lm", "en",
                     base_fp="sha256:another-model")
  lang_pt = _adapter(base, 2, "mc4_prefix_lm", "pt",
                     base_fp="sha256:another-model")
  tasks = {"en": _save(tmp_path, task, "task_en")}
  langs = {"en": _save(tmp_path, lang_en, "lang_en"),
           "pt": _save(tmp_path, lang_pt, "lang_pt")}
  with pytest.raises(compat.IncompatibleAdaptersError,
                     match=r"task\[en\].*another-model.*mt5_tiny"):
    merge_main.main(_flags(tmp_path / "out", tasks, langs,
                           merge_into_base_path=f'"{FIXTURE}"'))


def test_merge_refuses_inputs_from_different_bases(tmp_path, base):
  task = _adapter(base, 0, "xlsum", "en")
  lang_en = _adapter(base, 1, "mc4_prefix_lm", "en",
                     base_fp="sha256:another-model")
  lang_pt = _adapter(base, 2, "mc4_prefix_lm", "pt")
  tasks = {"en": _save(tmp_path, task, "task_en")}
  langs = {"en": _save(tmp_path, lang_en, "lang_en"),
           "pt": _save(tmp_path, lang_pt, "lang_pt")}
  with pytest.raises(compat.IncompatibleAdaptersError, match="another-model"):
    merge_main.main(_flags(tmp_path / "out", tasks, langs))
