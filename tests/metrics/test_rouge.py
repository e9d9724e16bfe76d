"""SentencePiece ROUGE and plain ROUGE against rouge-score and by hand."""

import collections

import numpy as np
import pytest
from rouge_score import rouge_scorer
import sentencepiece as spm

from lta.eval import metrics
from metrics_fixtures import read_jsonl

SUMMARIES = read_jsonl("summaries.jsonl")
TARGETS = [r["target"] for r in SUMMARIES]
PREDICTIONS = [r["prediction"] for r in SUMMARIES]


class PieceTokenizer:
  """Written here, independently of lta.eval.metrics."""

  def __init__(self, path):
    self.sp = spm.SentencePieceProcessor(model_file=path)

  def tokenize(self, text):
    return self.sp.encode(text, out_type=str)


def _ngrams(tokens, n):
  return collections.Counter(tuple(tokens[i:i + n])
                             for i in range(len(tokens) - n + 1))


def _f(overlap, n_pred, n_target):
  if not overlap:
    return 0.0
  p, r = overlap / n_pred, overlap / n_target
  return 100 * 2 * p * r / (p + r)


def _lcs(a, b):
  table = np.zeros((len(a) + 1, len(b) + 1), int)
  for i, x in enumerate(a):
    for j, y in enumerate(b):
      table[i + 1, j + 1] = (table[i, j] + 1 if x == y
                             else max(table[i, j + 1], table[i + 1, j]))
  return int(table[-1, -1])


def test_fixture_covers_non_latin_scripts():
  langs = {r["lang"] for r in SUMMARIES}
  assert {"bn", "ar", "zh", "ru", "hi", "mr", "ja", "th", "fa", "si"} <= langs


def test_rouge_spm_is_the_mean_of_per_example_rouge_score(spm_model_path):
  scorer = rouge_scorer.RougeScorer(list(metrics.ROUGE_TYPES),
                                    tokenizer=PieceTokenizer(spm_model_path))
  want = {k: [] for k in metrics.ROUGE_TYPES}
  for t, p in zip(TARGETS, PREDICTIONS):
    s = scorer.score(t, p)
    for k in want:
      want[k].append(100 * s[k].fmeasure)
  got = metrics.rouge_spm(TARGETS, PREDICTIONS, spm_model_path)
  per_example = metrics.rouge_spm_per_example(TARGETS, PREDICTIONS,
                                              spm_model_path)
  assert set(got) == {"rouge1", "rouge2", "rougeL"}
  for k in want:
    np.testing.assert_allclose(per_example[k], want[k], rtol=1e-12)
    np.testing.assert_allclose(got[k], np.mean(want[k]), rtol=1e-12)
  # Overlapping but different summaries: strictly between 0 and 100.
  assert 0 < got["rouge2"] < got["rouge1"] < 100


@pytest.mark.parametrize("index", range(len(SUMMARIES)))
def test_rouge_spm_equals_piece_overlap_counted_by_hand(spm_model_path,
                                                        index):
  sp = spm.SentencePieceProcessor(model_file=spm_model_path)
  t = sp.encode(TARGETS[index], out_type=str)
  p = sp.encode(PREDICTIONS[index], out_type=str)
  want = {
      "rouge1": _f(sum((_ngrams(t, 1) & _ngrams(p, 1)).values()), len(p),
                   len(t)),
      "rouge2": _f(sum((_ngrams(t, 2) & _ngrams(p, 2)).values()),
                   len(p) - 1, len(t) - 1),
      "rougeL": _f(_lcs(t, p), len(p), len(t)),
  }
  got = metrics.rouge_spm([TARGETS[index]], [PREDICTIONS[index]],
                          spm_model_path)
  for k in want:
    assert got[k] == pytest.approx(want[k], abs=1e-9), k


def test_rouge_spm_scores_scripts_that_plain_rouge_drops(spm_model_path):
  bn = next(r for r in SUMMARIES if r["lang"] == "bn")
  plain = metrics.rouge_plain([bn["target"]], [bn["prediction"]])
  piece = metrics.rouge_spm([bn["target"]], [bn["prediction"]],
                            spm_model_path)
  assert plain == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
  assert piece["rouge2"] > 20


