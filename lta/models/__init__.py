"""Networks and the model contract; each family is its own subpackage.

  layers     shared layers with logical axis names (dense + adapters, norms)
  mt5/       the mT5 encoder-decoder: T5Config and the flax network
  decoder/   decoder-only LMs (Llama, Qwen2/3, Gemma 2/3): DecoderConfig and
             the network with its KV cache
  bart/      mBART-50 and NLLB-200 (M2M100): BartConfig and the network
  contract   loss, scoring and predict_batch around a network
  decoder_only  scoring and predict_batch around a decoder-only network
  decoding   cached greedy, sampling and beam search (T5X semantics)
"""
