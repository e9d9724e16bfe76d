"""`lta merge`: compose adapter checkpoints into a new one (gin-configured)."""

from __future__ import annotations

import os
import shutil
from typing import Mapping, Optional, Sequence

import gin

from lta.arithmetic import compositions as arithmetic
from lta.arithmetic import compat
from lta.checkpoints import base_model
from lta.checkpoints import fingerprint
from lta.errors import ConfigError
from lta.languages import related
from lta.models import families
from lta.adapters import adapter_io
from lta.adapters import deltas

# What run_merge writes under output_dir (and replaces with overwrite).
ADAPTER_DIR, MODEL_DIR = "adapter", "model"


def check_output_dir(output_dir: str, overwrite: bool) -> None:
  """Refuses to write over an earlier result unless asked to."""
  if os.path.exists(output_dir) and not os.path.isdir(output_dir):
    raise ConfigError(f"run_merge.output_dir={output_dir!r} is a file, not a "
                      "directory")
  existing = sorted(os.listdir(output_dir)) if os.path.isdir(output_dir) else []
  if existing and not overwrite:
    raise ConfigError(
        f"run_merge.output_dir={output_dir!r} is not empty (it holds "
        f"{', '.join(existing[:4])}{', ...' if len(existing) > 4 else ''}); "
        "pass --overwrite (or bind run_merge.overwrite=True) to replace its "
        f"{ADAPTER_DIR}/ and {MODEL_DIR}/")


@gin.configurable
def run_merge(*, output_dir: str = gin.REQUIRED,
              composition: str = gin.REQUIRED, target: str = gin.REQUIRED,
              task_vectors: Mapping[str, str] = gin.REQUIRED,
              language_vectors: Optional[Mapping[str, str]] = None,
              sources: Optional[Sequence[str]] = None, lam: float = 1.0,
              space: str = "factor", method: str = "linear",
              output: Optional[str] = None, rank: Optional[int] = None,
              selection: str = "paper",
              merge_into_base_path: Optional[str] = None,
              overwrite: bool = False, allow_extrapolation: bool = False,
              allow_unlabelled: bool = False,
              model_config: Optional[families.ModelConfig] = None) -> str:
  """Composes, writes `output_dir/adapter`; optionally also a merged model.

  With `merge_into_base_path` (an HF or T5X checkpoint; a T5X one needs
  `model_config`) the composition is also folded into that base and written
  as an HF checkpoint to `output_dir/model`, after checking every input was
  trained on it.
  Everything (λ, inputs, labels, bases, finite results, the output dir) is
  checked before anything is written. overwrite: replace the adapter/ and
  model/ of a non-empty output_dir. allow_extrapolation: λ outside [0, 1].
  allow_unlabelled: inputs whose manifests name no task or language.
  """
  compat.check_lambda(lam, allow_extrapolation=allow_extrapolation,
                      name="run_merge.lam",
                      switch="run_merge.allow_extrapolation=True")
  check_output_dir(output_dir, overwrite)
  tasks = adapter_io.AdapterDirs(task_vectors, "task")
  langs = adapter_io.AdapterDirs(language_vectors or {}, "language")
  if sources is None and composition in arithmetic.RELATED:
    sources = related.related_sources(target, sorted(tasks), selection)
  adapter = arithmetic.compose(
      composition, task_vectors=tasks, language_vectors=langs, target=target,
      sources=sources, lam=lam, space=space, method=method, output=output,
      rank=rank, allow_extrapolation=allow_extrapolation,
      allow_unlabelled=allow_unlabelled)
  merged = None
  if merge_into_base_path:
    config, params = base_model.load_base_model(
        merge_into_base_path, model_config, "run_merge.merge_into_base_path",
        "run_merge.model_config")
    compat.check_base(tasks.loaded() + langs.loaded(),
                      fingerprint.base_model_fingerprint(config, params),
                      merge_into_base_path)
    merged = deltas.merge_into_base(params, adapter.tree, adapter.config)
    compat.check_finite(merged, f"{merge_into_base_path} plus {composition}")

  # Only now, with everything checked, is anything written.
  for name in (ADAPTER_DIR, MODEL_DIR):
    if overwrite and os.path.isdir(os.path.join(output_dir, name)):
      shutil.rmtree(os.path.join(output_dir, name))
  adapter_dir = os.path.join(output_dir, ADAPTER_DIR)
  adapter_io.save_adapter(adapter_dir, adapter.tree, adapter.manifest)
  print(f"Wrote {composition} (λ={lam}, {space} space) for {target} to "
        f"{adapter_dir}")
  if merged is not None:
    model_dir = os.path.join(output_dir, MODEL_DIR)
    base_model.save_base_model(merged, config, model_dir)
    print(f"Wrote the merged model to {model_dir}")
  return adapter_dir
