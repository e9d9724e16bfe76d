"""Networks and the model contract; each family is its own subpackage.

  layers     shared layers with logical axis names (dense + adapters, norms)
  mt5/       the mT5 encoder-decoder: T5Config and the flax network
  contract   loss, scoring and predict_batch around a network
  decoding   cached greedy, sampling and beam search (T5X semantics)
"""
