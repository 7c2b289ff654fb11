"""encoders: the face Masked Autoencoder (timm ViT), its pretraining and fine-tuning, and the
batch frame encoder used by extraction."""
