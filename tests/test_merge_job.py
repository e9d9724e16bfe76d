"""`lta merge` end to end: gin flags -> composed adapter (+ merged model)."""

import functools
import hashlib
import os

import gin
import jax
import numpy as np
import pytest

from lta.arithmetic import compositions as arithmetic
from lta.arithmetic import compat
from lta.checkpoints import fingerprint
from lta.checkpoints import hf
from lta.errors import CheckpointError, ConfigError, LtaError, MissingFileError
from lta.cli import merge as merge_main
from lta.models.mt5.network import Transformer
from lta.models.contract import EncoderDecoderModel
from lta.adapters import adapter_io
from lta.adapters import deltas
from lta.adapters.config import AdapterConfig
from lta.adapters.manifest import Adapter, AdapterManifest
from lta.adapters.tree import flatten_tree

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "hf", "mt5_tiny")
LORA = AdapterConfig(rank=2, alpha=4.0)


pytestmark = pytest.mark.usefixtures("clean_gin")


@pytest.fixture(scope="module")
def base():
  config, params = hf.load_hf_checkpoint(FIXTURE)
  return config, params, fingerprint.base_model_fingerprint(config, params)


@functools.lru_cache
def _adapter_shapes(config):
  model = EncoderDecoderModel(Transformer(config, LORA))
  return jax.eval_shape(lambda: model.init_unboxed(jax.random.key(0)))[
      "adapters"]


def _adapter(base, seed, task, lang, base_fp=None):
  config, params, fp = base
  rng = np.random.default_rng(seed)
  tree = jax.tree.map(
      lambda s: rng.normal(size=s.shape).astype(np.float32) * 0.1,
      _adapter_shapes(config))
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
  expected = deltas.merge_into_base(params, tree, manifest.config)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6),
               merged, expected)


def test_merge_folds_a_delta_space_dw_tree_into_the_base(tmp_path, saved,
                                                          base):
  """output='delta' gives a dW tree; the one merge_into_base folds it too."""
  out = tmp_path / "out"
  assert merge_main.main(_standard(saved, out, space='"delta"',
                                   output='"delta"',
                                   merge_into_base_path=f'"{FIXTURE}"')) == 0
  tree, _ = adapter_io.load_adapter(str(out / "adapter"))
  assert {p.rpartition("/")[2] for p in flatten_tree(tree)} == {
      deltas.DELTA_LEAF}
  dw = {name: deltas.adapter_deltas(adapter_io.load_adapter(saved[name])[0],
                                   LORA)
        for name in ("task_en", "lang_en", "lang_pt")}
  # Eq. 2 on dW: 0.7 task_en + 0.3 (lang_pt - lang_en), added to the base.
  expected = deltas.add_deltas(base[1], {
      k: 0.7 * dw["task_en"][k] + 0.3 * (dw["lang_pt"][k] - dw["lang_en"][k])
      for k in dw["task_en"]})
  _, merged = hf.load_hf_checkpoint(str(out / "model"))
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
  assert not (tmp_path / "out").exists()  # refused before writing anything


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


@pytest.fixture(scope="module")
def saved(base, tmp_path_factory):
  """Adapter dirs: a task vector, language vectors, mislabelled and foreign."""
  d = tmp_path_factory.mktemp("adapters")
  vectors = {"task_en": _adapter(base, 0, "xlsum", "en"),
             "lang_en": _adapter(base, 1, "mc4_prefix_lm", "en"),
             "lang_pt": _adapter(base, 2, "mc4_prefix_lm", "pt"),
             "lang_de": _adapter(base, 3, "mc4_prefix_lm", "de"),
             "lang_pt_other_base": _adapter(base, 2, "mc4_prefix_lm", "pt",
                                            base_fp="sha256:another-model")}
  return {name: _save(d, a, name) for name, a in vectors.items()}


def _digest(directory):
  """{relative path: sha256} of every file under `directory`."""
  out = {}
  for root, _, files in os.walk(directory):
    for name in files:
      path = os.path.join(root, name)
      with open(path, "rb") as f:
        out[os.path.relpath(path, directory)] = hashlib.sha256(
            f.read()).hexdigest()
  return out


def _refused(argv, error=LtaError):
  """The one-line message of the LtaError `lta merge` raises.

  gin appends "In call to configurable 'run_merge'" on a line of its own;
  the message is the first line.
  """
  with pytest.raises(error) as info:
    merge_main.main(argv)
  assert isinstance(info.value, LtaError)
  message, *gin_notes = str(info.value).split("\n")
  assert all(n.strip().startswith("In call to configurable")
             for n in gin_notes), gin_notes
  return message


def _standard(saved, out, pt="lang_pt", **extra):
  return _flags(out, {"en": saved["task_en"]},
                {"en": saved["lang_en"], "pt": saved[pt]}, **extra)


