"""Greedy, temperature and beam-search decoding over a `tokens_to_logits` fn.

Every decoder here is a pure function of a callable

    tokens_to_logits(token_ids[batch, 1], cache, step_index)
        -> (logits[batch, vocab], new_cache)

and an initial cache (any pytree, e.g. a flax 'cache' collection). The caller
jits them, e.g. `jax.jit(functools.partial(greedy_decode, fn, ...))`; all
loops are `lax.while_loop`s and every size is static.

Conventions (shared with T5X):
  * Decoding starts from `decoder_start_id` (0 for T5); that token is not part
    of the output. It may be an int array (batch,) of per-row first inputs:
    a decoder-only model starts from each row's last prompt token. Outputs are `[..., max_decode_len]` int32 ids.
  * The EOS token is kept; every position after it is 0 (padding).
  * `step_index` is the scalar int32 position being generated (0-based), i.e.
    the position of the *input* token in the decoder sequence.

Cache rule for beam search: a leaf with `ndim == 0` (e.g. flax's scalar
`cache_index`) is shared by all beams and never expanded or gathered. Every
other leaf must have the batch as its leading axis; it is repeated
`beam_size` times along axis 0 (batch-major: row `b * beam_size + k` is beam
`k` of example `b`) and gathered along axis 0 when beams are reordered.
Caches with a leading layer axis (scanned layers) are not supported.

Sampling: the temperature divides the logits first; top-k, then top-p
(nucleus) filter the tempered distribution, as in T5X and HF. Boundaries:
top-k keeps every token whose logit is >= the k-th largest; top-p keeps a
token iff the mass of the tokens strictly more likely than it is < topp (the
token that crosses topp is kept, and so is every token tied with the last
one kept). T5X has the same rules; HF's top-p differs only at exact ties,
which it breaks by sort order.

Finished beams: with `finish_at_max_length=True` (the default) a hypothesis
finishes when it emits EOS or reaches `max_decode_len`, and both kinds
compete under the length penalty. With False (T5X's rule) only EOS ends a
hypothesis; the live hypotheses at `max_decode_len` are returned only for
an example where none emitted EOS. HF `generate(num_beams=k)` finishes at
the limit like the default, with two differences: its length penalty is
`length ** alpha` rather than GNMT's `((5 + length) / 6) ** alpha` (they
agree only at alpha = 0), and of a step's 2k candidates only the best k may
finish (lta and T5X finish every one of the 2k that ends).

Progress: every decoder takes an optional `progress_fn(step: int)`, called on
the host through `jax.debug.callback` every `progress_every` steps and at the
last step. It is off (None) by default, so jitted decodes carry no host
callbacks unless asked to.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Tuple

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

PyTree = Any
TokensToLogits = Callable[[jax.Array, PyTree, jax.Array],
                          Tuple[jax.Array, PyTree]]
ProgressFn = Callable[[int], None]

# Finite "minus infinity": sums of it stay far below any real log-probability
# without producing NaNs.
NEG_INF = -1.0e9
# Temperatures below this decode greedily (1/temperature would overflow).
MIN_TEMPERATURE = 1e-4


def length_penalty(alpha: float, length) -> jax.Array:
  """T5X/GNMT length penalty ((5 + length) / 6) ** alpha."""
  return jnp.power((5.0 + jnp.asarray(length, jnp.float32)) / 6.0, alpha)


# ----------------------------------------------------------------------------
# Shared helpers.
# ----------------------------------------------------------------------------


def _check_sizes(batch_size: int, max_decode_len: int):
  if batch_size <= 0:
    raise ValueError(f"batch_size must be positive, got {batch_size}")
  if max_decode_len <= 0:
    raise ValueError(f"max_decode_len must be positive, got {max_decode_len}")


def _check_cache(cache: PyTree, batch_size: int):
  """Every non-scalar cache leaf must lead with the batch axis."""
  leaves = jax.tree_util.tree_leaves_with_path(cache)
  for path, leaf in leaves:
    shape = np.shape(leaf)
    if shape and shape[0] != batch_size:
      raise ValueError(
          f"cache leaf {jax.tree_util.keystr(path)} has shape {shape}; "
          f"non-scalar cache leaves need the batch ({batch_size}) as their "
          "leading axis")


def _call(tokens_to_logits: TokensToLogits, tokens: jax.Array, cache: PyTree,
          step: jax.Array, rows: int) -> Tuple[jax.Array, PyTree]:
  """Calls the model on one token per row; returns float32 [rows, vocab]."""
  logits, new_cache = tokens_to_logits(tokens[:, None], cache, step)
  if logits.ndim == 3 and logits.shape[1] == 1:
    logits = logits[:, 0]
  if logits.ndim != 2 or logits.shape[0] != rows:
    raise ValueError(
        f"tokens_to_logits returned logits of shape {logits.shape}; expected "
        f"[{rows}, vocab] (or [{rows}, 1, vocab])")
  return logits.astype(jnp.float32), new_cache


def _start_tokens(decoder_start_id, batch_size: int) -> jax.Array:
  """(batch,) int32 first inputs from an int or a (batch,) array."""
  start = jnp.asarray(decoder_start_id, jnp.int32)
  if start.ndim and start.shape != (batch_size,):
    raise ValueError(f"decoder_start_id has shape {start.shape}; expected a "
                     f"scalar or ({batch_size},)")
  return jnp.broadcast_to(start, (batch_size,))


def _report_progress(progress_fn: Optional[ProgressFn], progress_every: int,
                     step: jax.Array, last: jax.Array):
  """Host callback with the number of finished steps, every N steps."""
  if progress_fn is None:
    return
  if progress_every <= 0:
    raise ValueError(f"progress_every must be positive, got {progress_every}")
  done = step + 1
  lax.cond((done % progress_every == 0) | last,
           lambda: jax.debug.callback(lambda s: progress_fn(int(s)), done),
           lambda: None)


def first_argmax(x: jax.Array) -> jax.Array:
  """`jnp.argmax(x, axis=-1)` (the first maximum; the first NaN if any) in
  two plain reductions, a max and a min of indices. XLA:CPU runs argmax's
  (value, index) reduction about 2.5x slower over a 250k vocabulary
  (BENCHMARKS.md)."""
  top = jnp.max(x, axis=-1, keepdims=True)  # NaN if any x is NaN
  index = lax.broadcasted_iota(jnp.int32, x.shape, x.ndim - 1)
  is_first = (x == top) | jnp.isnan(x)
  return jnp.min(jnp.where(is_first, index, x.shape[-1]), axis=-1)


def is_first_argmax(x: jax.Array, index: jax.Array) -> jax.Array:
  """`first_argmax(x) == index`, without materialising the argmax: `index`'s
  entry is a maximum (or NaN) and no earlier entry is. XLA:CPU fuses this
  into one pass over `x`; the argmax's index array over [8, 64, 250112]
  training logits made a 1-core LoRA step about 1.2x slower (BENCHMARKS.md).
  """
  top = jnp.max(x, axis=-1, keepdims=True)
  is_top = (x == top) | jnp.isnan(x)
  at_index = jnp.take_along_axis(is_top, index[..., None], axis=-1)[..., 0]
  earlier = lax.broadcasted_iota(jnp.int32, x.shape, x.ndim - 1) < (
      index[..., None])
  return at_index & ~jnp.any(is_top & earlier, axis=-1)


def _log_prob_of(logits: jax.Array, token: jax.Array) -> jax.Array:
  """log_softmax(logits)[token] per row, without the full log-softmax."""
  picked = jnp.take_along_axis(logits, token[:, None], axis=-1)[:, 0]
  return picked - jax.nn.logsumexp(logits, axis=-1)


# ----------------------------------------------------------------------------
# Greedy decoding and temperature sampling: one loop, two token selectors.
# ----------------------------------------------------------------------------


def _filter_logits(logits: jax.Array, topk: int, topp: float) -> jax.Array:
  """Masks all but the top-k tokens, then all outside the top-p nucleus.

  Boundary rules: see "Sampling" in the module docstring. `topp` of 0 or
  >= 1 does not filter.
  """
  if topk:
    kth = lax.top_k(logits, topk)[0][:, -1:]
    logits = jnp.where(logits < kth, -jnp.inf, logits)
  if 0.0 < topp < 1.0:
    sorted_logits = jnp.sort(logits, axis=-1)[:, ::-1]
    probs = jax.nn.softmax(sorted_logits, axis=-1)
    keep = (jnp.cumsum(probs, axis=-1) - probs) < topp
    cutoff = jnp.min(jnp.where(keep, sorted_logits, jnp.inf), axis=-1,
                     keepdims=True)
    logits = jnp.where(logits < cutoff, -jnp.inf, logits)
  return logits


def _decode_loop(tokens_to_logits: TokensToLogits, initial_cache: PyTree,
                 batch_size: int, max_decode_len: int, eos_id: int,
                 decoder_start_id: int,
                 select_fn: Callable[[jax.Array, jax.Array], jax.Array],
                 rng: jax.Array, progress_fn: Optional[ProgressFn],
                 progress_every: int) -> Tuple[jax.Array, jax.Array]:
  """Runs one token per step until every row has emitted EOS or is full.

  Returns ids [batch, max_decode_len] and the summed model log-probability
  (unmodified by temperature or filtering) of each row's tokens.
  """
  _check_sizes(batch_size, max_decode_len)
  _check_cache(initial_cache, batch_size)

  def cond_fn(state):
    step, _, _, _, ended, _, _ = state
    return (step < max_decode_len) & ~jnp.all(ended)

  def body_fn(state):
    step, token, seqs, cache, ended, log_prob, rng = state
    rng, step_rng = jax.random.split(rng)
    logits, cache = _call(tokens_to_logits, token, cache, step, batch_size)
    next_token = select_fn(logits, step_rng).astype(jnp.int32)
    token_log_prob = _log_prob_of(logits, next_token)
    next_token = jnp.where(ended, 0, next_token)
    log_prob = log_prob + jnp.where(ended, 0.0, token_log_prob)
    seqs = lax.dynamic_update_slice(seqs, next_token[:, None], (0, step))
    ended = ended | (next_token == eos_id)
    _report_progress(progress_fn, progress_every, step,
                     (step + 1 == max_decode_len) | jnp.all(ended))
    return step + 1, next_token, seqs, cache, ended, log_prob, rng

  init = (
      jnp.array(0, jnp.int32),
      _start_tokens(decoder_start_id, batch_size),
      jnp.zeros((batch_size, max_decode_len), jnp.int32),
      initial_cache,
      jnp.zeros((batch_size,), jnp.bool_),
      jnp.zeros((batch_size,), jnp.float32),
      rng,
  )
  _, _, seqs, _, _, log_prob, _ = lax.while_loop(cond_fn, body_fn, init)
  return seqs, log_prob


def greedy_decode(tokens_to_logits: TokensToLogits,
                  initial_cache: PyTree,
                  batch_size: int,
                  max_decode_len: int,
                  eos_id: int,
                  decoder_start_id: int = 0,
                  progress_fn: Optional[ProgressFn] = None,
                  progress_every: int = 16) -> jax.Array:
  """Argmax decoding. Returns ids [batch, max_decode_len], 0 after EOS."""
  seqs, _ = _decode_loop(
      tokens_to_logits, initial_cache, batch_size, max_decode_len, eos_id,
      decoder_start_id, lambda logits, _: first_argmax(logits),
      jax.random.PRNGKey(0), progress_fn, progress_every)
  return seqs


def temperature_sample(tokens_to_logits: TokensToLogits,
                       initial_cache: PyTree,
                       batch_size: int,
                       max_decode_len: int,
                       eos_id: int,
                       rng: jax.Array,
                       decoder_start_id: int = 0,
                       temperature: float = 1.0,
                       topk: int = 0,
                       topp: float = 0.0,
                       progress_fn: Optional[ProgressFn] = None,
                       progress_every: int = 16) -> Tuple[jax.Array, jax.Array]:
  """Samples from softmax(logits / temperature), optionally top-k / top-p.

  As in T5X and HF, the temperature comes first: top-k and top-p filter the
  tempered distribution (boundary rules: "Sampling" in the module
  docstring).

  Args:
    tokens_to_logits: see the module docstring.
    initial_cache: pytree whose non-scalar leaves lead with the batch.
    batch_size: rows to decode (one sample per row; tile the cache for more).
    max_decode_len: output length.
    eos_id: end-of-sequence id; later positions are 0.
    rng: a PRNG key; the result is deterministic given it.
    decoder_start_id: first input token.
    temperature: 0 (below MIN_TEMPERATURE) means greedy. May be traced.
    topk: if positive, sample among the k most likely tokens only.
    topp: if in (0, 1), sample from the smallest set of most likely tokens
      whose probability reaches topp (nucleus sampling). With topk as well,
      the nucleus is taken within the top k (HF's order; T5X allows only
      one of the two).
    progress_fn, progress_every: optional host progress callback.

  Returns:
    (ids [batch, max_decode_len], log_probs [batch]) where log_probs is the
    sum of the *model's* log-probabilities (before temperature and filtering)
    of the emitted tokens, EOS included.
  """
  if topk < 0:
    raise ValueError(f"topk must be >= 0, got {topk}")
  if not 0.0 <= topp <= 1.0:
    raise ValueError(f"topp must be in [0, 1], got {topp}")

  def select_fn(logits, step_rng):
    if topk and topk > logits.shape[-1]:
      raise ValueError(
          f"topk={topk} exceeds the vocabulary ({logits.shape[-1]})")
    t = jnp.asarray(temperature, jnp.float32)
    tempered = logits / jnp.maximum(t, MIN_TEMPERATURE)
    sampled = jax.random.categorical(
        step_rng, _filter_logits(tempered, topk, topp), axis=-1)
    return jnp.where(t < MIN_TEMPERATURE, first_argmax(logits), sampled)

  return _decode_loop(tokens_to_logits, initial_cache, batch_size,
                      max_decode_len, eos_id, decoder_start_id, select_fn, rng,
                      progress_fn, progress_every)


# ----------------------------------------------------------------------------
# Beam search.
# ----------------------------------------------------------------------------


def expand_cache_to_beams(cache: PyTree, beam_size: int) -> PyTree:
  """[batch, ...] -> [batch * beam_size, ...] for every non-scalar leaf."""
  return jax.tree_util.tree_map(
      lambda x: x if jnp.ndim(x) == 0 else jnp.repeat(x, beam_size, axis=0),
      cache)


def gather_cache_beams(cache: PyTree, flat_indices: jax.Array) -> PyTree:
  """Picks rows `flat_indices` (into batch * beam) of every non-scalar leaf."""
  return jax.tree_util.tree_map(
      lambda x: x if jnp.ndim(x) == 0 else jnp.take(x, flat_indices, axis=0),
      cache)


def _gather_beams(x: jax.Array, beam_indices: jax.Array) -> jax.Array:
  """x [batch, beams, ...], beam_indices [batch, new] -> [batch, new, ...]."""
  idx = beam_indices.reshape(beam_indices.shape + (1,) * (x.ndim - 2))
  return jnp.take_along_axis(x, idx, axis=1)


class _Beams(NamedTuple):
  """The beam-search loop's carry: beam_size live and finished hypotheses
  per example ([batch, beams, ...]) and the expanded cache."""
  step: jax.Array
  live_seqs: jax.Array
  live_log_probs: jax.Array
  live_tokens: jax.Array
  finished_seqs: jax.Array
  finished_scores: jax.Array
  finished_flags: jax.Array
  cache: PyTree


def _initial_beams(initial_cache: PyTree, batch: int, beams: int,
                   length: int, decoder_start_id: int) -> _Beams:
  return _Beams(
      step=jnp.array(0, jnp.int32),
      live_seqs=jnp.zeros((batch, beams, length), jnp.int32),
      # Only beam 0 is real at the start; the others are placeholders.
      live_log_probs=jnp.tile(
          jnp.array([0.0] + [NEG_INF] * (beams - 1), jnp.float32),
          (batch, 1)),
      live_tokens=jnp.broadcast_to(
          _start_tokens(decoder_start_id, batch)[:, None], (batch, beams)),
      finished_seqs=jnp.zeros((batch, beams, length), jnp.int32),
      finished_scores=jnp.full((batch, beams), NEG_INF, jnp.float32),
      finished_flags=jnp.zeros((batch, beams), jnp.bool_),
      cache=expand_cache_to_beams(initial_cache, beams),
  )


def _top_extensions(logits: jax.Array, state: _Beams, candidates: int):
  """The best `candidates` one-token extensions of the live hypotheses.

  Returns their log-probabilities, parent beams, tokens and sequences
  ([batch, candidates, ...]).
  """
  batch, beams = state.live_log_probs.shape
  vocab = logits.shape[-1]
  log_probs = (jax.nn.log_softmax(logits).reshape(batch, beams, vocab)
               + state.live_log_probs[:, :, None])
  top_log_probs, top_flat = lax.top_k(
      log_probs.reshape(batch, beams * vocab), min(candidates, beams * vocab))
  parent = top_flat // vocab
  tokens = (top_flat % vocab).astype(jnp.int32)
  seqs = _gather_beams(state.live_seqs, parent)
  seqs = lax.dynamic_update_slice(seqs, tokens[:, :, None],
                                  (0, 0, state.step))
  return top_log_probs, parent, tokens, seqs


def _merge_finished(state: _Beams, scores: jax.Array, seqs: jax.Array,
                    ends: jax.Array):
  """The best beam_size of the finished set and the extensions that ended."""
  beams = state.finished_scores.shape[1]
  all_scores = jnp.concatenate([state.finished_scores, scores], axis=1)
  all_seqs = jnp.concatenate(
      [state.finished_seqs, jnp.where(ends[:, :, None], seqs, 0)], axis=1)
  all_flags = jnp.concatenate([state.finished_flags, ends], axis=1)
  finished_scores, keep = lax.top_k(all_scores, beams)
  return (_gather_beams(all_seqs, keep), finished_scores,
          jnp.take_along_axis(all_flags, keep, axis=1))


def _beam_step(state: _Beams, tokens_to_logits: TokensToLogits, *,
               length: int, eos_id: int, alpha: float,
               finish_at_max_length: bool) -> _Beams:
  """Extends every live hypothesis by one token and sorts the extensions
  into the live set (those that did not end) and the finished set."""
  batch, beams = state.live_log_probs.shape
  logits, cache = _call(tokens_to_logits, state.live_tokens.reshape(-1),
                        state.cache, state.step, batch * beams)
  top_log_probs, parent, tokens, seqs = _top_extensions(logits, state,
                                                        2 * beams)
  # Extensions of NEG_INF placeholder beams are not real hypotheses.
  valid = top_log_probs > NEG_INF / 2
  ends = valid & (tokens == eos_id)
  if finish_at_max_length:
    ends = ends | (valid & (state.step == length - 1))

  # Live set: the best extensions that did not end.
  live_cand = jnp.where(ends | ~valid, NEG_INF, top_log_probs)
  live_log_probs, pick = lax.top_k(live_cand, beams)
  live_parent = jnp.take_along_axis(parent, pick, axis=1)
  flat_parent = (jnp.arange(batch)[:, None] * beams + live_parent).reshape(-1)

  new_scores = jnp.where(
      ends, top_log_probs / length_penalty(alpha, state.step + 1), NEG_INF)
  finished_seqs, finished_scores, finished_flags = _merge_finished(
      state, new_scores, seqs, ends)
  return _Beams(
      step=state.step + 1, live_seqs=_gather_beams(seqs, pick),
      live_log_probs=live_log_probs,
      live_tokens=jnp.take_along_axis(tokens, pick, axis=1),
      finished_seqs=finished_seqs, finished_scores=finished_scores,
      finished_flags=finished_flags,
      cache=gather_cache_beams(cache, flat_parent))


def _live_where_none_finished(state: _Beams, best_possible_penalty):
  """T5X's rule: an example with no finished hypothesis returns its live
  ones, scored with the same formula.

  The loop only stops early once every example has finished hypotheses,
  so an example with none ran to max_decode_len: its live set is full.
  """
  none_finished = ~jnp.any(state.finished_flags, axis=1)
  live_scores = jnp.where(state.live_log_probs > NEG_INF / 2,
                          state.live_log_probs / best_possible_penalty,
                          NEG_INF)
  live_seqs = jnp.where((live_scores > NEG_INF / 2)[:, :, None],
                        state.live_seqs, 0)
  return (jnp.where(none_finished[:, None, None], live_seqs,
                    state.finished_seqs),
          jnp.where(none_finished[:, None], live_scores,
                    state.finished_scores))


def beam_search(tokens_to_logits: TokensToLogits,
                initial_cache: PyTree,
                batch_size: int,
                max_decode_len: int,
                eos_id: int,
                beam_size: int = 4,
                alpha: float = 0.6,
                decoder_start_id: int = 0,
                finish_at_max_length: bool = True,
                progress_fn: Optional[ProgressFn] = None,
                progress_every: int = 16) -> Tuple[jax.Array, jax.Array]:
  """Beam search with the T5X length penalty.

  A finished hypothesis of `length` tokens (EOS included) scores
  `log_prob / length_penalty(alpha, length)`. Which hypotheses count as
  finished:
    * `finish_at_max_length=True` (lta's default): those that emit EOS, and
      those that reach `max_decode_len` without it, scored with the same
      formula, so a hypothesis cut off at the limit competes with ones that
      ended. HF finishes at the limit too (see the module docstring).
    * `finish_at_max_length=False` (T5X's rule): only those that emit EOS.
      An example none of whose hypotheses emitted EOS returns its live
      hypotheses at `max_decode_len` instead, scored with the same formula.
  Each step keeps the top 2*beam_size extensions, so beam_size live
  hypotheses survive even if beam_size of them end. The search stops early
  once every example has beam_size finished hypotheses that no live one can
  still beat; with `alpha >= 0` the bound
  `live_log_prob / length_penalty(max_decode_len)` is exact.

  Returns:
    ids [batch, beam_size, max_decode_len] and scores [batch, beam_size],
    best first (T5X returns them best last). If fewer than beam_size
    hypotheses exist, the leftover slots score about NEG_INF and hold zeros.
  """
  _check_sizes(batch_size, max_decode_len)
  if beam_size <= 0:
    raise ValueError(f"beam_size must be positive, got {beam_size}")
  if alpha < 0:
    raise ValueError(f"alpha must be >= 0 (early stopping relies on it), "
                     f"got {alpha}")
  _check_cache(initial_cache, batch_size)
  length = max_decode_len
  best_possible_penalty = length_penalty(alpha, length)

  def cond_fn(state: _Beams):
    best_live = state.live_log_probs[:, 0] / best_possible_penalty
    done = (jnp.all(state.finished_flags, axis=1)
            & (jnp.min(state.finished_scores, axis=1) > best_live))
    return (state.step < length) & ~jnp.all(done)

  def body_fn(state: _Beams):
    new = _beam_step(state, tokens_to_logits, length=length, eos_id=eos_id,
                     alpha=alpha, finish_at_max_length=finish_at_max_length)
    _report_progress(progress_fn, progress_every, state.step,
                     state.step + 1 == length)
    return new

  final = lax.while_loop(cond_fn, body_fn, _initial_beams(
      initial_cache, batch_size, beam_size, length, decoder_start_id))
  if not finish_at_max_length:
    return _live_where_none_finished(final, best_possible_penalty)
  return final.finished_seqs, final.finished_scores


def decode_by_method(config, rng: Optional[jax.Array], **common) -> jax.Array:
  """Ids [batch, max_decode_len] by `config.method` (a DecodingConfig):
  greedy, the top beam, or a sample; `common` is what every method takes."""
  if config.method == "greedy":
    return greedy_decode(**common)
  if config.method == "beam":
    ids, _ = beam_search(
        beam_size=config.beam_size, alpha=config.alpha,
        finish_at_max_length=config.finish_at_max_length, **common)
    return ids[:, 0]
  if rng is None:
    raise ValueError("DecodingConfig.method='sample' needs an rng.")
  ids, _ = temperature_sample(
      rng=rng, temperature=config.temperature, topk=config.topk,
      topp=config.topp, **common)
  return ids
