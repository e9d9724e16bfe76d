"""Exact scores for the synthetic headline task."""

import pytest

from lta.synthetic import grammar
from lta.synthetic import scoring


def test_right_content_in_the_wrong_language_is_told_apart(tiny_world):
  en, pt = tiny_world.languages["en"], tiny_world.languages["pt"]
  heads = [grammar.Headline(i, i, i) for i in range(4)]
  targets = [grammar.render_headline(h, pt) for h in heads]
  predictions = [
      targets[0],                                   # Right.
      grammar.render_headline(heads[1], en),        # Right content, in en.
      grammar.render_headline(heads[0], pt),        # Wrong content.
      "hora hora",                                  # Not a headline.
  ]
  scores = scoring.headline_scores(targets, predictions, "pt", tiny_world)
  assert scores == {"exact_match": 25.0, "content_any_language": 50.0}
  assert scoring.headline_scores(targets, targets, "pt",
                                 tiny_world.out_dir)["exact_match"] == 100.0


def test_bad_arguments(tiny_world):
  target = grammar.render_headline(grammar.Headline(0, 0, 0),
                                   tiny_world.languages["uk"])
  with pytest.raises(ValueError, match="1 targets but 2 predictions"):
    scoring.headline_scores([target], [target, target], "uk", tiny_world)
  with pytest.raises(ValueError, match="'zh' is not a language"):
    scoring.headline_scores([target], [target], "zh", tiny_world)
  with pytest.raises(ValueError, match="no predictions"):
    scoring.headline_scores([], [], "uk", tiny_world)
  with pytest.raises(ValueError, match="not a word of the language"):
    scoring.headline_scores([target], [target], "en", tiny_world)