def test_existing_output_is_replaced_only_with_overwrite(tmp_path, saved):
  out = tmp_path / "out"
  assert merge_main.main(_standard(saved, out)) == 0
  first = _digest(out)
  message = _refused(_standard(saved, out, lam=0.5), ConfigError)
  assert f"run_merge.output_dir='{out}' is not empty (it holds adapter)" in (
      message) and "--overwrite" in message
  assert _digest(out) == first
  assert merge_main.main(_standard(saved, out, lam=0.5) +
                         ["--overwrite"]) == 0
  _, manifest = adapter_io.load_adapter(str(out / "adapter"))
  assert manifest.provenance["lam"] == 0.5
  assert merge_main.main(_standard(saved, out, lam=0.25, overwrite=True)) == 0
  _, manifest = adapter_io.load_adapter(str(out / "adapter"))
  assert manifest.provenance["lam"] == 0.25


def test_a_refused_merge_leaves_the_output_untouched(tmp_path, saved):
  out = tmp_path / "out"
  assert merge_main.main(_standard(saved, out)) == 0
  before = _digest(out)
  # Every check fails after the output dir check passes (--overwrite).
  message = _refused(_standard(saved, out, pt="lang_pt_other_base",
                               merge_into_base_path=f'"{FIXTURE}"') +
                     ["--overwrite"], compat.IncompatibleAdaptersError)
  assert "another-model" in message
  message = _refused(_standard(saved, out, lam=1e39,
                               allow_extrapolation=True) + ["--overwrite"],
                     CheckpointError)
  assert "merging 1e+39 task[en]=" in message and "non-finite" in message
  assert _digest(out) == before


@pytest.mark.parametrize("lam", [-0.5, 1.5, 1e6, "1e999", "-1e999"])
def test_lambda_outside_unit_interval_is_refused_before_anything(
    tmp_path, saved, lam):
  out = tmp_path / "out"
  message = _refused(_standard(saved, out, lam=lam), ConfigError)
  assert message.startswith("run_merge.lam=")
  assert ("outside [0, 1]" in message and
          "run_merge.allow_extrapolation=True" in message) or (
              "must be finite" in message)
  assert not out.exists()


def test_extrapolation_asked_for_by_name_is_recorded(tmp_path, saved):
  out = tmp_path / "out"
  assert merge_main.main(_standard(saved, out, lam=1.5,
                                   allow_extrapolation=True)) == 0
  _, manifest = adapter_io.load_adapter(str(out / "adapter"))
  assert manifest.provenance["allow_extrapolation"] is True
  assert manifest.provenance["lam"] == 1.5
  message = _refused(_standard(saved, tmp_path / "inf", lam="1e999",
                               allow_extrapolation=True), ConfigError)
  assert message == "run_merge.lam=inf: λ must be finite"


def test_a_mislabelled_language_vector_is_refused(tmp_path, saved):
  message = _refused(_standard(saved, tmp_path / "out", pt="lang_de"),
                     compat.MislabelledAdapterError)
  assert message == (
      f"language vector 'pt': language[pt]={saved['lang_de']} (manifest: "
      "task 'mc4_prefix_lm', language 'de') is a 'de' language vector, "
      "given as 'pt'")
  message = _refused(_flags(tmp_path / "out", {"en": saved["lang_en"]},
                            {"en": saved["lang_en"], "pt": saved["lang_pt"]}),
                     compat.MislabelledAdapterError)
  assert "is a language vector, not a task vector" in message
  assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("extra,expected", [
    ({"composition": '"lang_task_add_subtrct"'},
     "Unknown composition 'lang_task_add_subtrct' (did you mean "
     "'lang_task_add_subtract'"),
    ({"target": '"uk"'}, "needs the language vector of 'uk'"),
    ({"space": '"deltas"'}, "space='deltas' (did you mean 'delta'?)"),
])
def test_bad_options_are_one_line_errors(tmp_path, saved, extra, expected):
  message = _refused(_standard(saved, tmp_path / "out", **extra),
                     ConfigError)
  assert expected in message


def test_only_the_adapters_a_composition_uses_are_read(tmp_path, saved):
  """A vectors file lists every language; untrained ones are never read."""
  not_trained = str(tmp_path / "task_ar_not_trained")
  out = tmp_path / "out"
  assert merge_main.main(_flags(
      out, {"en": saved["task_en"], "ar": not_trained},
      {"en": saved["lang_en"], "pt": saved["lang_pt"],
       "ar": not_trained})) == 0
  _, manifest = adapter_io.load_adapter(str(out / "adapter"))
  assert manifest.provenance["sources"] == ["en"]
  # A used one that is missing is named.
  message = _refused(_flags(tmp_path / "out2", {"en": not_trained},
                            {"en": saved["lang_en"], "pt": saved["lang_pt"]}),
                     MissingFileError)
  assert message == (
      f"Adapter file not found: {not_trained}/manifest.json")
