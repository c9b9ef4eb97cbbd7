"""Ensembles: several trained 3D networks used as one, their probabilities averaged.

The DeePiCt paper trains networks of several sizes side by side; on the development data the mean
of two FAS networks' maps picked better than either (README, *Measured*). An ensemble is stored as
one ordinary model file whose architecture lists its members (``{"members": [architecture, ...]}``)
and whose state dict holds each member's weights under ``members.<i>.``. :class:`MeanProbabilityEnsemble`
returns the logit of the members' mean probability, so everything that applies a network (the
sliding window, test-time rotations, calibration, the protocols) uses an ensemble unchanged.

Members must be applicable to the same input in the same way: one kind (3D), the same classes and
label geometry, the same voxel size and normalisation, and the same reference spectrum (they were
trained on tomograms equalized to the same reference, e.g. the same training tomograms with
``--equalize-to auto``).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import torch
from torch import nn

from deepict.conventions import voxel_sizes_differ
from deepict.errors import InputFileError, ParameterError
from deepict.nn.model_files import (COMPLETE, ENSEMBLE_MEMBERS, KIND_3D, MEMBERS, ModelInfo,
                                     incomplete_training_warning, load_model, validation_split)

#: Probabilities are kept this far from 0 and 1 before the logit, so that it stays finite.
_EPSILON = 1e-6


class MeanProbabilityEnsemble(nn.Module):
    """Networks applied to the same input; the output is the logit of their mean sigmoid probability."""

    def __init__(self, members: list):
        super().__init__()
        if len(members) < 2:
            raise ValueError("an ensemble needs at least two members")
        self.members = nn.ModuleList(members)
        # The sliding window makes its boxes divisible by 2^depth: the deepest member decides.
        self.depth = max(getattr(member, "depth", 0) for member in members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probability = torch.stack([torch.sigmoid(member(x)) for member in self.members]).mean(dim=0)
        return torch.logit(probability, eps=_EPSILON)


def members_of(network: nn.Module) -> list:
    """The networks whose probabilities a prediction averages: an ensemble's members, else the network itself.

    The sliding window runs them one by one (and reports progress after each) instead of calling the
    ensemble's :meth:`MeanProbabilityEnsemble.forward`, which gives the same mean.
    """
    return list(network.members) if isinstance(network, MeanProbabilityEnsemble) else [network]


def combine_models(paths: list) -> tuple[MeanProbabilityEnsemble, ModelInfo]:
    """The ensemble of the 3D model files ``paths`` and its :class:`ModelInfo`.

    Its post-processing is the members' median (threshold, minimum size, duplicate distance); calibrate
    it on the members' training data for the ensemble's own (:mod:`deepict.train.recalibrate`).
    Members that cannot be applied alike are refused, naming the file and what differs.
    """
    if len(paths) < 2:
        raise ParameterError(f"an ensemble needs at least two models, got {len(paths)}")
    loaded = [load_model(path, KIND_3D) for path in paths]
    infos = [info for _, info in loaded]
    for path, info in zip(paths, infos):
        _check_member(path, info, paths[0], infos[0])
    first = infos[0]
    info = ModelInfo(
        kind=KIND_3D, classes=list(first.classes),
        architecture={MEMBERS: [member.architecture for member in infos]},
        voxel_size=first.voxel_size, patch_size=max(member.patch_size for member in infos),
        overlap=max(member.overlap for member in infos), label_kind=first.label_kind,
        sphere_radius=dict(first.sphere_radius), normalization=first.normalization,
        postprocess=median_postprocess([member.postprocess for member in infos]), spectrum=first.spectrum,
        training_spectrum=first.training_spectrum, history=[],
        training={COMPLETE: True, ENSEMBLE_MEMBERS: [_member_record(path, member) for path, member in
                                                     zip(paths, infos)]},
        source=f"ensemble of {len(paths)} models: {member_names(paths, infos)}")
    return MeanProbabilityEnsemble([network for network, _ in loaded]).eval(), info


def member_names(paths: list, infos: list) -> str:
    """The members as a person tells them apart: the shortest path ends that differ, with their training seeds.

    Scipion's training runs all write ``extra/model.pt``: their run folders tell them apart.
    """
    parts = [Path(path).parts for path in paths]
    for count in range(1, max(len(p) for p in parts) + 1):
        ends = ["/".join(p[-count:]) for p in parts]
        if len(set(ends)) == len(ends):
            break
    seeds = [info.training.get("seed") for info in infos]
    return ", ".join(end if seed is None else f"{end} (seed {seed})" for end, seed in zip(ends, seeds))


def median_postprocess(postprocesses: list) -> dict:
    """The members' median of each post-processing value (``max_size``: none if any member has none)."""
    result = {}
    for key in ("threshold", "min_size", "min_distance"):
        values = [p[key] for p in postprocesses if p.get(key) is not None]
        if values:
            median = statistics.median(values)
            result[key] = int(round(median)) if key == "min_size" else round(float(median), 6)
    limits = [p.get("max_size") for p in postprocesses]
    result["max_size"] = None if None in limits else max(limits)
    return result


