"""seqtrain: TCN -> Transformer -> MLP heads trained on windows of frame features read from a
featurestore, evaluated with the official ABAW per-frame metrics."""
