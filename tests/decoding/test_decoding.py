"""Decoders against brute force and a numpy reference on a toy trigram model.

The toy model keeps the previous token and a per-example bias in its cache,
plus a scalar step counter, so a beam search that gathers or expands the cache
wrongly, or mishandles scalar leaves, scores hypotheses differently from the
numpy reference.
"""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from lta.models import decoding
from lta import errors
from lta.models import contract as models

EOS = 1
PAD = 0
START = 0


class ToyModel:
  """logits = T[prev, cur] + bias[example] + P[step] + Q[cache index]."""

  def __init__(self, vocab=5, max_len=8, batch=3, seed=0, scale=2.0,
               eos_mode="random"):
    rs = np.random.RandomState(seed)
    self.vocab, self.batch = vocab, batch
    self.trigram = rs.normal(size=(vocab, vocab, vocab)) * scale
    self.bias = rs.normal(size=(batch, vocab))
    self.pos = rs.normal(size=(max_len, vocab))
    self.index_term = rs.normal(size=(max_len, vocab))
    # The model never emits padding.
    self.trigram[:, :, PAD] = -np.inf
    if eos_mode == "never":
      self.trigram[:, :, EOS] = -np.inf
    elif eos_mode == "after_3":
      # EOS is (almost surely) the argmax right after token 3, else impossible.
      self.trigram[:, :, EOS] = -np.inf
      self.trigram[:, 3, EOS] = 30.0

  def logits(self, b, prev, cur, step):
    return (self.trigram[prev, cur] + self.bias[b] + self.pos[step]
            + self.index_term[step])

  def log_probs(self, b, prev, cur, step):
    x = self.logits(b, prev, cur, step)
    m = np.max(x)
    return x - m - np.log(np.sum(np.exp(x - m)))

  def sequence_log_prob(self, b, tokens):
    total, prev, cur = 0.0, START, START
    for t, tok in enumerate(tokens):
      total += self.log_probs(b, prev, cur, t)[tok]
      prev, cur = cur, tok
    return total

  def initial_cache(self):
    return {
        "prev": jnp.full((self.batch,), START, jnp.int32),
        "bias": jnp.asarray(self.bias, jnp.float32),
        "index": jnp.array(0, jnp.int32),
    }

  def tokens_to_logits(self, ids, cache, step):
    cur = ids[:, 0]
    logits = (jnp.asarray(self.trigram, jnp.float32)[cache["prev"], cur]
              + cache["bias"]
              + jnp.asarray(self.pos, jnp.float32)[step]
              + jnp.asarray(self.index_term, jnp.float32)[cache["index"]])
    return logits, {"prev": cur, "bias": cache["bias"],
                    "index": cache["index"] + 1}


def numpy_greedy(model, max_len):
  out = np.zeros((model.batch, max_len), np.int32)
  for b in range(model.batch):
    prev, cur = START, START
    for t in range(max_len):
      tok = int(np.argmax(model.logits(b, prev, cur, t)))
      out[b, t] = tok
      if tok == EOS:
        break
      prev, cur = cur, tok
  return out


def brute_force(model, b, max_len, alpha, finish_at_max_length=True):
  """All finished hypotheses of example b, best first, as (ids, score).

  With finish_at_max_length=False (T5X's rule) only EOS-terminated
  hypotheses count, unless none is possible: then the max-length ones do.
  """
  words = [t for t in range(model.vocab) if t not in (PAD, EOS)]

  def hypotheses(length, lasts):
    for prefix in itertools.product(words, repeat=length - 1):
      for last in lasts:
        tokens = list(prefix) + [last]
        score = (model.sequence_log_prob(b, tokens)
                 / ((5.0 + length) / 6.0) ** alpha)
        yield tokens + [PAD] * (max_len - length), score

  hyps = [h for length in range(1, max_len + 1)
          for h in hypotheses(length, [EOS])]
  if finish_at_max_length or not any(np.isfinite(h[1]) for h in hyps):
    hyps += list(hypotheses(max_len, words))
  hyps = [h for h in hyps if np.isfinite(h[1])]
  hyps.sort(key=lambda h: -h[1])
  return hyps


