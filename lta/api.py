"""A short way in from Python (notebooks): load, compose, merge, generate.

  from lta import api
  model = api.load_base("/data/mt5-base")        # HF dir; T5X with config=
  task = api.load_adapter("/runs/task_en/adapter")          # lta format
  lang = {l: api.load_adapter(f"/runs/lang_{l}/peft", model,  # HF PEFT
                              task="mc4_prefix_lm", language=l)
          for l in ("en", "pt")}
  adapter = api.compose("lang_task_add_subtract", task_vectors={"en": task},
                        language_vectors=lang, target="pt", sources=["en"],
                        lam=0.7)
  merged = api.merge(model, adapter)
  api.generate(merged, ["summarize: ..."], vocabulary="/data/spm.model")
  api.export_peft(adapter, "/tmp/pt_peft", model)

An mBART-50 or NLLB-200 base (HF MBartForConditionalGeneration /
M2M100ForConditionalGeneration) reads its language codes: generate puts the
source's code before each input and forces the target's as the first
generated token, as `lta eval` does:

  mbart = api.load_base("/data/mbart-large-50")
  api.generate(mbart, ["<article>"], "/data/mbart50/spm.fairseq.model",
               source_language="en", target_language="pt")

A decoder-only base (an HF Llama, Qwen2/3 or Gemma 2/3 directory) works the
same way; generate then fills a prompt template (prompt="xlsum") and
left-pads the prompts:

  llm = api.load_base("/data/qwen2.5-0.5b")
  api.generate(llm, ["<article>"], "/data/qwen.spm", prompt="xlsum")

Each function is a thin call into the library (lta.checkpoints, lta.adapters,
lta.arithmetic.compositions, lta.models); docs/api.md walks through it.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Mapping, Optional, Sequence, Union

import jax
import numpy as np
import seqio

from lta.arithmetic import compositions as arithmetic
from lta.arithmetic import compat
from lta import errors
from lta.eval import scoring as evaluation
from lta.languages import related
from lta.data import decoder_only
from lta.data import language_codes
from lta.data import vocab as vocab_lib
from lta.checkpoints import base_model
from lta.checkpoints import fingerprint as fingerprint_lib
from lta.models import families
from lta.models.contract import DecodingConfig
from lta.adapters import adapter_io
from lta.checkpoints import hf_peft
from lta.adapters import deltas as merge_lib
from lta.adapters.manifest import Adapter, AdapterManifest


@dataclasses.dataclass
class Model:
  """A base model's weights, possibly with adapters merged in.

  `fingerprint` stays the base model's: adapters trained on that base can
  still be checked against it after a merge.
  """
  config: families.ModelConfig
  params: dict[str, Any]
  path: str
  fingerprint: str
  merged: tuple[str, ...] = ()
  _device_variables: Any = dataclasses.field(default=None, repr=False)

  @property
  def variables(self) -> dict[str, Any]:
    """The params on the default device, transferred once."""
    if self._device_variables is None:
      self._device_variables = jax.device_put({"params": self.params})
    return self._device_variables


def load_base(path: str,
              config: Optional[families.ModelConfig] = None) -> Model:
  """An HF checkpoint (directory or weights file) of T5/mT5 or a
  decoder-only family (Llama, Qwen2, Qwen3, Gemma 2, Gemma 3 text), or a
  T5X checkpoint with `config` its architecture (e.g. from gin/models/)."""
  config, params = base_model.load_base_model(path, config, "path",
                                               "config")
  return Model(config, params, path,
               fingerprint_lib.base_model_fingerprint(config, params))


def load_adapter(path: str, base: Optional[Model] = None, *, task: str = "",
                 language: str = "") -> Adapter:
  """An adapter in lta's format (manifest.json) or an HF PEFT directory
  (adapter_config.json, LoRA or LoKr).

  A PEFT adapter carries no base fingerprint nor task: give `base` (its
  shapes are checked against it and it is bound to it), and `task` /
  `language` to say what it is (e.g. task='mc4_prefix_lm', language='pt'
  for a language vector).
  """
  if os.path.isfile(os.path.join(path, adapter_io.MANIFEST_FILE)):
    tree, manifest = adapter_io.load_adapter(path)
    return Adapter(tree, manifest, name=path)
  if not os.path.isfile(os.path.join(path, hf_peft.CONFIG_FILE)):
    raise errors.MissingFileError(
        f"{path}: neither an lta adapter ({adapter_io.MANIFEST_FILE}) nor an "
        f"HF PEFT adapter ({hf_peft.CONFIG_FILE})")
  if base is None:
    raise errors.ConfigError(
        f"{path} is an HF PEFT adapter: pass the base model it was trained "
        "on, load_adapter(path, base)")
  config, tree = hf_peft.import_peft_adapter(path, base.config)
  tree = jax.tree.map(np.asarray, tree)
  manifest = AdapterManifest.for_tree(
      tree, config, base_model_fingerprint=base.fingerprint,
      base_model_name=base.config.name, task=task, language=language,
      provenance={"imported_from_peft": path})
  return Adapter(tree, manifest, name=path)


def save_adapter(adapter: Adapter, path: str) -> str:
  """Writes `adapter` in lta's format (what `lta merge` / `lta eval` read)."""
  adapter_io.save_adapter(path, adapter.tree, adapter.manifest)
  return path


