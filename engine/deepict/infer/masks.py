"""Compartment masks for 2D training: label maps remapped to 0/1, and masks checked against their tomograms."""

from __future__ import annotations

import numpy as np

from deepict.conventions import voxel_sizes_differ
from deepict.errors import InputFileError, ParameterError


def parse_remap(text: str | dict | None) -> dict | None:
    """Parse a label remapping into ``{label (int) or '.': 0 or 1}``.

    Accepted forms (DeePiCt's ``preprocessing.remapping.mapping``):

    - ``".:1"``: every non-zero label becomes 1;
    - ``"2,3,5:1"``: labels 2, 3 and 5 become 1, every other label 0;
    - ``"1:0,12:0,.:1"``: labels 1 and 12 become 0, every other non-zero label 1;
    - ``"2:1;3:1"`` (``;`` or spaces separate groups too), or a ready dict.

    Labels not named (and not covered by ``.``) become 0; label 0 stays 0 unless named.
    """
    if text is None or text == "":
        return None
    if isinstance(text, dict):
        items = text.items()
    else:
        items = []
        # groups are "labels:value"; a group's labels are comma separated, groups end at the value
        tokens = str(text).replace(";", " ").split()
        for token in tokens:
            pending = []
            for part in token.split(","):
                if ":" in part:
                    label, _, value = part.partition(":")
                    pending.append(label)
                    items.extend((label_text, value) for label_text in pending)
                    pending = []
                elif part:
                    pending.append(part)
            if pending:
                raise ParameterError(f"label remapping {text!r}: labels {pending} have no ':value'; "
                                     "write e.g. '2,3,5:1' or '.:1' (all non-zero labels -> 1)")
    mapping = {}
    for label, value in items:
        label = str(label).strip()
        try:
            value = int(float(str(value).strip()))
        except ValueError:
            raise ParameterError(f"label remapping {text!r}: value {value!r} is not 0 or 1") from None
        if value not in (0, 1):
            raise ParameterError(f"label remapping {text!r}: labels can only be mapped to 0 or 1, not {value}")
        if label == ".":
            mapping["."] = value
            continue
        try:
            number = float(label)
        except ValueError:
            raise ParameterError(f"label remapping {text!r}: {label!r} is not a label number or '.'") from None
        if number != int(number):
            raise ParameterError(f"label remapping {text!r}: label {label!r} is not an integer")
        mapping[int(number)] = value
    if not mapping:
        raise ParameterError(f"label remapping {text!r} is empty")
    return mapping


def format_remap(mapping: dict | None) -> str | None:
    """The text form of a mapping from :func:`parse_remap` (for model files and logs)."""
    if not mapping:
        return None
    return ",".join(f"{label}:{value}" for label, value in mapping.items())


def remap_labels(labels: np.ndarray, mapping: dict) -> np.ndarray:
    """Apply a :func:`parse_remap` mapping to a label array; returns uint8 0/1."""
    labels = np.asarray(labels)
    other = mapping.get(".", 0)
    out = np.where(labels != 0, np.uint8(other), np.uint8(0)).astype(np.uint8)
    for label, value in mapping.items():
        if label != ".":
            out[labels == label] = value
    return out


def binary_mask(labels: np.ndarray, path, mapping: dict | None = None) -> np.ndarray:
    """The 0/1 mask (uint8) of a mask/label volume, remapped when ``mapping`` is given.

    Without a mapping the volume must hold only 0 and 1 (a binary mask); a label map with
    other values is refused with a hint to give a remapping.
    """
    labels = np.asarray(labels)
    if mapping is not None:
        return remap_labels(labels, mapping)
    values = np.unique(labels)
    if not np.isin(values, (0, 1)).all():
        shown = ", ".join(f"{v:g}" for v in values[:12]) + (" ..." if len(values) > 12 else "")
        raise InputFileError(path, f"is not a binary 0/1 mask (it holds the values {shown})",
                             "For a label map, say which labels form the compartment with a remapping, "
                             "e.g. --remap '.:1' (every non-zero label) or --remap '2,3,5:1'.")
    return (labels == 1).astype(np.uint8)


def check_mask_matches(mask_volume, tomogram_volume) -> None:
    """Raise :class:`InputFileError` naming both files if a mask does not fit its tomogram."""
    mask_shape, tomo_shape = tuple(mask_volume.data.shape), tuple(tomogram_volume.data.shape)
    if mask_shape != tomo_shape:
        raise InputFileError(
            mask_volume.path,
            f"its size x,y,z = {mask_shape[::-1]} differs from that of its tomogram {tomogram_volume.path} "
            f"(x,y,z = {tomo_shape[::-1]})",
            "Give the masks in the same order as the tomograms, made at the same binning.")
    a, b = mask_volume.voxel_size, tomogram_volume.voxel_size
    if voxel_sizes_differ(a, b):
        raise InputFileError(
            mask_volume.path,
            f"its voxel size {a:g} Å differs from that of its tomogram {tomogram_volume.path} ({b:g} Å)",
            "Give the masks in the same order as the tomograms, made at the same binning (or fix the header).")
