"""File input and output at the edges: images, label masks, video and audio through imageio-ffmpeg's
ffmpeg (one module for the binary and its stream dumps, shared by video and audio), and atomic JSON.

Everything here raises :class:`jaxstyle.errors.UserError` (one line) for a problem with the user's
files; nothing here knows about networks, losses or optimizers.
"""