def _check_member(path, info: ModelInfo, first_path, first: ModelInfo) -> None:
    if MEMBERS in info.architecture:
        raise InputFileError(path, "is itself an ensemble", "Give its member models instead (deepict model-info "
                                                            "lists them).")
    unfinished = incomplete_training_warning(info.training)
    if unfinished:
        raise InputFileError(path, unfinished.split(":")[0], "Finish it with --resume before combining it.")
    differences = []
    if info.classes != first.classes:
        differences.append(f"classes {info.classes} against {first.classes}")
    if info.label_kind != first.label_kind or info.sphere_radius != first.sphere_radius:
        differences.append(f"labels ({info.label_kind}, radius {info.sphere_radius}) against ({first.label_kind}, "
                           f"radius {first.sphere_radius})")
    if (info.voxel_size is None) != (first.voxel_size is None) or \
            (info.voxel_size and voxel_sizes_differ(info.voxel_size, first.voxel_size)):
        differences.append(f"voxel size {info.voxel_size} Å against {first.voxel_size} Å")
    if info.normalization != first.normalization:
        differences.append(f"normalisation {info.normalization} against {first.normalization}")
    if _spectrum_key(info.spectrum) != _spectrum_key(first.spectrum):
        differences.append("another reference spectrum (its training tomograms were equalized to another reference, "
                           "or not at all)")
    if differences:
        raise InputFileError(path, f"cannot be averaged with {first_path}: {'; '.join(differences)}",
                             "Combine models trained for the same classes on tomograms of the same voxel size, "
                             "equalized alike (e.g. the same training data with different --seed or network "
                             "sizes).")


def _spectrum_key(spectrum: dict | None) -> str:
    """A reference spectrum as comparable text, without its source's name (the same reference may be named
    differently)."""
    if spectrum is None:
        return ""
    return json.dumps({k: v for k, v in spectrum.items() if k != "source"}, sort_keys=True)


def _member_record(path, info: ModelInfo) -> dict:
    training = info.training
    return {"file": str(path), "source": info.source, "architecture": info.architecture,
            "postprocess": info.postprocess, "seed": training.get("seed"), "epochs": training.get("epochs"),
            "validation_split": validation_split(training)}


def shared_validation_split(info: ModelInfo) -> dict:
    """The validation split (:func:`~deepict.nn.model_files.validation_split`) that every member of the ensemble
    ``info`` trained with.

    Calibrating on one member's validation slabs would score another member on its own training data where
    their splits differ, and the ensemble would look better there than it is: that is refused.
    """
    members = info.training[ENSEMBLE_MEMBERS]
    splits = [member.get("validation_split") for member in members]
    for member, split in zip(members, splits):
        if split is None:
            raise ParameterError(f"{member['file']} does not say where its training kept validation slabs (it was not "
                                 "trained by deepict train3d): combine it without --tomograms/--coords (the networks' "
                                 "median post-processing)")
        if split != splits[0]:
            raise ParameterError(
                f"the members kept different validation slabs ({members[0]['file']}: {_split_text(splits[0])}; "
                f"{member['file']}: {_split_text(split)}), so each would be scored partly on data another trained "
                "on. Calibrate only members trained with the same --val-fraction and --patch-size, or combine "
                "them without --tomograms/--coords (their median post-processing).")
    return splits[0]


def _split_text(split: dict) -> str:
    return ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in split.items())
