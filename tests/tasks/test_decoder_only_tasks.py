"""Decoder-only tasks and batches (lta.data.decoder_only, lta_tasks.decoder_only).

Read through `input_pipeline.get_dataset(..., architecture='decoder_only')`,
the path training takes, on the TFDS fixture data of the task tests.
"""

import json

import gin
import pytest
import seqio
import tensorflow as tf

from lta import errors
from lta.data import decoder_only
from lta.data import input_pipeline
from lta.data import vocab
from lta_tasks import decoder_only as decoder_tasks
from tests.tasks.conftest import FIXTURES

LENGTHS = {"inputs": 160, "targets": 32}


def _encode(text):
  return list(vocab.get_vocabulary().encode(text))


def _batches(name, lengths=LENGTHS, batch_size=2, split="train", **objective):
  with gin.unlock_config():
    for field, value in objective.items():
      gin.bind_parameter(f"lta.data.decoder_only.DecoderObjective.{field}",
                         value)
  ds = input_pipeline.get_dataset(
      name, lengths, batch_size, split=split, shuffle=False, num_epochs=1,
      shard=(0, 1), architecture="decoder_only")
  return list(input_pipeline.numpy_batches(ds))


def _xlsum_records():
  path = FIXTURES / "xlsum" / "english_train.jsonl"
  return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def _prompt_and_answer(record):
  prompt = decoder_only.PROMPTS["xlsum"].text.format(text=record["text"])
  return _encode(prompt), _encode(record["summary"]) + [vocab.EOS_ID]


def test_xlsum_prompt_is_one_sequence_with_loss_on_the_summary_only(tfds_dir):
  (batch,) = _batches("xlsum_prompt.en")
  assert set(batch) == {"decoder_input_tokens", "decoder_target_tokens",
                        "decoder_loss_weights"}
  for row, record in enumerate(_xlsum_records()):
    prompt, answer = _prompt_and_answer(record)
    n = len(prompt) + len(answer)
    assert n <= sum(LENGTHS.values()), "fixture must fit untruncated"
    targets = batch["decoder_target_tokens"][row]
    assert targets[:n].tolist() == prompt + answer
    assert not targets[n:].any()
    assert batch["decoder_input_tokens"][row].tolist() == (
        [0] + targets[:-1].tolist())
    weights = batch["decoder_loss_weights"][row]
    assert weights.tolist() == [0] * len(prompt) + [1] * len(answer) + [0] * (
        len(targets) - n)


def test_bidirectional_prefix_marks_the_prompt_and_first_answer_position(
    tfds_dir):
  (batch,) = _batches("xlsum_prompt.en", prefix_attention="bidirectional")
  for row, record in enumerate(_xlsum_records()):
    prompt, answer = _prompt_and_answer(record)
    causal = batch["decoder_causal_attention"][row]
    assert causal.tolist() == [1] * (len(prompt) + 1) + [0] * (
        len(causal) - len(prompt) - 1)
    # The loss still skips the prompt.
    weights = batch["decoder_loss_weights"][row]
    assert weights.nonzero()[0].tolist() == list(
        range(len(prompt), len(prompt) + len(answer)))


def test_packing_keeps_each_prompt_out_of_the_loss(tfds_dir):
  (batch,) = _batches("xlsum_prompt.en", lengths={"inputs": 256,
                                                  "targets": 64},
                      batch_size=1, pack=True)
  segments = batch["decoder_segment_ids"][0]
  records = _xlsum_records()
  assert segments.max() == len(records)  # Both examples share the row.
  for segment, record in zip(range(1, segments.max() + 1), records):
    prompt, answer = _prompt_and_answer(record)
    where = segments == segment
    assert batch["decoder_target_tokens"][0][where].tolist() == prompt + answer
    assert batch["decoder_positions"][0][where].tolist() == list(
        range(len(prompt) + len(answer)))
    assert batch["decoder_loss_weights"][0][where].tolist() == (
        [0] * len(prompt) + [1] * len(answer))
    # Each segment starts from 0, not from the previous segment's EOS.
    assert batch["decoder_input_tokens"][0][where][0] == 0


