"""What the subcommand modules of the ``deepict`` command line share: argument types and the
``--device`` / ``--threads`` options of the torch commands.
"""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def add_device_options(parser) -> None:
    """``--device`` and ``--threads`` of a command that runs a network."""
    parser.add_argument("--device", default="auto",
                        help="where the network runs: auto (a CUDA GPU when one is visible, else the CPU), cpu, "
                             "cuda or cuda:N (default: %(default)s)")
    parser.add_argument("--threads", type=positive_int, default=None, metavar="N",
                        help="CPU threads for torch (default: every core this process may use)")


def apply_threads(args) -> None:
    """Cap torch's CPU threads at ``--threads`` (imports torch: call it in a handler)."""
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