def test_rouge_spm_extremes_and_byte_fallback(spm_model_path):
  text = "中国政府今天宣布了新的经济计划 🙂"
  assert metrics.rouge_spm([text], [text], spm_model_path) == {
      "rouge1": 100.0, "rouge2": 100.0, "rougeL": 100.0}
  # Rare characters become byte pieces and still match themselves.
  pieces = metrics.SentencePieceTokenizer(spm_model_path).tokenize(text)
  assert any(x.startswith("<0x") for x in pieces)
  # Byte pieces and a lone "▁" can match across scripts, so only texts with
  # disjoint pieces score 0.
  tok = metrics.SentencePieceTokenizer(spm_model_path)
  a, b = "Правительство", "government"
  assert not set(tok.tokenize(a)) & set(tok.tokenize(b))
  assert metrics.rouge_spm([a], [b], spm_model_path)["rouge1"] == 0.0
  assert metrics.rouge_spm(["anything"], [""], spm_model_path)["rouge1"] == 0


def test_rouge_plain_by_hand():
  got = metrics.rouge_plain(["The cat sat on the mat."],
                            ["the cat lay on the mat"])
  # Unigrams the,the,cat,on,mat: 5/6. Bigrams "the cat","on the","the mat":
  # 3/5. LCS "the cat on the mat": 5/6.
  assert got["rouge1"] == pytest.approx(100 * 5 / 6)
  assert got["rouge2"] == pytest.approx(60.0)
  assert got["rougeL"] == pytest.approx(100 * 5 / 6)


def test_rouge_plain_stems_like_xlsum_english():
  stemmed = metrics.rouge_plain(["floods forced families"],
                                ["flooding forces family"])
  unstemmed = metrics.rouge_plain(["floods forced families"],
                                  ["flooding forces family"],
                                  use_stemmer=False)
  assert stemmed["rouge1"] == pytest.approx(100.0)
  assert unstemmed["rouge1"] == 0.0
  english = [r for r in SUMMARIES if r["lang"] == "en"]
  scorer = rouge_scorer.RougeScorer(["rouge2"], use_stemmer=True)
  want = np.mean([100 * scorer.score(r["target"], r["prediction"])[
      "rouge2"].fmeasure for r in english])
  got = metrics.rouge_plain([r["target"] for r in english],
                            [r["prediction"] for r in english])
  assert got["rouge2"] == pytest.approx(want)


def test_multiple_references_take_the_best(spm_model_path):
  pred = PREDICTIONS[3]
  single = metrics.rouge_spm([TARGETS[3]], [pred], spm_model_path)
  multi = metrics.rouge_spm([[TARGETS[0], TARGETS[3]]], [pred],
                            spm_model_path)
  assert multi == single


def test_seqio_metric_fn_reads_the_path_lazily(spm_model_path):
  calls = []

  def provider():
    calls.append(1)
    return spm_model_path

  fn = metrics.make_rouge_spm_metric(provider)
  assert not calls
  assert fn(TARGETS, PREDICTIONS) == metrics.rouge_spm(
      TARGETS, PREDICTIONS, spm_model_path)
  assert metrics.make_rouge_spm_metric(spm_model_path, ["rouge2"])(
      TARGETS, PREDICTIONS).keys() == {"rouge2"}
  assert metrics.make_rouge_plain_metric()(
      ["a b c"], ["a b d"])["rouge2"] == pytest.approx(50.0)


def test_bad_inputs_are_named(spm_model_path, tmp_path):
  missing = str(tmp_path / "nope.model")
  with pytest.raises(FileNotFoundError, match="nope.model"):
    metrics.rouge_spm(["a"], ["a"], missing)
  with pytest.raises(ValueError, match="2 targets but 1 predictions"):
    metrics.rouge_spm(["a", "b"], ["a"], spm_model_path)
  with pytest.raises(ValueError, match="no examples"):
    metrics.rouge_plain([], [])
  with pytest.raises(TypeError, match="prediction 0"):
    metrics.rouge_plain(["a"], [None])
  with pytest.raises(TypeError, match="target 0"):
    metrics.rouge_plain([[]], ["a"])