def _greedy(model, max_len, **kw):
  return np.asarray(decoding.greedy_decode(
      model.tokens_to_logits, model.initial_cache(), model.batch, max_len,
      EOS, **kw))


# ---------------------------------------------------------------------------
# Greedy.
# ---------------------------------------------------------------------------


def test_greedy_matches_numpy_argmax_and_pads_after_eos():
  max_len = 8
  model = ToyModel(max_len=max_len, batch=4, seed=3)
  got = _greedy(model, max_len)
  want = numpy_greedy(model, max_len)
  np.testing.assert_array_equal(got, want)
  # The fixture must exercise early EOS: some row ends before max_len.
  ended_early = [b for b in range(model.batch) if EOS in got[b, :-1]]
  assert ended_early, got
  for b in ended_early:
    eos_at = list(got[b]).index(EOS)
    assert np.all(got[b, eos_at + 1:] == PAD)
    assert np.all(got[b, :eos_at] != PAD)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_first_argmax_is_argmax_with_ties_infinities_and_nans(dtype):
  rng = np.random.default_rng(0)
  x = rng.standard_normal((9, 1000)).astype(np.float32)
  x[1, [3, 500, 999]] = 50.0                  # ties: the first wins
  x[2] = 0.0                                  # all tied
  x[3] = -np.inf                              # all -inf
  x[4, 7] = np.inf
  x[4, 900] = np.inf
  x[5, [10, 20]] = np.nan                     # the first NaN wins
  x[6, 999] = 80.0                            # the last index
  x[7, [4, 40]] = [np.nan, np.inf]
  x[8] = rng.integers(0, 3, 1000)             # many exact ties
  x = jnp.asarray(x, dtype)
  want = np.asarray(jnp.argmax(x, axis=-1))
  np.testing.assert_array_equal(np.asarray(decoding.first_argmax(x)), want)
  np.testing.assert_array_equal(
      np.asarray(jax.jit(decoding.first_argmax)(x)), want)
  np.testing.assert_array_equal(want[:8], [want[0], 3, 0, 0, 7, 10, 999, 4])
  # Leading axes, as in the training loss's [batch, length, vocab].
  x3 = x[:8].reshape(2, 4, 1000)
  np.testing.assert_array_equal(np.asarray(decoding.first_argmax(x3)),
                                want[:8].reshape(2, 4))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_is_first_argmax_is_argmax_equals_index(dtype):
  # The training accuracy's test, on the rows of the argmax test above:
  # every index of every row, ties, infinities and NaNs included.
  rng = np.random.default_rng(2)
  x = rng.standard_normal((9, 50)).astype(np.float32)
  x[1, [3, 25, 49]] = 50.0
  x[2] = 0.0
  x[3] = -np.inf
  x[4, [7, 40]] = np.inf
  x[5, [10, 20]] = np.nan
  x[6, 49] = 80.0
  x[7, [4, 40]] = [np.nan, np.inf]
  x[8] = rng.integers(0, 3, 50)
  x = jnp.asarray(x, dtype)
  index = jnp.broadcast_to(jnp.arange(50, dtype=jnp.int32), (9, 50))
  rows = jnp.repeat(x[:, None], 50, axis=1)  # [9, 50 indices, 50]
  want = np.asarray(jnp.argmax(rows, axis=-1) == index)
  got = jax.jit(decoding.is_first_argmax)(rows, index)
  np.testing.assert_array_equal(np.asarray(got), want)
  assert want.sum(axis=1).tolist() == [1] * 9  # one hit per row


