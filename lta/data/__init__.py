"""Data: vocabularies, seqio preprocessors and the input pipeline.

  vocab           the SentencePiece vocabulary, read lazily from gin
  preprocessors   seqio preprocessors for the paper's tasks
  denoising       T5's prefix-LM and span-corruption objectives
  input_pipeline  seqio task/mixture -> batched, sharded tf.data; the one
                  importer of task modules
  task_names      '<family>.<language>': what a task name says
"""
