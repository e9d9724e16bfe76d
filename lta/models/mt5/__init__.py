"""mT5: T5Config (config) and the encoder-decoder network (network)."""
