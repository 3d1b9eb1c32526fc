"""Command line: ``python cli.py CONTENT --style STYLE -o OUT``, ``python cli.py batch ...``,
``python cli.py train ...`` (a feed-forward network; ``--model MODEL_DIR`` uses one),
``python cli.py weights ...`` and ``python cli.py example``.

The flags are derived from :class:`jaxstyle.config.StyleConfig` and the video job's option classes
(:mod:`.flags`, :mod:`.parser`); the config is resolved once here and handed to the job for the CONTENT's kind:
an image (:mod:`.image`), a video (:mod:`.video`) or a sound file (:mod:`.audio`). Bad input is
reported as one line on stderr with exit code 2, never a traceback.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Sequence

from PIL import Image

from .. import interrupts
from ..config import StyleConfig
from ..errors import UserError
from ..io.audio import AUDIO_EXTENSIONS, is_audio
from ..io.compile_cache import enable_compile_cache
from ..io.files import os_error_line
from ..io.images import IMAGE_EXTENSIONS
from ..io.video import INPUT_VIDEO_EXTENSIONS, is_video_content
from .applies import (check_carry_is_for_a_network, check_flags_apply, check_flags_apply_to_network,
                      check_lane_flags_apply)
from .audio import audio_main
from .batch import batch_main
from .common import PROG, crash_log, one_line
from .example import example_main
from .flags import from_flags
from .image import image_main
from .model import check_model_content, model_main
from .parser import build_parser
from .train import train_main
from .video import video_main
from .weights import weights_main


def check_content_kind(path: str) -> None:
    """CONTENT's extension says what it is (image, video or sound); one that names none is read as an
    image. A file there that is no image (a video saved without its extension, say): one line that
    says what to do, not an image reader's error or a complaint about the output format."""
    suffix = os.path.splitext(path)[1].lower()
    if not os.path.isfile(path) or suffix in (*IMAGE_EXTENSIONS, *INPUT_VIDEO_EXTENSIONS, *AUDIO_EXTENSIONS):
        return
    try:
        with Image.open(path):
            return
    except Exception:  # (Pillow raises more than OSError for a file it cannot take)
        raise UserError(f"{path} is not an image jaxstyle can read, and its extension ({suffix or 'none'}) is not a "
                        f"video's or a sound's: if it is one, rename it (a video: "
                        f"{', '.join(INPUT_VIDEO_EXTENSIONS[:5])}, ...; a sound: {', '.join(AUDIO_EXTENSIONS)})") from None


def check_flags_apply_to_content(args) -> None:
    """A flag given for content that its job would silently ignore: say so (see :mod:`.applies`)."""
    if not os.path.isfile(args.content):
        return  # the job's own checks name what is wrong with it
    kind = "audio" if is_audio(args.content) else "video" if is_video_content(args.content) else "image"
    check_flags_apply(args, kind, args.content)


def stylize_main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    config = from_flags(StyleConfig, args).resolved()  # the run's one resolution
    if args.output is not None and not args.output.strip():  # (an empty -o would mean the default)
        raise UserError("the output path (-o) is empty; give a file name")
    check_content_kind(args.content)
    if args.model:
        check_model_content(args.content)
    check_flags_apply_to_content(args)
    check_carry_is_for_a_network(args)
    check_lane_flags_apply(args)
    if args.model:
        check_flags_apply_to_network(args)
        return model_main(args, config)
    if args.style_mix is not None:
        raise UserError("--style-mix blends the styles of a trained network: it needs --model MODEL_DIR")
    if is_audio(args.content):
        return audio_main(args, config)
    if not args.style:
        raise UserError("--style STYLE is required (an audio CONTENT takes --style-audio instead)")
    if args.style_audio and not is_video_content(args.content):
        raise UserError("--style-audio needs an audio file or a video with sound as CONTENT")
    if is_video_content(args.content):
        return video_main(args, config)
    return image_main(args, config)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; every failure is one line on stderr: exit 2 for the user's input, 130 for an
    interrupt, 1 for an internal error (its traceback goes to a log file that the line names)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = interrupts.install() if main_thread else None  # signals reach the main thread only
    try:
        enable_compile_cache()  # a later run with the same shapes skips their compiles
        if argv and argv[0] == "batch":
            code = batch_main(argv[1:])
        elif argv and argv[0] == "train":
            code = train_main(argv[1:])
        elif argv and argv[0] == "weights":
            code = weights_main(argv[1:])
        elif argv and argv[0] == "example":
            code = example_main(argv[1:])
        else:
            code = stylize_main(argv)
    except UserError as exc:
        code = _fail(f"{PROG}: error: {exc}", exc.exit_code)
    except KeyboardInterrupt:
        code = _fail(interrupts.line(), interrupts.exit_code())  # Ctrl-C: 130; SIGTERM: 143
    except OSError as exc:  # a full disk, a quota, a name too long, wherever it was; else a bug
        line = os_error_line(exc)
        code = _fail(f"{PROG}: error: {line}", 2) if line else \
            _fail(f"{PROG}: internal error: {one_line(exc)}; the traceback is in {crash_log(exc)}", 1)
    except MemoryError:
        code = _fail(f"{PROG}: error: out of memory; try a smaller --size, --frames-per-device or --tile-size", 1)
    except Exception as exc:  # a bug: one line here, the whole story in the log
        code = _fail(f"{PROG}: internal error: {one_line(exc)}; the traceback is in {crash_log(exc)}", 1)
    finally:
        if previous is not None:
            # the entry points' own handler only notes an interrupt from here on (exit handlers)
            interrupts.restore(previous)
    return code


def _fail(line: str, code: int) -> int:
    if threading.current_thread() is threading.main_thread():
        interrupts.hold()  # a second Ctrl-C must not interrupt the one line
    print(line, file=sys.stderr, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
