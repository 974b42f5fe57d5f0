"""Module-based training shared by every family."""
from ..utils.checkpoint import last_complete_epoch, load_checkpoint, save_checkpoint
from .fit import FitConfig, TrainingDiverged, add_fit_args, contexts, evaluate, fit, make_optimizer
from .heads import ExtraLoss, training_symbol
from .schedules import make_lr_scheduler

__all__ = ["FitConfig", "TrainingDiverged", "fit", "evaluate", "add_fit_args", "contexts", "make_optimizer", "training_symbol",
           "ExtraLoss", "make_lr_scheduler", "save_checkpoint", "load_checkpoint", "last_complete_epoch"]
