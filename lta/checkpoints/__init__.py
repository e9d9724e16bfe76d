"""Base-model checkpoints: HF and T5X import, HF export, fingerprints.

  lta.checkpoints.base_model   load_base_model: HF or T5X, for train/eval/merge
  lta.checkpoints.hf           load_hf_checkpoint, save_hf_checkpoint
  lta.checkpoints.hf_bart      the same for mBART and M2M100 (NLLB-200)
  lta.checkpoints.hf_decoder   load_hf_decoder, save_hf_decoder: Llama,
                               Qwen2/3, Gemma 2/3 (text)
  lta.checkpoints.t5x          load_t5x_checkpoint
  lta.checkpoints.fingerprint  base_model_fingerprint
  lta.checkpoints.layout       param_shapes: the names and shapes lta expects
"""
