"""SQuAD F1/EM against the official v1.1 definition and hand-computed cases."""

import collections
import re
import string

import pytest

from lta.eval import metrics
from tests.metrics import metrics_fixtures


# The official SQuAD v1.1 evaluation, re-implemented from its definition.
def official_normalize(s):
  s = s.lower()
  s = "".join(ch for ch in s if ch not in set(string.punctuation))
  s = re.sub(r"\b(a|an|the)\b", " ", s)
  return " ".join(s.split())


def official_f1(prediction, truth):
  p = official_normalize(prediction).split()
  t = official_normalize(truth).split()
  same = sum((collections.Counter(p) & collections.Counter(t)).values())
  if same == 0:
    return 0
  precision, recall = same / len(p), same / len(t)
  return 2 * precision * recall / (precision + recall)


def official_em(prediction, truth):
  return official_normalize(prediction) == official_normalize(truth)


def official_evaluate(targets, predictions):
  f1 = em = 0.0
  for answers, pred in zip(targets, predictions):
    em += max(official_em(pred, a) for a in answers)
    f1 += max(official_f1(pred, a) for a in answers)
  n = len(predictions)
  return {"em": 100 * em / n, "f1": 100 * f1 / n}


CASES = [
    (["Eiffel Tower in Paris"], "the Eiffel Tower"),
    (["paris"], "Paris!"),
    (["Paris", "the city of Paris"], "city of Paris"),
    (["Москва"], "Москва, Россия"),
    (["১৯৭১ সালে"], "১৯৭১ সালে।"),
    (["ঢাকা"], "ঢাকা।"),
    (["北京"], "北京市"),
    (["القاهرة"], "مدينة القاهرة"),
    (["Helsinki"], "Helsingissä"),
    (["Jakarta", "kota Jakarta"], "Jakarta"),
    (["서울"], "서울 특별시"),
    (["1969"], ""),
    (["a"], "an"),
]


def test_matches_the_official_formula_on_multilingual_cases():
  targets = [c[0] for c in CASES]
  predictions = [c[1] for c in CASES]
  got = metrics.squad_f1_em(targets, predictions)
  want = official_evaluate(targets, predictions)
  assert got["f1"] == pytest.approx(want["f1"], abs=1e-9)
  assert got["em"] == pytest.approx(want["em"], abs=1e-9)
  per = metrics.squad_per_example(targets, predictions)
  for i, (answers, pred) in enumerate(CASES):
    assert per["f1"][i] == pytest.approx(
        100 * max(official_f1(pred, a) for a in answers))
    assert per["em"][i] == 100 * max(official_em(pred, a) for a in answers)


@pytest.mark.parametrize("answers,prediction,f1,em", [
    # pred {eiffel, tower}, gold {eiffel, tower, in, paris}: P=1, R=1/2.
    (["Eiffel Tower in Paris"], "the Eiffel Tower", 200 / 3, 0),
    (["paris"], "Paris!", 100, 100),
    # Articles drop, so "the city of Paris" matches exactly.
    (["Paris", "the city of Paris"], "city of Paris", 100, 100),
    # The comma goes; pred {москва, россия}: P=1/2, R=1.
    (["Москва"], "Москва, Россия", 200 / 3, 0),
    # The Bengali danda is not ASCII punctuation: the official rule keeps it.
    (["ঢাকা"], "ঢাকা।", 0, 0),
    # No spaces in Chinese: one token each, so no partial credit.
    (["北京"], "北京市", 0, 0),
    (["1969"], "", 0, 0),
    # Both normalise to "": exact match, but SQuAD v1.1 F1 is 0.
    (["a"], "an", 0, 100),
])
def test_hand_computed(answers, prediction, f1, em):
  got = metrics.squad_f1_em([answers], [prediction])
  assert got["f1"] == pytest.approx(f1)
  assert got["em"] == em


def test_unicode_punctuation_option_strips_danda_and_cjk_marks():
  got = metrics.squad_f1_em([["ঢাকা"], ["北京"]], ["ঢাকা।", "北京。"],
                            unicode_punctuation=True)
  assert got == {"f1": 100.0, "em": 100.0}
  assert metrics.normalize_answer("«Привет», мир!", True) == "привет мир"


def test_single_string_target_and_seqio_fn():
  assert metrics.squad_metric(["Paris"], ["paris"]) == {"f1": 100.0,
                                                        "em": 100.0}


def test_bad_inputs():
  with pytest.raises(ValueError, match="1 targets but 2 predictions"):
    metrics.squad_f1_em([["a"]], ["a", "b"])
  with pytest.raises(TypeError, match="target 0"):
    metrics.squad_f1_em([[]], ["a"])


def test_equals_the_reference_library_in_the_eleven_xquad_languages():
  """transformers' port of the official SQuAD evaluation scored these pairs
  (tests/fixtures/make_squad_metric_fixture.py, in the HF peer env)."""
  rows = metrics_fixtures.read_jsonl("squad_reference.jsonl")
  assert {r["lang"] for r in rows} == {"ar", "de", "el", "en", "es", "hi",
                                       "ru", "th", "tr", "vi", "zh"}
  per = metrics.squad_per_example([r["answers"] for r in rows],
                                  [r["prediction"] for r in rows])
  for i, row in enumerate(rows):
    assert per["f1"][i] == pytest.approx(row["f1"], abs=1e-9), row
    assert per["em"][i] == row["em"], row
