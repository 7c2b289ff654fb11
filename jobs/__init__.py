"""jobs: thin Ray entry points (extract, pretrain, finetune) and the demo pipeline."""