def test_greedy_log_prob_is_the_log_softmax_of_its_tokens():
  rng = np.random.default_rng(1)
  logits = jnp.asarray(rng.standard_normal((4, 300)) * 5, jnp.float32)
  tokens = jnp.asarray([0, 17, 299, 150])
  want = np.take_along_axis(np.asarray(jax.nn.log_softmax(logits)),
                            np.asarray(tokens)[:, None], -1)[:, 0]
  np.testing.assert_allclose(
      np.asarray(decoding._log_prob_of(logits, tokens)), want,  # pylint: disable=protected-access
      rtol=1e-6, atol=1e-5)


def test_greedy_runs_full_length_without_eos():
  model = ToyModel(max_len=6, seed=1, eos_mode="never")
  got = _greedy(model, 6)
  assert np.all(got != PAD) and np.all(got != EOS)
  np.testing.assert_array_equal(got, numpy_greedy(model, 6))


def test_greedy_under_jit_matches_eager():
  model = ToyModel(max_len=8, seed=4)
  fn = jax.jit(functools.partial(
      decoding.greedy_decode, model.tokens_to_logits, batch_size=model.batch,
      max_decode_len=8, eos_id=EOS))
  np.testing.assert_array_equal(np.asarray(fn(model.initial_cache())),
                                _greedy(model, 8))


def test_decoder_start_id_is_the_first_input():
  model = ToyModel(max_len=4, seed=5)
  got = np.asarray(decoding.greedy_decode(
      model.tokens_to_logits, model.initial_cache(), model.batch, 1, EOS,
      decoder_start_id=3))
  for b in range(model.batch):
    assert got[b, 0] == np.argmax(model.logits(b, START, 3, 0))


# ---------------------------------------------------------------------------
# Sampling.
# ---------------------------------------------------------------------------


def _sample(model, max_len, seed, **kw):
  ids, lp = decoding.temperature_sample(
      model.tokens_to_logits, model.initial_cache(), model.batch, max_len,
      EOS, jax.random.PRNGKey(seed), **kw)
  return np.asarray(ids), np.asarray(lp)


@pytest.mark.parametrize("kw", [dict(topk=1), dict(temperature=0.0)])
def test_topk1_and_zero_temperature_equal_greedy(kw):
  model = ToyModel(max_len=8, batch=4, seed=3)
  for seed in range(3):
    ids, lp = _sample(model, 8, seed, **kw)
    np.testing.assert_array_equal(ids, _greedy(model, 8))
    for b in range(model.batch):
      tokens = [t for t in ids[b] if t != PAD]
      np.testing.assert_allclose(lp[b], model.sequence_log_prob(b, tokens),
                                 rtol=1e-5, atol=1e-4)


def test_sampling_is_deterministic_given_rng_and_scores_its_tokens():
  model = ToyModel(max_len=8, batch=3, seed=6, scale=0.5)
  ids_a, lp_a = _sample(model, 8, 11)
  ids_b, lp_b = _sample(model, 8, 11)
  np.testing.assert_array_equal(ids_a, ids_b)
  np.testing.assert_array_equal(lp_a, lp_b)
  assert any(not np.array_equal(_sample(model, 8, s)[0], ids_a)
             for s in range(12, 16))
  for b in range(model.batch):
    row = list(ids_a[b])
    tokens = row[:row.index(EOS) + 1] if EOS in row else row
    assert all(t == PAD for t in row[len(tokens):])
    np.testing.assert_allclose(lp_a[b], model.sequence_log_prob(b, tokens),
                               rtol=1e-5, atol=1e-4)


# Fixed logits for the sampling-distribution tests: no ties, a spread of
# probabilities, and a nucleus boundary away from every topp used below.
SAMPLING_LOGITS = np.array(
    [1.9, 0.3, 2.6, -0.4, 1.2, 3.1, -1.5, 0.8, 2.2, -0.9], np.float64)
