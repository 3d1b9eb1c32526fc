"""Optimizers and the solver: the batched L-BFGS (:mod:`.lbfgs`) and optax's optimizers behind one
protocol with a name table (:mod:`.optimizers`), and :func:`solve`, which compiles, shards, chunks
and reports the optimization of a batch of frames at one scale (:mod:`.solve`)."""

from .optimizers import OPTIMIZERS, PerFrame, make
from .solve import Problem, ScaleResult, clear_caches, compile_count, evaluate, frame_mesh, global_frame_mesh, solve

__all__ = ["OPTIMIZERS", "PerFrame", "make", "Problem", "ScaleResult", "clear_caches", "compile_count", "evaluate",
           "frame_mesh", "global_frame_mesh", "solve"]
