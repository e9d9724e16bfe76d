"""`lta merge`: compose adapter checkpoints into a new one (gin-configured)."""

from __future__ import annotations

import os
from typing import Mapping, Optional, Sequence

import gin

from lta import arithmetic
from lta import compat
from lta.checkpoints import fingerprint
from lta.checkpoints import hf
from lta.peft import adapter_io
from lta.peft import merge
from lta.peft.manifest import Adapter


def load_adapters(paths: Mapping[str, str], kind: str) -> dict[str, Adapter]:
  """{language: Adapter} from {language: exported adapter directory}."""
  out = {}
  for lang, path in paths.items():
    tree, manifest = adapter_io.load_adapter(path)
    out[lang] = Adapter(tree, manifest, name=f"{kind}[{lang}]={path}")
  return out


@gin.configurable
def run_merge(*, output_dir: str = gin.REQUIRED,
              composition: str = gin.REQUIRED, target: str = gin.REQUIRED,
              task_vectors: Mapping[str, str] = gin.REQUIRED,
              language_vectors: Optional[Mapping[str, str]] = None,
              sources: Optional[Sequence[str]] = None, lam: float = 1.0,
              space: str = "factor", method: str = "linear",
              output: Optional[str] = None, rank: Optional[int] = None,
              selection: str = "paper",
              merge_into_base_path: Optional[str] = None) -> str:
  """Composes, writes `output_dir/adapter`; optionally also a merged model.

  With `merge_into_base_path` (an HF checkpoint dir) the composition is also
  folded into that base and written as an HF checkpoint to
  `output_dir/model`, after checking every input was trained on it.
  """
  tasks = load_adapters(task_vectors, "task")
  langs = load_adapters(language_vectors or {}, "language")
  tree, manifest = arithmetic.compose(
      composition, task_vectors=tasks, language_vectors=langs, target=target,
      sources=sources, lam=lam, space=space, selection=selection,
      method=method, output=output, rank=rank)
  adapter_dir = os.path.join(output_dir, "adapter")
  adapter_io.save_adapter(adapter_dir, tree, manifest)
  print(f"Wrote {composition} (λ={lam}, {space} space) for {target} to "
        f"{adapter_dir}")
  if merge_into_base_path:
    config, params = hf.load_hf_checkpoint(merge_into_base_path)
    compat.check_base(list(tasks.values()) + list(langs.values()),
               fingerprint.base_model_fingerprint(config, params),
               merge_into_base_path)
    merged = merge.merge_into_base(params, tree, manifest.config)
    model_dir = os.path.join(output_dir, "model")
    hf.save_hf_checkpoint(merged, config, model_dir)
    print(f"Wrote the merged model to {model_dir}")
  return adapter_dir
