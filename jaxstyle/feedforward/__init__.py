"""Feed-forward stylization: networks trained by the engine's own losses (:mod:`.train`, on the
data of :mod:`.data`, with the loss of :mod:`.loss`), saved and loaded as model directories and run
on frames (:mod:`.model`), and videos stylized by them (:mod:`.video`)."""

from .data import TrainingData, check_sizes, find_inputs, store_input
from .model import Model, load_model, save_model
from .train import TrainJob, train_network

__all__ = ["TrainingData", "check_sizes", "find_inputs", "store_input", "Model", "load_model", "save_model", "TrainJob",
           "train_network"]