SAMPLES = 40000
# Chance that the chi-square check fails for a correct sampler, per setting.
FALSE_ALARM = 1e-4


def _softmax(x):
  e = np.exp(x - np.max(x))
  return e / e.sum()


def reference_distribution(logits, temperature, topk, topp):
  """T5X/HF target: temperature, then top-k, then nucleus, in float64.

  Top-k keeps logits >= the k-th largest. Top-p keeps a token iff the mass
  of the tokens strictly more likely than it is < topp, so the token that
  crosses topp is kept and tied tokens stand or fall together.
  """
  z = np.asarray(logits, np.float64) / temperature
  keep = np.ones(z.shape, bool)
  if topk:
    keep &= z >= np.sort(z)[-topk]
  if 0.0 < topp < 1.0:
    p = np.where(keep, np.exp(z - z[keep].max()), 0.0)
    p /= p.sum()
    mass_above = np.array([p[p > q].sum() for q in p])
    # Exactly at the boundary the answer would depend on rounding.
    assert np.min(np.abs(mass_above[keep] - topp)) > 1e-3
    keep &= mass_above < topp
  q = np.where(keep, np.exp(z - z[keep].max()), 0.0)
  return q / q.sum()


def _fixed_logits(ids, cache, step):
  del ids, step
  return cache["logits"], cache


@functools.lru_cache(maxsize=None)
def _first_token_sampler(topk, topp, rows=SAMPLES):
  """Jitted one-step sampler; the temperature is traced (one compile)."""
  return jax.jit(lambda cache, rng, temperature: decoding.temperature_sample(
      _fixed_logits, cache, rows, 1, EOS, rng, temperature=temperature,
      topk=topk, topp=topp)[0])


def _sample_first_tokens(temperature, topk, topp, rows=SAMPLES):
  """Token counts of `rows` one-step samples from SAMPLING_LOGITS."""
  logits = jnp.tile(jnp.asarray(SAMPLING_LOGITS, jnp.float32), (rows, 1))
  ids = _first_token_sampler(topk, topp, rows)(
      {"logits": logits}, jax.random.PRNGKey(0), temperature)
  return np.bincount(np.asarray(ids)[:, 0], minlength=len(SAMPLING_LOGITS))


@pytest.mark.parametrize("temperature,topk,topp", [
    (0.5, 0, 0.8), (2.0, 0, 0.8), (0.7, 0, 0.0), (2.0, 3, 0.0),
    (2.5, 8, 0.9)])
def test_sampling_matches_the_tempered_then_filtered_distribution(
    temperature, topk, topp):
  want = reference_distribution(SAMPLING_LOGITS, temperature, topk, topp)
  if topp:
    # The settings tell the orders apart: filtering the untempered logits
    # (the old bug) gives a distribution far from the target.
    kept_untempered = reference_distribution(SAMPLING_LOGITS, 1.0, topk,
                                             topp) > 0
    filtered_first = _softmax(np.where(kept_untempered,
                                       SAMPLING_LOGITS / temperature, -np.inf))
    assert 0.5 * np.abs(want - filtered_first).sum() > 0.05
  counts = _sample_first_tokens(temperature, topk, topp)
  # Filtered tokens are never drawn.
  assert np.all(counts[want == 0] == 0), (counts, want)
  # Pearson chi-square over the kept tokens, failing with prob FALSE_ALARM.
  support = want > 0
  expected = SAMPLES * want[support]
  assert expected.min() >= 20  # the chi-square approximation holds
  stat = np.sum((counts[support] - expected) ** 2 / expected)
  limit = scipy.stats.chi2.isf(FALSE_ALARM, df=support.sum() - 1)
  assert stat < limit, (stat, limit, counts / SAMPLES, want)


@pytest.mark.parametrize("field,value,message", [
    ("method", "beams", r"method='beams'.*did you mean 'beam'"),
    ("topp", 1.5, r"topp=1.5; expected in \[0, 1\]"),
    ("beam_size", 0, r"beam_size=0; expected >= 1"),
    ("alpha", -0.5, r"alpha=-0.5; expected >= 0")])
