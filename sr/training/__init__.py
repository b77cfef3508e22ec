"""What the training scripts share, one module per concern:

- ``config``: the flags and the run's frozen configuration (flags + resumed run + defaults),
  with the settings that define a run and those that are paths declared beside the flags;
- ``loader``: the training data and its batches in (seed, epoch) order;
- ``model``: the network (seeded, resumed or ``--init``) and its DDP/compiled wrappers;
- ``optim``: the optimizer bundle (Adam, its cosine schedule, its GradScaler), per-layer
  learning rates and the weights' moving average (``--ema``);
- ``gan``: train_srgan.py's GAN settings and its adversarial step;
- ``state``: where a run stands (``Progress``), what it trains (``Trainee``) and the checkpoint
  built from both;
- ``loop``: one epoch's device batches, the evaluation, Ctrl-C;
- ``run_dir``: the run folder (args.json, metrics.csv, last.pth / best.pth).

The epoch loop and the training step are written out in train_srcnn.py and train_srgan.py.
"""
