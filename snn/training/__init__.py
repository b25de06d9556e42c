"""The training application that ``train.py`` runs, one concept per module.

* :mod:`~snn.training.config`: YAML configs and ``key=value`` overrides -> typed dataclasses.
* :mod:`~snn.training.data`: the datasets, the validation split, the batch order of each epoch.
* :mod:`~snn.training.events`: N-MNIST and SHD through tonic, binned into frames.
* :mod:`~snn.training.encoding`: samples -> the network's input, and each process's spike
  generator seed.
* :mod:`~snn.training.models`: the MLP, CNN and recurrent classifiers.
* :mod:`~snn.training.loss`: the losses, the readout each reads, the diverged-loss guard.
* :mod:`~snn.training.optim`: the optimizer and its learning-rate schedule.
* :mod:`~snn.training.evaluate`: loss, accuracy and firing rates on a split.
* :mod:`~snn.training.device`: the device, its checks, mixed precision.
* :mod:`~snn.training.distributed`: data-parallel training under ``torchrun``.
* :mod:`~snn.training.checkpoint`: atomic, checksummed checkpoint files.
* :mod:`~snn.training.resume`: what ``last.pt`` holds, and continuing a run from it.
* :mod:`~snn.training.interrupts`: Ctrl-C, exit codes, and the crash tests' pause points.
* :mod:`~snn.training.rundir`: the run folder and its metrics log.
* :mod:`~snn.training.plots`: the PNG plots of a finished run.

Nothing here is imported by ``import snn``; the modules are imported by name.
"""
