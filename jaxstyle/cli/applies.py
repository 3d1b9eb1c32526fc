"""Which flags a content of each kind takes: a flag that the job for an image, a video or a sound
file would silently ignore is refused with one line instead (the single command and every item of a
batch job check the same way).

- The video job's options and the ``video`` section (``--temporal-weight``, ``--overlap``, ...)
  are for a video; ``--start`` and ``--duration`` cut a sound too.
- The ``audio-`` section is for a sound being stylized: an audio CONTENT, or a video's
  ``--style-audio``.
- A sound is stylized by the ``audio-`` section alone (and ``--seed``): the image optimizer's flags
  and the tiles are for images and video frames.
- ``--model`` without ``--init network`` runs the trained network, not the optimizer: of the
  stylization flags it reads the size and the frames per device (and a video's segment, frames
  folder, quality and sound, and ``--carry`` with its ``--flow`` and ``--no-scene-cuts``); ``--carry`` is the network's
  only (the optimizer's frames start from the warped previous output already).
"""

from __future__ import annotations

import argparse

from ..config import StyleConfig
from ..errors import UserError
from ..video import VideoOptions
from .flags import given_flags, given_section_flags

# The video job's options that other content takes (a sound file is cut to a segment too).
_VIDEO_OPTIONS_FOR = {"image": (), "audio": ("--start", "--duration")}
# The top-level stylization flags that a sound's stylization reads.
_SOUND_READS = ("--seed",)


def kind_phrase(kind: str) -> str:
    """How an error names a content of ``kind``: "an image", "a sound file"."""
    return {"image": "an image", "audio": "a sound file", "video": "a video"}[kind]


def unused_video_options(args: argparse.Namespace, kind: str) -> list[str]:
    """The video flags given in ``args`` that a content of ``kind`` (image, audio, video) would
    silently ignore."""
    if kind == "video":
        return []
    given = given_flags(VideoOptions, args) + given_section_flags(StyleConfig, args, "video")
    return [f for f in given if f not in _VIDEO_OPTIONS_FOR[kind]]


def video_options_error(unused: list[str], why_not: str) -> UserError:
    """One line naming, for each unused flag, the contents that take it (--start and --duration
    cut a sound too), then ``why_not`` (e.g. "a.png is an image")."""
    takers: dict[str, list[str]] = {}
    for flag in unused:
        taker = "a video or sound" if flag in _VIDEO_OPTIONS_FOR["audio"] else "a video"
        takers.setdefault(taker, []).append(flag)
    parts = [f"{', '.join(flags)} {verb(flags)} to {taker} CONTENT only" for taker, flags in takers.items()]
    return UserError(f"{'; '.join(parts)}, and {why_not}")


def unused_sound_flags(args: argparse.Namespace, kind: str, style_audio: bool) -> list[str]:
    """The ``--audio-*`` flags given when no sound is stylized (an image; a video without
    ``--style-audio``)."""
    if kind == "audio" or (kind == "video" and style_audio):
        return []
    return given_section_flags(StyleConfig, args, "audio")


def unused_picture_flags(args: argparse.Namespace, kind: str) -> list[str]:
    """The image optimizer's flags (and the tiles) given for a sound file, which ignores them."""
    if kind != "audio":
        return []
    given = given_flags(StyleConfig, args) + given_section_flags(StyleConfig, args, "tiles")
    return [f for f in given if f not in _SOUND_READS]


def check_flags_apply(args: argparse.Namespace, kind: str, name: str) -> None:
    """Refuse the flags that the job for content ``name`` of ``kind`` would ignore (one line)."""
    unused = unused_video_options(args, kind)
    if unused:
        raise video_options_error(unused, f"{name} is {kind_phrase(kind)}")
    unused = unused_sound_flags(args, kind, bool(getattr(args, "style_audio", None)))
    if unused:
        raise sound_flags_error(unused, "no --style-audio is given" if kind == "video" else
                                f"{name} is {kind_phrase(kind)}")
    unused = unused_picture_flags(args, kind)
    if unused:
        raise picture_flags_error(unused, f"{name} is a sound file")


