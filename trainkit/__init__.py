"""The training kit shared by the three ignite loops (encoders.pretrain, encoders.finetune,
seqtrain.trainer): the optimizer step, the warm-up + cosine LR schedule, resumable train state
and the engine handlers (epoch losses, progress bar, TensorBoard event files in the run folder).

It sits below encoders and seqtrain (which never import each other) and above featurestore
(which never imports torch): torch + ignite, plus ``featurestore.atomic`` for writes.
"""