def test_tydiqa_prompt_holds_passage_and_question_and_keeps_all_answers(
    tfds_dir):
  task = seqio.get_mixture_or_task("tydiqa_goldp_prompt.en")
  qas = json.loads((FIXTURES / "tydiqa" / "tydiqa-goldp-v1.1-train.json")
                   .read_text("utf-8"))["data"]
  by_id = {qa["id"]: (p["context"], qa) for a in qas
           for p in a["paragraphs"] for qa in p["qas"]}
  examples = list(task.get_dataset({"inputs": 512, "targets": 32},
                                   split="train", shuffle=False)
                  .as_numpy_iterator())
  assert examples
  for ex in examples:
    context, qa = by_id[ex["id"].decode()]
    assert ex["inputs"].tolist() == _encode(
        decoder_only.PROMPTS["tydiqa_goldp"].text.format(
            context=context, question=qa["question"]))
    assert ex["targets"].tolist() == _encode(
        qa["answers"][0]["text"]) + [vocab.EOS_ID]
    assert task.postprocess_fn(None, example=ex, is_target=True) == [
        a["text"] for a in qa["answers"]]


def test_mc4_prefix_lm_rows_are_document_segments_split_within_budgets(
    tfds_dir):
  lengths = {"inputs": 6, "targets": 5}
  task = seqio.get_mixture_or_task("mc4_decoder_prefix_lm.en")
  examples = list(task.get_dataset(lengths, split="validation",
                                   shuffle=False, seed=3).as_numpy_iterator())
  assert examples
  for ex in examples:
    assert len(ex["inputs"]) <= 6 and 1 <= len(ex["targets"]) <= 5
    assert ex["targets"][-1] == vocab.EOS_ID and vocab.EOS_ID not in ex["inputs"]
  # Concatenated, a document's rows are its text: segments of 10 tokens.
  source = task.source.get_dataset("validation", shuffle=False)
  first = _encode(next(iter(source))["text"].numpy().decode())
  rows = [ex["inputs"].tolist() + ex["targets"][:-1].tolist()
          for ex in examples[:(len(first) + 9) // 10]]
  assert sum(rows, []) == first[:len(sum(rows, []))]
  assert all(len(r) == 10 for r in rows[:-1])


def test_split_point_covers_every_point_that_fits_both_budgets():
  docs = tf.data.Dataset.from_tensors({"targets": tf.range(1, 10)}).repeat(400)
  features = {"inputs": seqio.Feature(seqio.PassThroughVocabulary(99),
                                      add_eos=False),
              "targets": seqio.Feature(seqio.PassThroughVocabulary(99))}
  with seqio.utils.map_seed_manager(0):
    out = decoder_only.prefix_lm(docs, {"inputs": 6, "targets": 5}, features)
  # 9 tokens, inputs <= 6 and targets <= 4: k in {5, 6}, nothing else.
  ks = {len(ex["inputs"]) for ex in out.as_numpy_iterator()}
  assert ks == {5, 6}


def test_bad_objective_and_template_are_named():
  with pytest.raises(errors.ConfigError, match="did you mean 'causal'"):
    decoder_only.DecoderObjective(prefix_attention="casual")
  with pytest.raises(errors.ConfigError, match="'decoder_onyl'.*did you mean"):
    input_pipeline.feature_converter("decoder_onyl")
  with pytest.raises(errors.DataError, match=r"\['question'\]"):
    decoder_only.PROMPTS["tydiqa_goldp"].render(
        {"context": tf.constant("x"), "title": tf.constant("y")})


def test_every_language_has_decoder_only_tasks_and_zeroshot_mixtures():
  names = set(seqio.TaskRegistry.names())
  for family, twin in (("xlsum_prompt.", "xlsum."),
                       ("tydiqa_goldp_prompt.", "tydiqa_goldp."),
                       ("mc4_decoder_prefix_lm.", "mc4_prefix_lm.")):
    assert {n[len(family):] for n in names if n.startswith(family)} == {
        n[len(twin):] for n in names if n.startswith(twin)}
  mixture = seqio.get_mixture_or_task("xlsum_prompt_zeroshot")
  assert [t.name for t in mixture.tasks if "train" in t.splits] == [
      decoder_tasks.xlsum_task_name("en")]