def compose(name: str, *, task_vectors: Mapping[str, Adapter],
            language_vectors: Optional[Mapping[str, Adapter]] = None,
            target: str, sources: Union[str, Sequence[str], None] = None,
            lam: float = 1.0, space: str = "factor",
            selection: related.Selection = "paper", **kwargs: Any
            ) -> Adapter:
  """The paper's composition `name` for `target` (see lta.arithmetic.compositions and
  lta.eval.methods): e.g. 'lang_task_add_subtract' is
  λ·task_S + (1−λ)·(lang_T − lang_S). The related compositions default to
  the related task languages of `target` (`selection`: 'paper' = Table 5,
  'uriel')."""
  if sources is None and name in arithmetic.RELATED:
    sources = related.related_sources(target, sorted(task_vectors), selection)
  return arithmetic.compose(
      name, task_vectors=task_vectors, language_vectors=language_vectors,
      target=target, sources=sources, lam=lam, space=space, **kwargs)


def merge(model: Model, adapter: Adapter) -> Model:
  """`model` with `adapter` folded into its weights (decodes at base cost);
  refuses an adapter trained on another base model."""
  compat.check_base([adapter], model.fingerprint, model.path)
  params = merge_lib.merge_into_base(model.params, adapter.tree,
                                     adapter.config)
  return Model(model.config, params, model.path, model.fingerprint,
               model.merged + (adapter.label,))


def load_vocabulary(path: str) -> seqio.SentencePieceVocabulary:
  """The SentencePiece model at `path` (mT5's has 250,100 pieces)."""
  if not path.startswith("gs://") and not os.path.isfile(path):
    raise errors.MissingFileError(f"Vocabulary {path!r} does not exist")
  return vocab_lib.get_vocabulary(path=path)


@functools.lru_cache(maxsize=16)
def _predict_fn(config: families.ModelConfig, decoding: DecodingConfig,
                bidirectional_prompt: bool):
  return evaluation.make_predict_fn(
      families.build_model(config, bidirectional_prompt=bidirectional_prompt),
      decoding)


def _prompt_texts(texts: Sequence[Union[str, Mapping[str, str]]],
                  prompt: Optional[str]) -> list[str]:
  """texts, each filled into the template `prompt` names (a key of
  lta.data.decoder_only.PROMPTS) when there is one."""
  if prompt is None:
    bad = [t for t in texts if not isinstance(t, str)]
    if bad:
      raise errors.ConfigError(
          f"generate: {type(bad[0]).__name__} input without a prompt "
          "template; pass strings, or prompt= one of "
          f"{sorted(decoder_only.PROMPTS)} for fields")
    return list(texts)
  if prompt not in decoder_only.PROMPTS:
    raise errors.ConfigError(
        f"generate: unknown prompt {prompt!r}; expected one of "
        f"{sorted(decoder_only.PROMPTS)}"
        f"{errors.did_you_mean(prompt, decoder_only.PROMPTS)}")
  template = decoder_only.PROMPTS[prompt]
  if len(template.fields) > 1 and any(isinstance(t, str) for t in texts):
    raise errors.ConfigError(
        f"generate: prompt {prompt!r} has fields {list(template.fields)}; "
        "pass one dict of them per input, not strings")
  return [template.format(t if not isinstance(t, str)
                          else {template.fields[0]: t}) for t in texts]