def test_decoding_config_names_the_bad_field(field, value, message):
  with pytest.raises(errors.ConfigError, match=message):
    models.DecodingConfig(**{field: value})


def test_sampling_rejects_bad_filters():
  model = ToyModel()
  with pytest.raises(ValueError, match="topp"):
    _sample(model, 4, 0, topp=1.5)
  with pytest.raises(ValueError, match="exceeds the vocabulary"):
    _sample(model, 4, 0, topk=99)


# ---------------------------------------------------------------------------
# Beam search.
# ---------------------------------------------------------------------------


def _beam(model, max_len, beam_size, alpha, jit=False, **kw):
  fn = functools.partial(
      decoding.beam_search, model.tokens_to_logits, batch_size=model.batch,
      max_decode_len=max_len, eos_id=EOS, beam_size=beam_size, alpha=alpha,
      **kw)
  if jit:
    fn = jax.jit(fn)
  ids, scores = fn(model.initial_cache())
  return np.asarray(ids), np.asarray(scores)


@pytest.mark.parametrize("alpha", [0.0, 0.6, 2.0])
@pytest.mark.parametrize("max_len,beam_size", [(3, 9), (4, 27)])
def test_beam_search_finds_the_exhaustive_top_k(alpha, max_len, beam_size):
  # With 3 non-EOS words, beam_size = 3**(max_len-1) holds every prefix, so
  # the search is exact and must equal brute force, best first.
  model = ToyModel(max_len=max_len, batch=2, seed=27, scale=1.5)
  ids, scores = _beam(model, max_len, beam_size, alpha, jit=True)
  for b in range(model.batch):
    want = brute_force(model, b, max_len, alpha)[:beam_size]
    np.testing.assert_array_equal(ids[b], np.array([h[0] for h in want]))
    np.testing.assert_allclose(scores[b], [h[1] for h in want], rtol=1e-5,
                               atol=1e-5)


def test_length_penalty_changes_the_winner():
  model = ToyModel(max_len=4, batch=2, seed=27, scale=1.5)
  alphas = (0.0, 0.6, 2.0)
  best = {a: [brute_force(model, b, 4, a)[0][0] for b in range(2)]
          for a in alphas}
  # The fixture exercises the penalty: each alpha has its own winners.
  assert best[0.0] != best[0.6] != best[2.0]
  for a in alphas:
    ids, _ = _beam(model, 4, 27, a)
    assert [list(ids[b, 0]) for b in range(2)] == best[a]


@pytest.mark.parametrize("finish_at_max_length", [True, False])
def test_both_finishing_rules_find_the_exhaustive_top_k(finish_at_max_length):
  # 3 words, max_len 3: 2 * 18 beams hold every candidate of every step, so
  # the search is exact under either rule. The T5X rule has only 13
  # EOS-terminated hypotheses: the other slots stay empty.
  max_len, beam_size, alpha = 3, 18, 0.6
  model = ToyModel(vocab=5, max_len=max_len, batch=2, seed=15, scale=1.5)
  ids, scores = _beam(model, max_len, beam_size, alpha, jit=True,
                      finish_at_max_length=finish_at_max_length)
  for b in range(model.batch):
    want = brute_force(model, b, max_len, alpha,
                       finish_at_max_length)[:beam_size]
    real = len(want)
    np.testing.assert_array_equal(ids[b, :real], [h[0] for h in want])
    np.testing.assert_allclose(scores[b, :real], [h[1] for h in want],
                               rtol=1e-5, atol=1e-5)
    assert np.all(ids[b, real:] == PAD)
    assert np.all(scores[b, real:] < decoding.NEG_INF / 2)
    # The fixture tells the rules apart: a hypothesis cut off at max_len
    # wins under lta's rule, an EOS-terminated one under T5X's.
    winners = {rule: brute_force(model, b, max_len, alpha, rule)[0][0]
               for rule in (True, False)}
    assert EOS not in winners[True] and EOS in winners[False]


