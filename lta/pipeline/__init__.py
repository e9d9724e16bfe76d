"""The staged CPU pipeline on the synthetic world: train -> merge -> decode.

The layer the `lta pipeline` and `lta miniature` commands share.
  run      PipelineConfig and the stages in order
  stages   cached stages: stage.json records, "cached, skipped"
  data     the world's data and vocabulary stage
  report   the pipeline's table, sanity flags and files
"""
