"""`lta eval` as 2 real processes on localhost writes what 1 process writes.

XL-Sum English in the real TFDS format (built by lta_tasks.xlsum_builder
from jsonl written here), the tiny HF base model and its vocabulary. 5
test examples in batches of 2 make 3 batches: process 0 decodes 2, process
1 decodes 1 and pads its second; the ids are gathered in order and process
0 alone writes scores.json and predictions.jsonl.
"""

import json
import os

import pytest

from tests.multiprocess import processes

REPO = processes.cli_run.REPO
BASE = os.path.join(REPO, "tests", "fixtures", "hf", "mt5_tiny")
VOCAB = os.path.join(REPO, "tests", "fixtures", "spm", "tiny_en_ru.model")
SENTENCES = ("The city library will stay open late.",
             "Students asked for longer hours during exams.",
             "A new bridge opens over the river in spring.",
             "The council voted to plant more trees in parks.",
             "Rain is expected across the north this week.")
EXAMPLES = len(SENTENCES)


def _write_xlsum_english(manual_dir):
  """jsonl as XL-Sum ships it; each split has all the sentences."""
  os.makedirs(manual_dir)
  for split in ("train", "val", "test"):
    with open(os.path.join(manual_dir, f"english_{split}.jsonl"), "w",
              encoding="utf-8") as f:
      for i, summary in enumerate(SENTENCES):
        text = " ".join(SENTENCES[i:] + SENTENCES[:i])
        f.write(json.dumps({"id": f"en-{split}-{i}", "url": f"u/{i}",
                            "title": summary[:20], "summary": summary,
                            "text": text}) + "\n")


def _eval(output_dir, tfds_dir, num_processes) -> processes.Job:
  return processes.Job("lta.cli.eval", [
      "--gin_file=runs/eval.gin", f'--gin.run_eval.output_dir="{output_dir}"',
      f'--gin.run_eval.base_checkpoint="{BASE}"',
      "--gin.run_eval.tasks=['xlsum.en']",
      "--gin.TASK_FEATURE_LENGTHS={'inputs': 32, 'targets': 8}",
      "--gin.run_eval.batch_size=2",
      f'--gin.run_eval.tfds_data_dir="{tfds_dir}"',
      f'--gin.lta.vocab.get_vocabulary.path="{VOCAB}"'], num_processes)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """(1-process dir, 2-process dir, the 2 processes' outputs)."""
  import lta_tasks  # pylint: disable=g-import-not-at-top
  work = tmp_path_factory.mktemp("eval")
  _write_xlsum_english(str(work / "xlsum"))
  tfds_dir = str(work / "tfds")
  lta_tasks.xlsum_builder.prepare({"en": "english"}, tfds_dir,
                                  manual_dir=str(work / "xlsum"))
  one, two = _eval(work / "one", tfds_dir, 1), _eval(work / "two",
                                                     tfds_dir, 2)
  try:
    two.finish(), one.finish()
  finally:
    two.kill()
    one.kill()
  return work / "one", work / "two", [p.output for p in two.processes]


def test_two_process_eval_writes_the_one_process_scores(runs):
  one, two, outputs = runs
  assert json.load(open(two / "scores.json")) == json.load(
      open(one / "scores.json"))
  got = [json.loads(l) for l in open(two / "predictions.jsonl")]
  want = [json.loads(l) for l in open(one / "predictions.jsonl")]
  assert len(want) == EXAMPLES and got == want
  # Each process decoded its share; process 0 alone wrote the files.
  assert "batch 2/2, 4/4 examples" in outputs[0]
  assert "batch 1/1, 1/1 examples" in outputs[1]
  assert f"Wrote {two / 'scores.json'}" in outputs[0]
  assert "Wrote" not in outputs[1]