class HandModel:
  """Tokens a=2, b=3. Step 0: P(a, b, EOS) = .6, .3, .1. Later steps:
  P(a) = .9 and P(b) = .1 whatever came before; EOS is impossible."""

  vocab, batch = 4, 1

  def initial_cache(self):
    return {"index": jnp.array(0, jnp.int32)}

  def tokens_to_logits(self, ids, cache, step):
    first = jnp.log(jnp.array([0.0, 0.1, 0.6, 0.3]))
    later = jnp.log(jnp.array([0.0, 0.0, 0.9, 0.1]))
    logits = jnp.where(step == 0, first, later)
    return jnp.tile(logits, (ids.shape[0], 1)), cache


def test_finishing_rules_by_hand():
  # Beam 2, alpha 0, max_len 3. Step 0 keeps a and b live and finishes
  # [EOS] (log .1). Steps 1-2 extend a and b; the best full-length paths are
  # a a a (.6 * .9 * .9 = .486) and b a a (.3 * .81 = .243).
  #   lta's rule: both beat [EOS] (.1)  -> [a a a], [b a a].
  #   T5X's rule: only [EOS] ended      -> [EOS], then an empty slot.
  model = HandModel()
  a, b = 2, 3
  ids, scores = _beam(model, 3, 2, 0.0)
  np.testing.assert_array_equal(ids[0], [[a, a, a], [b, a, a]])
  np.testing.assert_allclose(scores[0], np.log([0.486, 0.243]), rtol=1e-5)
  ids, scores = _beam(model, 3, 2, 0.0, finish_at_max_length=False)
  np.testing.assert_array_equal(ids[0], [[EOS, PAD, PAD], [PAD, PAD, PAD]])
  np.testing.assert_allclose(scores[0, 0], np.log(0.1), rtol=1e-5)
  assert scores[0, 1] < decoding.NEG_INF / 2


def test_t5x_rule_returns_max_length_hypotheses_when_none_ended():
  # EOS is impossible: T5X's rule falls back to the live hypotheses, which
  # then equal lta's (same ids, same length-penalised scores).
  max_len, beam_size, alpha = 3, 9, 0.6
  model = ToyModel(vocab=5, max_len=max_len, batch=2, seed=8,
                   eos_mode="never")
  t5x = _beam(model, max_len, beam_size, alpha, finish_at_max_length=False)
  lta = _beam(model, max_len, beam_size, alpha)
  np.testing.assert_array_equal(t5x[0], lta[0])
  np.testing.assert_allclose(t5x[1], lta[1], rtol=1e-6)
  for b in range(model.batch):
    want = brute_force(model, b, max_len, alpha, False)[:beam_size]
    np.testing.assert_array_equal(t5x[0][b], [h[0] for h in want])


