"""Language and task arithmetic over adapter trees.

Pure pytree operations (scale, add, subtract, weighted sum and average) on
plain nested dicts of arrays, and the compositions of Chronopoulou et al.
(2023, section 2) by name:

  task_only                        baseline  task_S
  lang_task_add                    Eq. 1     lam task_S + (1-lam) lang_T
  lang_task_add_subtract           Eq. 2     lam task_S + (1-lam)(lang_T-lang_S)
  task_only_add_all                Eq. 3     mean_i task_Si, all sources
  task_only_add_related            Eq. 3     mean_i task_Si, related sources
  lang_task_add_subtract_related   Eq. 4     lam mean_i task_Si
                                             + (1-lam)(lang_T - mean_i lang_Si)

Two spaces. *factor* (the paper's method) combines the stored factors
element-wise. For LoRA, combining (A_i, B_i) with weights w_i gives

  dW = s (sum_i w_i A_i)(sum_j w_j B_j) = s sum_i sum_j w_i w_j A_i B_j,

which is not sum_i w_i s A_i B_i: diagonal terms are weighted w_i^2 and the
cross terms A_i B_j (i != j) appear. Kronecker factors behave the same way,
kron(sum_i w_i A_i, sum_j w_j B_j) = sum_ij w_i w_j kron(A_i, B_j). *delta*
combines dW exactly (`lta.arithmetic.merge_methods`). The two agree for a single
adapter with weight 1 (and in general only then).

Before anything is combined, `compose` checks λ (in [0, 1] unless
`allow_extrapolation`), each input's manifest against its role
(`compat.check_labels`) and the inputs' compatibility; after, that the
result is finite.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np

from lta.arithmetic import compat
from lta.arithmetic import merge_methods
from lta.errors import ConfigError, did_you_mean
from lta.adapters.manifest import Adapter, AdapterManifest, adapter_fingerprint

Tree = Any


# --- pure pytree arithmetic -------------------------------------------------

def tree_map(fn: Callable[..., Any], tree: Tree, *rest: Tree,
             path: str = "") -> Tree:
  """fn over matching leaves of nested dicts; differing keys are an error."""
  if isinstance(tree, Mapping):
    for other in rest:
      if not isinstance(other, Mapping) or set(other) != set(tree):
        keys = set(other) if isinstance(other, Mapping) else "a leaf"
        raise ValueError(f"Trees differ at {path or '<root>'!r}: keys "
                         f"{sorted(tree)} vs {keys}")
    return {k: tree_map(fn, tree[k], *(o[k] for o in rest),
                        path=f"{path}/{k}" if path else k)
            for k in tree}
  for other in rest:
    if isinstance(other, Mapping):
      raise ValueError(f"Trees differ at {path!r}: leaf vs subtree")
    if np.shape(other) != np.shape(tree):
      raise ValueError(f"Trees differ at {path!r}: shape {np.shape(tree)} "
                       f"vs {np.shape(other)}")
  return fn(tree, *rest)


def scale(tree: Tree, s: float) -> Tree:
  return tree_map(lambda x: x * s, tree)


def add(a: Tree, b: Tree) -> Tree:
  return tree_map(lambda x, y: x + y, a, b)


def subtract(a: Tree, b: Tree) -> Tree:
  return tree_map(lambda x, y: x - y, a, b)


def weighted_sum(trees: Sequence[Tree], weights: Sequence[float]) -> Tree:
  if len(trees) != len(weights) or not trees:
    raise ValueError(f"weighted_sum needs as many weights as trees (>0), got "
                     f"{len(trees)} trees and {len(weights)} weights")

  def combine(*leaves):
    acc = leaves[0] * weights[0]
    for w, leaf in zip(weights[1:], leaves[1:]):
      acc = acc + leaf * w
    return acc

  return tree_map(combine, *trees)


def weighted_average(trees: Sequence[Tree],
                     weights: Optional[Sequence[float]] = None) -> Tree:
  """sum_i w_i t_i / sum_i w_i; uniform when `weights` is None."""
  if weights is None:
    weights = [1.0] * len(trees)
  total = float(sum(weights))
  if total == 0.0:
    raise ValueError(f"weighted_average: weights {list(weights)} sum to 0")
  return weighted_sum(trees, [w / total for w in weights])


# --- named compositions -----------------------------------------------------

# A composition returns terms (weight, kind, language), kind 'task' or
# 'language'; `compose` resolves them to adapters and merges.
Term = tuple[float, str, str]
COMPOSITIONS: dict[str, Callable[..., list[Term]]] = {}


def register_composition(name: str):
  def wrap(fn):
    if name in COMPOSITIONS:
      raise ValueError(f"Composition {name!r} is already registered")
    COMPOSITIONS[name] = fn
    return fn
  return wrap


def _one_source(sources: Sequence[str], name: str) -> str:
  if len(sources) != 1:
    raise ConfigError(f"Composition {name!r} takes exactly one source "
                      f"language, got sources={list(sources)}")
  return sources[0]


@register_composition("task_only")
def _task_only(target, sources, lam):
  del target, lam
  return [(1.0, "task", _one_source(sources, "task_only"))]


@register_composition("lang_task_add")
def _lang_task_add(target, sources, lam):
  s = _one_source(sources, "lang_task_add")
  return [(lam, "task", s), (1.0 - lam, "language", target)]


@register_composition("lang_task_add_subtract")
def _lang_task_add_subtract(target, sources, lam):
  s = _one_source(sources, "lang_task_add_subtract")
  return [(lam, "task", s), (1.0 - lam, "language", target),
          (-(1.0 - lam), "language", s)]


def _mean_of_tasks(sources):
  if not sources:
    raise ConfigError("A task average needs at least one source language")
  return [(1.0 / len(sources), "task", s) for s in sources]


@register_composition("task_only_add_all")
def _task_only_add_all(target, sources, lam):
  del target, lam
  return _mean_of_tasks(sources)


# Compositions over the related sources of a target (the paper's Table 5);
# their callers choose the sources.
RELATED = ("task_only_add_related", "lang_task_add_subtract_related")


@register_composition("task_only_add_related")
def _task_only_add_related(target, sources, lam):
  del target, lam
  return _mean_of_tasks(sources)


@register_composition("lang_task_add_subtract_related")
def _lang_task_add_subtract_related(target, sources, lam):
  if not sources:
    raise ConfigError("lang_task_add_subtract_related needs source "
                      "languages")
  n = len(sources)
  return ([(lam / n, "task", s) for s in sources] +
          [(1.0 - lam, "language", target)] +
          [(-(1.0 - lam) / n, "language", s) for s in sources])


def composition_terms(name: str, *, target: str, sources: Sequence[str],
                      lam: float = 1.0) -> list[Term]:
  """Terms of composition `name`, equal (kind, language) terms summed."""
  if name not in COMPOSITIONS:
    raise ConfigError(f"Unknown composition {name!r}"
                      f"{did_you_mean(name, COMPOSITIONS)}; known: "
                      f"{sorted(COMPOSITIONS)}")
  summed: dict[tuple[str, str], float] = {}
  for w, kind, lang in COMPOSITIONS[name](target, list(sources), lam):
    summed[(kind, lang)] = summed.get((kind, lang), 0.0) + w
  return [(w, kind, lang) for (kind, lang), w in summed.items()]


@dataclasses.dataclass(frozen=True)
class Plan:
  """What a composition combines: the adapters, their weights, the sources.

  unlabelled: inputs whose manifests name no task or language, accepted
    with allow_unlabelled=True (recorded in the result's provenance).
  """
  name: str
  target: str
  sources: list[str]
  lam: float
  adapters: list[Adapter]
  weights: list[float]
  unlabelled: list[str]


def plan(name: str, *, task_vectors: Mapping[str, Adapter],
         language_vectors: Optional[Mapping[str, Adapter]] = None,
         target: str, sources: Union[str, Sequence[str], None] = None,
         lam: float = 1.0, allow_extrapolation: bool = False,
         allow_unlabelled: bool = False) -> Plan:
  """Resolves composition `name` to weighted adapters, checking λ and labels.

  Nothing is combined, so callers may check every target before any work.
  See `compose` for the arguments.
  """
  lam = compat.check_lambda(lam, allow_extrapolation=allow_extrapolation)
  if isinstance(sources, str):
    sources = [sources]
  if sources is None:
    if name == "task_only_add_all":
      sources = sorted(task_vectors)
    elif name in RELATED:
      raise ConfigError(
          f"Composition {name!r} needs `sources`: the related languages of "
          f"{target!r} among the task languages {sorted(task_vectors)} "
          "(lta.languages.related.related_sources chooses them)")
    else:
      raise ConfigError(f"Composition {name!r} needs `sources`")
  elif name == "task_only_add_all" and set(sources) != set(task_vectors):
    raise ConfigError(f"task_only_add_all averages every task vector "
                      f"{sorted(task_vectors)}; got sources {list(sources)}")
  terms = composition_terms(name, target=target, sources=sources, lam=lam)
  pools = {"task": task_vectors, "language": language_vectors or {}}
  used: dict[str, dict[str, Adapter]] = {"task": {}, "language": {}}
  adapters, weights = [], []
  for w, kind, lang in terms:
    if lang not in pools[kind]:
      raise ConfigError(
          f"Composition {name!r} for {target!r} needs the {kind} vector of "
          f"{lang!r}{did_you_mean(lang, pools[kind])}; have "
          f"{sorted(pools[kind])}")
    used[kind][lang] = pools[kind][lang]
    adapters.append(pools[kind][lang])
    weights.append(w)
  unlabelled = compat.check_labels(used["task"], used["language"],
                                   allow_unlabelled=allow_unlabelled)
  return Plan(name, target, list(sources), lam, adapters, weights,
              unlabelled)


def compose(name: str, *, task_vectors: Mapping[str, Adapter],
            language_vectors: Optional[Mapping[str, Adapter]] = None,
            target: str, sources: Union[str, Sequence[str], None] = None,
            lam: float = 1.0, space: str = "factor",
            allow_extrapolation: bool = False,
            allow_unlabelled: bool = False, label: Optional[str] = None,
            **merge_kwargs) -> Adapter:
  """The adapter for `target` built by composition `name`.

  task_vectors, language_vectors: {language: adapter}; each manifest must
    agree with its role and key (`compat.check_labels`).
  sources: one language (str) for the single-source compositions, a list for
    the others. If None: all task languages for task_only_add_all; the
    `RELATED` compositions need theirs given (the job that runs them
    chooses them, with `lta.languages.related`).
  lam: in [0, 1]; outside only with allow_extrapolation=True (recorded in
    the provenance). Never NaN or Inf.
  allow_unlabelled: accept inputs whose manifests name no task or language,
    trusting their keys (recorded in the provenance).
  label: the result's name in messages (default 'name[target, λ=lam]').
  merge_kwargs: passed to `merge_adapters` (method, output, rank, ...).
  """
  p = plan(name, task_vectors=task_vectors, language_vectors=language_vectors,
           target=target, sources=sources, lam=lam,
           allow_extrapolation=allow_extrapolation,
           allow_unlabelled=allow_unlabelled)
  provenance = {"composition": name, "lam": p.lam, "target": target,
                "sources": p.sources,
                "allow_extrapolation": bool(allow_extrapolation)}
  if p.unlabelled:
    provenance["unlabelled_inputs"] = p.unlabelled
  tree, manifest = merge_adapters(
      p.adapters, p.weights, space=space, task=p.adapters[0].manifest.task,
      language=target, provenance=provenance, **merge_kwargs)
  return Adapter(tree, manifest,
                 name=label or f"{name}[{target}, λ={p.lam:g}]")


# --- merging ----------------------------------------------------------------

def merge_adapters(adapters: Sequence[Adapter], weights: Sequence[float], *,
                   space: str = "factor", method: str = "linear",
                   output: Optional[str] = None, rank: Optional[int] = None,
                   density: float = 0.2, drop_rate: float = 0.9,
                   seed: int = 0, task: Optional[str] = None,
                   language: Optional[str] = None,
                   provenance: Optional[dict[str, Any]] = None
                   ) -> tuple[Tree, AdapterManifest]:
  """sum_i weights[i] * adapters[i] in `space`, with its manifest.

  space='factor': element-wise on the stored factors; only method='linear'.
  space='delta': on dW; method 'linear', 'ties' (density = kept fraction) or
    'dare' (drop_rate, seed); output 'lora' (rank, default the inputs' rank)
    or 'kron' (nearest Kronecker product) re-factorise, 'delta' returns the
    dW tree for `lta.adapters.deltas.merge_into_base`. The default output is the
    inputs' own kind.
  """
  if len(adapters) != len(weights) or not adapters:
    raise ValueError(f"merge_adapters needs as many weights as adapters (>0), "
                     f"got {len(adapters)} and {len(weights)}")
  _check_merge_options(space, method, output, density, drop_rate)
  compat.check_compatible(adapters, space)
  weights = [float(w) for w in weights]
  # Overflow is reported below, naming the inputs and weights.
  with np.errstate(over="ignore", invalid="ignore"):
    tree, config, output = _combine(adapters, weights, space, method, output,
                                    rank, density, drop_rate, seed)
  compat.check_finite(tree, "merging " + " + ".join(
      f"{w:g} {a.label}" for a, w in zip(adapters, weights)))
  first = adapters[0]
  record = dict(provenance or {})
  record.update({
      "method": method, "space": space, "output": output,
      "inputs": [{"name": a.label, "task": a.manifest.task,
                  "language": a.manifest.language,
                  "fingerprint": adapter_fingerprint(a.tree), "weight": w}
                 for a, w in zip(adapters, weights)],
  })
  if space == "delta":
    record["rank"] = config.rank if output == "lora" else None
    if method == "ties":
      record["density"] = density
    if method == "dare":
      record.update(drop_rate=drop_rate, seed=seed)
  manifest = AdapterManifest.for_tree(
      tree, config,
      base_model_fingerprint=first.manifest.base_model_fingerprint,
      base_model_name=first.manifest.base_model_name,
      task=task or first.manifest.task,
      language=language or first.manifest.language, provenance=record)
  return tree, manifest


def _combine(adapters, weights, space, method, output, rank, density,
             drop_rate, seed) -> tuple[Tree, Any, str]:
  """(tree, config, output) of `merge_adapters`, unchecked."""
  first = adapters[0]
  own = "lora" if first.config.kind == "lora" else "kron"
  if space == "factor":
    if method != "linear" or output not in (None, own):
      raise ConfigError(f"Factor space supports method='linear' with the "
                        f"inputs' own output only; got method={method!r}, "
                        f"output={output!r}")
    tree = weighted_sum([a.tree for a in adapters], weights)
    config = first.config
    output = own
  elif space == "delta":
    output = output or own
    if method == "linear" and output in ("lora", "kron"):
      if output == "kron" and first.config.kind != "krona":
        raise ConfigError("output='kron' needs Kronecker inputs")
      if output == "lora" and first.config.kind != "lora":
        raise ConfigError("output='lora' needs LoRA inputs; use 'kron' or "
                          "'delta'")
      tree, config = merge_methods.linear_lowrank(adapters, weights, output,
                                                  rank)
    else:
      deltas = merge_methods.combine_deltas(
          adapters, weights, method=method, density=density,
          drop_rate=drop_rate, seed=seed)
      tree, config = merge_methods.refactor_tree(deltas, first, output, rank)
  return tree, config, output


def _check_merge_options(space: str, method: str, output: Optional[str],
                         density: float, drop_rate: float) -> None:
  """Refuses an unknown space, method or output, or a ratio out of range."""
  for what, value, known in (("space", space, compat.SPACES),
                             ("method", method, merge_methods.METHODS)):
    if value not in known:
      raise ConfigError(f"{what}={value!r}{did_you_mean(value, known)}; "
                        f"expected one of {list(known)}")
  if output is not None and output not in merge_methods.OUTPUTS:
    raise ConfigError(f"output={output!r}; expected one of "
                      f"{list(merge_methods.OUTPUTS)} or None")
  if method == "ties" and not 0.0 < density <= 1.0:
    raise ConfigError(f"TIES density={density!r} must be in (0, 1]")
  if method == "dare" and not 0.0 <= drop_rate < 1.0:
    raise ConfigError(f"DARE drop_rate={drop_rate!r} must be in [0, 1)")
