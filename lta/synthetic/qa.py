"""A question-answering task in the synthetic world: the TyDi QA analogue.

Each XL-Sum document of the world gets one question about one of its
events, asked in every language: "who <verb> <object>?" (the answer is the
subject) or "<subject> <verb> what?" (the object). The answer is the noun as
it appears in the document, so it is a span of the context (SQuAD's
`answer_start` points at it), and the questioned (verb, object) or
(subject, verb) pair names one answer only. The questions are parallel:
the same document, event and slot in every language. Question words are
fresh pseudo-words of each language's own phonology, drawn from their own
seeded stream, so the world's lexicons and files do not change.

`write_qa_files` writes the SQuAD v1.1 JSON format of the TyDi QA GoldP
and XQuAD releases, one file per language and split, which
`lta_tasks.synthetic_qa` prepares as TFDS data.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Mapping

from lta.synthetic import grammar
from lta.synthetic import languages as languages_lib
from lta.synthetic import world as world_lib

FORMAT_VERSION = 1
SLOTS = ("subject", "object")  # what a question asks for
# A question is about an event among the first ones, so the answer survives
# truncation of a long input (the question comes first).
MAX_EVENT = 3
# TFDS split -> XL-Sum split whose documents the questions are about.
SPLITS = {"train": "train", "validation": "val", "test": "test"}


@dataclasses.dataclass(frozen=True)
class Question:
  """A question's content: which event of the document, which slot."""
  event: int
  slot: str


def _key(event: grammar.Event, slot: str) -> tuple:
  """What the question names; the asked-for noun is left out."""
  if slot == "subject":
    return (event.verb, event.present, event.object)
  return (event.subject, event.verb, event.present)


def _answer(event: grammar.Event, slot: str) -> int:
  return event.subject if slot == "subject" else event.object


def answerable(document: grammar.Document) -> list[Question]:
  """The questions about `document` that have exactly one answer."""
  out = []
  for i, event in enumerate(document[:MAX_EVENT]):
    for slot in SLOTS:
      answers = {_answer(e, slot) for e in document
                 if _key(e, slot) == _key(event, slot)}
      if len(answers) == 1:
        out.append(Question(i, slot))
  return out


def question_words(world: world_lib.WorldInfo) -> dict[str, dict[str, str]]:
  """code -> slot -> the romanized question word ("who", "what").

  Each language's own syllables; unique across the world's tokens and each
  other, so a question word also identifies its language.
  """
  used = set()
  for language in world.languages.values():
    used.update(t for t in language.roman.values())
    used.add(language.adposition)
    for key, stem in language.roman.items():
      if key.startswith("verb:"):
        used.update((stem + language.past_suffix,
                     stem + language.present_suffix))
  out = {}
  for spec in world.config.languages:
    # The lexicon's stream first: the same inventory as the language's words.
    phonology = languages_lib._Phonology(  # pylint: disable=protected-access
        languages_lib.seeded_rng(world.config.seed, "lexicon", spec.code))
    phonology.rng = languages_lib.seeded_rng(world.config.seed, "qa",
                                             spec.code)
    out[spec.code] = {}
    for slot in SLOTS:
      word = phonology.fresh(used, (1, 2))
      used.add(word)
      out[spec.code][slot] = word
  return out


def render_question(document: grammar.Document, question: Question,
                    language: languages_lib.Language,
                    words: Mapping[str, str]) -> str:
  event = document[question.event]
  asked = [language.surface(words[question.slot])]
  subject = (asked if question.slot == "subject"
             else [language.word("entity", event.subject)])
  obj = (asked if question.slot == "object"
         else [language.word("object", event.object)])
  verb = [language.verb_form(event.verb, event.present)]
  return " ".join(grammar._arrange(  # pylint: disable=protected-access
      language, subject, verb, obj, [])) + "?"


def answer_span(document: grammar.Document, question: Question,
                language: languages_lib.Language) -> tuple[str, int]:
  """(answer text, its character offset in the rendered document)."""
  event = document[question.event]
  category = "entity" if question.slot == "subject" else "object"
  text = language.word(category, _answer(event, question.slot))
  offset = sum(len(grammar.render_sentence(e, language)) + 1
               for e in document[:question.event])
  sentence = grammar.render_sentence(event, language)
  position = 0
  for token in sentence.split(" "):
    if token.rstrip(".") == text:
      return text, offset + position
    position += len(token) + 1
  raise AssertionError(f"{text!r} is not a word of {sentence!r}")


def choose_questions(world: world_lib.WorldInfo,
                     documents: Mapping[str, list[grammar.Document]]
                     ) -> dict[str, list[tuple[int, Question]]]:
  """TFDS split -> (document index, question): one per answerable document
  of `documents` (world_lib.xlsum_documents).

  The same in every language; seeded by the world seed and the split.
  """
  out = {}
  for split, xlsum_split in SPLITS.items():
    rng = languages_lib.seeded_rng(world.config.seed, "qa", xlsum_split)
    chosen = []
    for index, document in enumerate(documents[xlsum_split]):
      options = answerable(document)
      if options:
        chosen.append((index, options[int(rng.integers(len(options)))]))
    out[split] = chosen
  return out


def squad_file_name(code: str, split: str) -> str:
  return f"{code}-{split}.json"


def qa_examples(world: world_lib.WorldInfo, code: str, split: str,
                documents: list[grammar.Document],
                chosen: list[tuple[int, Question]],
                words: Mapping[str, str]) -> list[dict]:
  """One language's examples of `split` (about `documents`, that split's
  XL-Sum documents) as flat SQuAD records."""
  language = world.languages[code]
  if split == "train":
    size = (world.config.xlsum_train if language.spec.role == "source"
            else world.config.target_train)
    chosen = [(i, q) for i, q in chosen if i < size]
  out = []
  for index, question in chosen:
    document = documents[index]
    text, start = answer_span(document, question, language)
    out.append({
        "id": f"synthetic-qa-{code}-{split}-{index:06d}",
        "title": grammar.render_title(document, language),
        "context": grammar.render_document(document, language),
        "question": render_question(document, question, language, words),
        "answers": [{"text": text, "answer_start": start}]})
  return out


def write_qa_files(world: world_lib.WorldInfo, out_dir: str) -> dict[str, int]:
  """Writes <out_dir>/<code>-<split>.json (SQuAD v1.1) for every language
  and split; returns the number of questions per file name."""
  os.makedirs(out_dir, exist_ok=True)
  documents = world_lib.xlsum_documents(world.config)
  chosen = choose_questions(world, documents)
  words = question_words(world)
  counts = {}
  for code in world.languages:
    for split in SPLITS:
      examples = qa_examples(world, code, split, documents[SPLITS[split]],
                             chosen[split], words[code])
      data = {"version": f"synthetic-qa-{FORMAT_VERSION}", "data": [
          {"title": e["title"], "paragraphs": [
              {"context": e["context"], "qas": [
                  {"id": e["id"], "question": e["question"],
                   "answers": e["answers"]}]}]} for e in examples]}
      name = squad_file_name(code, split)
      with open(os.path.join(out_dir, name), "w", encoding="utf-8",
                newline="\n") as f:
        json.dump(data, f, ensure_ascii=False, indent=1)
        f.write("\n")
      counts[name] = len(examples)
  return counts
