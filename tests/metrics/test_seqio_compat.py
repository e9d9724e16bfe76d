"""The metric fns are accepted by a real seqio.Task as prediction metrics."""

import pytest
import seqio
import tensorflow as tf

from lta.eval import metrics


def test_seqio_task_classifies_and_calls_the_metric_fns(spm_model_path):
  fns = [metrics.make_rouge_spm_metric(lambda: spm_model_path),
         metrics.make_rouge_plain_metric(),
         metrics.squad_metric,
         metrics.make_language_fidelity_metric("en")]
  task = seqio.Task(
      "lta_metrics_compat_probe",
      source=seqio.FunctionDataSource(
          lambda split, shuffle_files: tf.data.Dataset.from_tensors(
              {"targets": "x"}), splits=["validation"]),
      output_features={"targets": seqio.Feature(
          seqio.PassThroughVocabulary(size=10), add_eos=False)},
      metric_fns=fns)
  assert list(task.predict_metric_fns) == fns
  assert not task.score_metric_fns
  # seqio passes both arguments by keyword.
  targets, predictions = ["The cat sat on the mat."], ["the cat lay on the mat"]
  assert fns[1](targets=targets, predictions=predictions)[
      "rouge2"] == pytest.approx(60.0)
  assert fns[0](targets=targets, predictions=predictions).keys() == {
      "rouge1", "rouge2", "rougeL"}
  assert fns[2](targets=[["Paris"]], predictions=["paris"])["em"] == 100.0
  assert fns[3](targets=targets, predictions=predictions) == {
      "language_fidelity": 100.0}