def _language_codes(model: Model, vocabulary: seqio.Vocabulary,
                    source_language: Optional[str],
                    target_language: Optional[str]
                    ) -> tuple[list[int], Optional[int]]:
  """(ids before each input, forced first id) for `model`'s language-code
  scheme: mBART / NLLB need both languages, the other families none."""
  scheme = language_codes.scheme_for(model.config)
  given = {k: v for k, v in (("source_language", source_language),
                             ("target_language", target_language)) if v}
  if scheme is None:
    if given:
      raise errors.ConfigError(
          f"generate: {model.config.name} reads no language codes; drop "
          f"{', '.join(given)}")
    return [], None
  missing = [k for k in ("source_language", "target_language")
             if k not in given]
  if missing:
    raise errors.ConfigError(
        f"generate: {model.config.name} ({scheme}) reads the source's language"
        f" code and writes the target's: pass {' and '.join(missing)}, e.g."
        " source_language='en', target_language='pt'")
  return ([language_codes.code_id(vocabulary, scheme, source_language)],
          language_codes.code_id(vocabulary, scheme, target_language))


def generate(model: Model, texts: Sequence[Union[str, Mapping[str, str]]],
             vocabulary: Union[str, seqio.Vocabulary], *,
             method: str = "greedy", max_length: int = 64,
             batch_size: int = 8, max_input_length: int = 512, seed: int = 0,
             prompt: Optional[str] = None, bidirectional_prompt: bool = False,
             source_language: Optional[str] = None,
             target_language: Optional[str] = None,
             return_ids: bool = False,
             **decoding_options: Any) -> Union[list[str], list[np.ndarray]]:
  """Text in, text out: encodes, decodes in batches, detokenizes.

  method: 'greedy', 'beam' or 'sample'; `decoding_options` are other
  `lta.models.contract.DecodingConfig` fields (beam_size, alpha, temperature, topk,
  topp). Inputs longer than `max_input_length` tokens are truncated (at
  their end).

  prompt: a task's prompt template ('xlsum': texts are articles;
  'tydiqa_goldp': dicts with 'context' and 'question'), as the decoder-only
  tasks build their inputs (docs/decoder_only.md). A decoder-only model
  reads the prompt after its start token, left-padded, without EOS; with
  bidirectional_prompt (a model trained with DecoderObjective.
  prefix_attention='bidirectional') the prompt attends to itself both ways.

  source_language / target_language (e.g. 'en', 'pt'): required for mBART
  and NLLB, whose inputs start with the source's code and whose outputs
  are forced to start with the target's (lta.data.language_codes).
  return_ids: the decoded ids (one array per text, the forced code
  included) instead of text.
  """
  if isinstance(texts, str):
    raise errors.ConfigError("generate: texts must be a list of strings, "
                             "got one string")
  texts = _prompt_texts(texts, prompt)
  if isinstance(vocabulary, str):
    vocabulary = load_vocabulary(vocabulary)
  if vocabulary.vocab_size > model.config.vocab_size:
    raise errors.ConfigError(
        f"The vocabulary has {vocabulary.vocab_size} pieces but "
        f"{model.config.name} embeds only {model.config.vocab_size}: it is "
        "not this model's vocabulary")
  head, forced = _language_codes(model, vocabulary, source_language,
                                 target_language)
  if forced is not None:
    decoding_options.setdefault("forced_first_id", forced)
  decoding = DecodingConfig(method=method, max_decode_length=max_length,
                            **decoding_options)
  if families.is_decoder_only(model.config):
    tail = []  # the prompt runs straight into its continuation
  else:
    tail = [model.config.eos_token_id]
  keep = max_input_length - len(head) - len(tail)
  examples = [{"inputs": np.asarray(
      head + list(vocabulary.encode(t))[:keep] + tail, np.int32)}
              for t in texts]
  if not examples:
    return []
  # One input length per call (rounded up): one compilation for all batches.
  length = -(-max(len(e["inputs"]) for e in examples) // 16) * 16
  ids = evaluation.decode_examples(
      _predict_fn(model.config, decoding, bidirectional_prompt),
      model.variables, examples,
      batch_size, length,
      rng=jax.random.key(seed) if method == "sample" else None)
  if return_ids:
    return [np.asarray(row) for row in ids]
  return [vocabulary.decode([int(t) for t in row]) for row in ids]


def export_peft(adapter: Adapter, out_dir: str, base: Model) -> str:
  """Writes `adapter` as an HF PEFT directory for `base` (LoRA -> LORA,
  Kronecker -> LOKR) that peft's PeftModel.from_pretrained loads."""
  compat.check_base([adapter], base.fingerprint, base.path)
  hf_peft.export_peft_adapter(adapter.tree, adapter.config, base.config,
                              out_dir, base_model_name_or_path=base.path)
  return out_dir
