"""synthetic_qa.<lang>: the world's SQuAD files as TFDS data and tasks."""

import json

import pytest
import seqio

from lta import errors
from lta.data import decoder_only
from lta.data import vocab
from lta.synthetic import qa
from lta.synthetic import world as world_lib
from lta_tasks import synthetic_qa

LENGTHS = {"inputs": 256, "targets": 16}
LANGS = ("en", "fa")  # Latin, and Armenian script


@pytest.fixture(scope="module")
def qa_files(tmp_path_factory):
  world = world_lib.generate_world(str(tmp_path_factory.mktemp("world")),
                                   world_lib.preset("tiny"))
  out = tmp_path_factory.mktemp("qa")
  qa.write_qa_files(world, str(out))
  return out


@pytest.fixture(scope="module")
def qa_data_dir(qa_files, tmp_path_factory):
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  synthetic_qa.prepare(LANGS, data_dir, str(qa_files))
  return data_dir


@pytest.fixture
def qa_dir(qa_data_dir):
  seqio.set_tfds_data_dir_override(qa_data_dir)
  yield qa_data_dir
  seqio.set_tfds_data_dir_override(None)


def _qas(qa_files, lang, split):
  data = json.loads((qa_files / qa.squad_file_name(lang, split)).read_text(
      encoding="utf-8"))["data"]
  return {q["id"]: (q, p["context"]) for a in data for p in a["paragraphs"]
          for q in p["qas"]}


def _encode(text):
  return list(vocab.get_vocabulary().encode(text)) + [vocab.EOS_ID]


@pytest.mark.parametrize("lang, split", [("en", "train"), ("fa", "test")])
def test_task_reads_every_question_of_the_world(qa_dir, qa_files, lang,
                                                split):
  task = seqio.get_mixture_or_task(synthetic_qa.task_name(lang))
  # One split per case: each dataset costs seconds on 2 cores.
  examples = list(task.get_dataset(LENGTHS, split=split, shuffle=False)
                  .as_numpy_iterator())
  qas = _qas(qa_files, lang, split)
  assert sorted(ex["id"].decode() for ex in examples) == sorted(qas)
  for ex in examples:
    q, context = qas[ex["id"].decode()]
    assert ex["inputs"].tolist() == _encode(
        f"question: {q['question']} context: {context}")
    assert ex["targets"].tolist() == _encode(q["answers"][0]["text"])
  target = task.postprocess_fn("", example=ex, is_target=True)
  assert target == [q["answers"][0]["text"]]
  (metric,) = task.metric_fns
  assert metric([target], [f" {target[0]} "]) == {"f1": 100.0, "em": 100.0}


def test_decoder_only_twin_asks_the_tydiqa_prompt(qa_dir, qa_files):
  task = seqio.get_mixture_or_task(synthetic_qa.prompt_task_name("en"))
  ex = next(task.get_dataset(LENGTHS, split="test", shuffle=False)
            .as_numpy_iterator())
  q, context = _qas(qa_files, "en", "test")[ex["id"].decode()]
  prompt = decoder_only.PROMPTS["tydiqa_goldp"].render(
      {"context": context, "question": q["question"]})
  # SentencePiece reads the prompt's newlines as spaces.
  assert vocab.get_vocabulary().decode(ex["inputs"].tolist()) == " ".join(
      prompt.numpy().decode().split())


def test_missing_file_and_unknown_language_are_named(qa_files, tmp_path):
  with pytest.raises(errors.ConfigError, match="did you mean 'fa'"):
    synthetic_qa.prepare(["faa"], str(tmp_path), str(qa_files))
  with pytest.raises(errors.MissingFileError, match="en-train.json"):
    synthetic_qa.prepare(["en"], str(tmp_path / "tfds"),
                         str(tmp_path))
