"""Audio style transfer on spectrograms: the spectral transforms (:mod:`.spectral`), the random
feature networks and their variants (:mod:`.network`), the statistics and loss (:mod:`.objective`),
the chunked L-BFGS pipeline (:mod:`.stylize`) and the result's measures (:mod:`.metrics`)."""

from .stylize import AudioStylizer, check_signal, clear_caches, stylize_audio

__all__ = ["AudioStylizer", "check_signal", "clear_caches", "stylize_audio"]
