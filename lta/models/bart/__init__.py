"""mBART-50 and NLLB-200 (M2M100): BartConfig (config) and the network."""
