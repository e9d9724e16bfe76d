"""The world's QA task (lta.synthetic.qa): spans, parallel, deterministic."""

import dataclasses
import json

import pytest

from lta.synthetic import grammar
from lta.synthetic import qa
from lta.synthetic import world as world_lib


def _read(directory, code, split):
  data = json.loads((directory / qa.squad_file_name(code, split)).read_text(
      encoding="utf-8"))
  return [(p["context"], q) for article in data["data"]
          for p in article["paragraphs"] for q in p["qas"]]


@pytest.fixture(scope="module")
def qa_dir(tiny_world, tmp_path_factory):
  out = tmp_path_factory.mktemp("qa")
  counts = qa.write_qa_files(tiny_world, str(out))
  assert len(counts) == len(tiny_world.languages) * len(qa.SPLITS)
  return out


def test_every_answer_is_a_word_of_its_document_in_every_language(
    tiny_world, qa_dir):
  for code, language in tiny_world.languages.items():
    meanings = language.token_meanings()
    for split in qa.SPLITS:
      examples = _read(qa_dir, code, split)
      assert examples, (code, split)
      for context, q in examples:
        (answer,) = q["answers"]
        start, text = answer["answer_start"], answer["text"]
        assert context[start:start + len(text)] == text
        assert start == 0 or context[start - 1] == " "
        assert context[start + len(text)] in " ."
        assert meanings[text][0] in ("entity", "object")
        assert q["question"].endswith("?")
        assert grammar.parse_document(context, language)


def test_questions_are_parallel_and_distinct_across_languages(tiny_world,
                                                              qa_dir):
  by_language = {code: _read(qa_dir, code, "test")
                 for code in tiny_world.languages}
  counts = {len(v) for v in by_language.values()}
  assert len(counts) == 1  # the same questions in every language
  for i in range(counts.pop()):
    meanings = {tiny_world.languages[c].token_meanings()[
        by_language[c][i][1]["answers"][0]["text"]]
                for c in tiny_world.languages}
    assert len(meanings) == 1  # the same answer concept
    questions = [by_language[c][i][1]["question"] for c in by_language]
    assert len(set(questions)) == len(questions)
  words = qa.question_words(tiny_world)
  flat = [w for by_slot in words.values() for w in by_slot.values()]
  assert len(set(flat)) == len(flat)
  for language in tiny_world.languages.values():
    assert not set(flat) & set(language.token_meanings())


def test_deterministic_per_seed(tiny_world, qa_dir, tmp_path):
  again = tmp_path / "again"
  qa.write_qa_files(world_lib.load_world(tiny_world.out_dir), str(again))
  for path in qa_dir.iterdir():
    assert (again / path.name).read_bytes() == path.read_bytes()
  other_config = dataclasses.replace(tiny_world.config, seed=1)
  other = world_lib.generate_world(str(tmp_path / "world1"), other_config)
  qa.write_qa_files(other, str(tmp_path / "qa1"))
  assert ((tmp_path / "qa1" / "en-test.json").read_bytes()
          != (qa_dir / "en-test.json").read_bytes())


def test_a_question_with_two_answers_is_never_asked():
  twice = grammar.Event(subject=1, verb=2, object=3)
  other_subject = grammar.Event(subject=4, verb=2, object=3)
  document = (twice, other_subject, grammar.Event(5, 2, 6))
  questions = qa.answerable(document)
  assert qa.Question(0, "subject") not in questions
  assert qa.Question(1, "subject") not in questions
  assert qa.Question(0, "object") in questions
  assert qa.Question(2, "subject") in questions
  # Only the first MAX_EVENT events are asked about.
  long = tuple(grammar.Event(i, i, i) for i in range(qa.MAX_EVENT + 2))
  assert {q.event for q in qa.answerable(long)} == set(range(qa.MAX_EVENT))


def test_target_training_split_is_the_placeholder_size(tiny_world, qa_dir):
  config = tiny_world.config
  for code, language in tiny_world.languages.items():
    n = len(_read(qa_dir, code, "train"))
    limit = (config.xlsum_train if language.spec.role == "source"
             else config.target_train)
    assert 0 < n <= limit
