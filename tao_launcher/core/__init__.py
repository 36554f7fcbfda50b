"""The shared trainer core: results folder, trainer, optimizers, metrics, encoders, archives.

Every task builds on these modules; none of them knows about a particular task.
"""