def test_small_beam_scores_are_consistent_and_sorted():
  max_len, alpha = 6, 0.6
  model = ToyModel(max_len=max_len, batch=3, seed=9)
  ids, scores = _beam(model, max_len, 2, alpha)
  for b in range(model.batch):
    assert scores[b, 0] >= scores[b, 1]
    assert scores[b, 0] <= brute_force(model, b, max_len, alpha)[0][1] + 1e-5
    for k in range(2):
      row = list(ids[b, k])
      tokens = row[:row.index(EOS) + 1] if EOS in row else row
      assert all(t == PAD for t in row[len(tokens):])
      want = (model.sequence_log_prob(b, tokens)
              / decoding.length_penalty(alpha, len(tokens)))
      np.testing.assert_allclose(scores[b, k], want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("eos_mode", ["never", "after_3"])
def test_beam_size_one_equals_greedy(eos_mode):
  # Beam 1 equals greedy when no early EOS can outscore the greedy path: EOS
  # is impossible, or it is (near) certain exactly where greedy stops.
  max_len, alpha = 8, 0.6
  model = ToyModel(max_len=max_len, batch=4, seed=10, eos_mode=eos_mode)
  greedy = _greedy(model, max_len)
  if eos_mode == "after_3":
    assert any(EOS in row[:-1] for row in greedy)
  ids, scores = _beam(model, max_len, 1, alpha)
  np.testing.assert_array_equal(ids[:, 0], greedy)
  _, greedy_lp = _sample(model, max_len, 0, temperature=0.0)
  lengths = np.sum(greedy != PAD, axis=1)
  np.testing.assert_allclose(
      scores[:, 0], greedy_lp / decoding.length_penalty(alpha, lengths),
      rtol=1e-5)


def test_beam_search_rejects_bad_arguments():
  model = ToyModel()
  with pytest.raises(ValueError, match="alpha"):
    _beam(model, 4, 2, -0.5)
  with pytest.raises(ValueError, match="beam_size"):
    _beam(model, 4, 0, 0.6)


# ---------------------------------------------------------------------------
# Cache handling, errors and progress.
# ---------------------------------------------------------------------------


def test_cache_expansion_and_gather_follow_the_scalar_rule():
  cache = {"kv": jnp.arange(6).reshape(2, 3), "index": jnp.array(7)}
  expanded = decoding.expand_cache_to_beams(cache, 2)
  np.testing.assert_array_equal(expanded["kv"],
                                [[0, 1, 2], [0, 1, 2], [3, 4, 5], [3, 4, 5]])
  assert expanded["index"].shape == () and int(expanded["index"]) == 7
  gathered = decoding.gather_cache_beams(expanded, jnp.array([1, 1, 3, 2]))
  np.testing.assert_array_equal(gathered["kv"],
                                [[0, 1, 2], [0, 1, 2], [3, 4, 5], [3, 4, 5]])
  assert int(gathered["index"]) == 7


def test_cache_without_leading_batch_axis_is_rejected_by_path():
  model = ToyModel(batch=3)
  cache = dict(model.initial_cache(), bad=jnp.zeros((5, 2)))
  for decode in (decoding.greedy_decode, decoding.beam_search):
    with pytest.raises(ValueError, match=r"\['bad'\].*leading axis"):
      decode(model.tokens_to_logits, cache, 3, 4, EOS)


def test_wrong_logits_shape_is_rejected():
  def bad(ids, cache, step):
    return jnp.zeros((ids.shape[0], 2, 7)), cache
  with pytest.raises(ValueError, match="logits of shape"):
    decoding.greedy_decode(bad, {}, 2, 3, EOS)


def test_logits_with_a_length_axis_of_one_are_accepted():
  model = ToyModel(max_len=5, seed=2)
  def with_axis(ids, cache, step):
    logits, cache = model.tokens_to_logits(ids, cache, step)
    return logits[:, None, :], cache
  got = decoding.greedy_decode(with_axis, model.initial_cache(), model.batch,
                               5, EOS)
  np.testing.assert_array_equal(np.asarray(got), _greedy(model, 5))


@pytest.mark.parametrize("decoder", ["greedy", "beam"])
def test_progress_callback_reports_steps(decoder):
  model = ToyModel(max_len=10, seed=1, eos_mode="never")
  seen = []
  kw = dict(progress_fn=seen.append, progress_every=4)
  if decoder == "greedy":
    fn = functools.partial(decoding.greedy_decode, **kw)
  else:
    fn = functools.partial(decoding.beam_search, beam_size=2, **kw)
  jax.jit(lambda c: fn(model.tokens_to_logits, c, model.batch, 10, EOS))(
      model.initial_cache())
  jax.effects_barrier()
  assert sorted(seen) == [4, 8, 10]