def sound_flags_error(unused: list[str], why_not: str) -> UserError:
    return UserError(f"{', '.join(unused)} {verb(unused)} to a sound being stylized only (an audio CONTENT or a "
                     f"video's --style-audio), and {why_not}")


def picture_flags_error(unused: list[str], why_not: str) -> UserError:
    return UserError(f"{', '.join(unused)} {verb(unused)} to images and video frames, and {why_not}: a sound is "
                     "stylized by the --audio-* flags (--audio-iterations, ...)")


# What a trained network's pass (--model without --init network) reads: the working size and the
# frames per device; a video's segment, frames folder, quality, audio and carry along the flow.
_NETWORK_READS = ("--size", "--frames-per-device", "--start", "--duration", "--frames-dir", "--quality",
                  "--no-audio", "--carry", "--flow", "--no-scene-cuts")


def check_flags_apply_to_network(args: argparse.Namespace) -> None:
    """``--model`` alone runs the network, not the optimizer: its flags (and a work directory,
    which only the optimizer's video job keeps) would be ignored."""
    if getattr(args, "init", None) == "network":
        return  # (any other --init is refused below: the network's pass has no initial image)
    given = [*given_flags(StyleConfig, args), *given_flags(VideoOptions, args)]
    for section in ("video", "tiles", *(() if getattr(args, "style_audio", None) else ("audio",))):
        given += given_section_flags(StyleConfig, args, section)  # (--style-audio stylizes the sound as ever)
    reads = _NETWORK_READS + (_SOUND_READS if getattr(args, "style_audio", None) else ())
    unused = [f for f in given if f not in reads]
    if unused:
        raise UserError(f"{', '.join(unused)} {verb(unused)} to the optimizer, and --model alone runs the trained "
                        "network (add --init network to optimize from its output)")
    of_carry = [f for f in given if f in ("--flow", "--no-scene-cuts")]
    if of_carry and not getattr(args, "video.carry", 0.0):
        raise UserError(f"{', '.join(of_carry)} with --model {verb(of_carry)} to --carry's optical flow: give --carry "
                        f"SHARE (above 0), or leave {'it' if len(of_carry) == 1 else 'them'} out (the network's pass "
                        "alone computes no flow)")


def verb(flags: list[str]) -> str:
    return "applies" if len(flags) == 1 else "apply"


def runs_network(args: argparse.Namespace) -> bool:
    """Whether the command runs a trained network's pass: ``--model`` without ``--init network``."""
    return bool(getattr(args, "model", None)) and getattr(args, "init", None) != "network"


def check_carry_is_for_a_network(args: argparse.Namespace) -> None:
    """``--carry`` blends a trained network's frames along the flow; the optimizer would ignore it."""
    if "--carry" in given_section_flags(StyleConfig, args, "video") and not runs_network(args):
        raise UserError("--carry carries a trained network's frames (--model) along the optical flow; the optimizer's "
                        "frames start from the warped previous output already (--temporal-weight keeps them to it)")


# The lanes schedule's own flags: --sequential walks one lane, so they would change nothing.
_LANE_FLAGS = ("--overlap", "--fade", "--no-anchor")


def check_lane_flags_apply(args: argparse.Namespace) -> None:
    """``--sequential`` is one lane: the lanes' overlap, fade and anchoring would be ignored."""
    given = given_section_flags(StyleConfig, args, "video")
    if "--sequential" in given and getattr(args, "video.sequential", False):
        unused = [f for f in given if f in _LANE_FLAGS]
        if unused:
            raise UserError(f"{', '.join(unused)} {verb(unused)} to the lanes schedule, and --sequential stylizes the "
                            "frames in one lane")
