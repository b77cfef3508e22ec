"""What the training scripts share, one module per concern:

- ``config``: the flags and the run's frozen configuration (flags + resumed run + defaults),
  with the settings that define a run and those that are paths declared beside the flags;
- ``loader``: the training data and its batches in (seed, epoch) order;
- ``model``: the network (seeded, resumed or ``--init``) and its DDP/compiled wrappers;
- ``content``: the optimizer bundle and the supervised content-loss step;
- ``gan``: train_srgan.py's GAN settings and its adversarial step;
- ``loop``: one epoch of training, the evaluation, Ctrl-C;
- ``run_dir``: the run folder (args.json, metrics.csv, last.pth / best.pth).

The epoch loop itself is written out in train_srcnn.py and train_srgan.py.
"""
