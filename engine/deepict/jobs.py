"""One job per ``deepict`` step: what the step reads, writes and how (one dataclass per subcommand).

A job is the single declaration of a step's parameters: each field carries its default and help
text (:mod:`deepict.parameters`), from which the ``deepict`` options and the Scipion forms are
built. ``deepict STEP --job FILE`` runs a job file; the options of ``deepict STEP`` build the same
job, so both take the same path (options -> job -> the step). A job file is JSON holding the
step's name, the format version and the parameters, nested groups (``training``, ``inference``,
``postprocess``) as objects; a parameter left out takes its default.

Steps that run a network have a ``device`` parameter (:func:`runs_network`, :func:`set_device`).

Torch-free and Scipion-free: the plugin's protocols import it to write job files.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass
from typing import ClassVar

from deepict.conventions import CONTEXT_MODES, EQUALIZE_MODES, EQUALIZE_TO_MEAN
from deepict.conventions import SPLIT_TOUCHING
from deepict.errors import InputFileError
from deepict.conventions import VOXEL_PR_BINS as DEFAULT_BINS
from deepict.filaments.options import FilamentOptions
from deepict.formats import FORMATS
from deepict.formats.copick import COPICK_FORMAT
from deepict.infer.compartments import DEFAULT_BATCH_SIZE, MAX_AUTO_TILE
from deepict.infer.options import InferenceOptions
from deepict.io import atomic_path, check_readable
from deepict.parameters import (CHOICES, device_parameter, has_default, nested_class, parameter, parameter_fields,
                                parameter_paths, precision_parameter, threads_parameter, type_hints)
from deepict.conventions import SPECTRUM_LOWPASS_WIDTH as DEFAULT_LOWPASS_WIDTH
from deepict.train.config import Train2DConfig, TrainConfig

#: Version of the job file format; a file of a newer version is refused.
FORMAT_VERSION = 1
STEP_KEY = "step"
VERSION_KEY = "format_version"

_FFT_THREADS_HELP = "FFT threads (default: every core this process may use)"


# --------------------------------------------------------------------------------------------
# Groups of parameters that several steps share
# --------------------------------------------------------------------------------------------

@dataclass(kw_only=True)
class PostprocessOptions:
    """How a 3D probability map becomes clusters; ``None`` takes the model's suggestion."""

    threshold: float | None = parameter(None, help="probability threshold (voxels with p > t are kept)")
    min_size: int | None = parameter(None, help="smallest cluster in voxels of the input tomogram (also when it "
                                                "is rescaled to the model's voxel size)")
    max_size: int | None = parameter(None, help="largest cluster in voxels of the input tomogram (default: no "
                                                "limit)")
    connectivity: int = parameter(1, choices=(1, 2, 3), help="voxel neighbourhood of a cluster: 1 faces, 2 edges, "
                                                             "3 corners (default %(default)s)")
    border: list[int] = parameter(factory=lambda: [0], help="ignore this many voxels at each face (one value, or "
                                                            "x y z; default 0)")
    context_mode: str = parameter("intersection", choices=CONTEXT_MODES,
                                  help="intersection: only voxels in the mask; contact: clusters within the context "
                                       "distance of the mask; colocalization: cluster centroids within it "
                                       "(default %(default)s)")
    context_distance: float = parameter(0.0, help="in voxels (default %(default)s)")


# --------------------------------------------------------------------------------------------
# The jobs, one per step
# --------------------------------------------------------------------------------------------

@dataclass(kw_only=True)
class Train3DJob:
    step: ClassVar[str] = "train3d"

    tomograms: list[str] = parameter(help="training tomograms (MRC); a validation slab of each is kept aside "
                                          "(--val-fraction)")
    coords: list[list[str]] | None = parameter(None, help="one CSV per tomogram, same order; repeat the option for "
                                                          "each further class")
    masks: list[list[str]] | None = parameter(None, help="one binary mask per tomogram, same order; repeat for "
                                                         "each further class")
    radius: list[float] | None = parameter(None, help="sphere radius of each class in voxels (or in Å with "
                                                      "--radius-in-angstrom); required with --coords, without a "
                                                      "default: it is the particle's own size")
    radius_in_angstrom: bool = parameter(False, help="--radius values are in Å")
    voxel_size: float | None = parameter(None, help="voxel size in Å if the headers lack it")
    training_voxel_size: float | None = parameter(
        None, help="voxel size in Å the network is trained at, recorded in the model: tomograms at other voxel "
                   "sizes (more than 1%% off) are rescaled to it with their labels, up to 4x either way (default: "
                   "the first tomogram's). --radius in voxels means voxels of this size")
    out: str = parameter(help="model file to write (e.g. model.pt)")
    spectrum_reference: str | None = parameter(
        None, help="the reference the training tomograms were equalized to: a spectrum TSV from 'deepict spectrum' "
                   "or the reference tomogram. It is stored in the model, and 'deepict pick' / 'segment3d' equalize "
                   "new tomograms to it (--equalize auto)")
    equalize_to: str | None = parameter(
        EQUALIZE_TO_MEAN, help="equalize the training tomograms, in memory, to 'auto' (their mean spectrum) or to a "
                               "reference (a tomogram or a spectrum TSV); the reference is stored in the model and "
                               "'deepict pick' / 'segment3d' equalize new tomograms to it (--equalize auto), so data "
                               "from other microscopes or defocus look like the training data; 'none' trains on the "
                               "tomograms as they are (default: auto, or none with --spectrum-reference)")
    spectrum_lowpass_angstrom: float | None = parameter(None, help="the low-pass (Å) of that equalization: the "
                                                                   "--lowpass-angstrom used with --spectrum-reference, "
                                                                   "or applied with --equalize-to (default: none)")
    spectrum_lowpass_width: float = parameter(DEFAULT_LOWPASS_WIDTH, help="its --lowpass-width "
                                                                          "(default %(default)s)")
    resume: bool = parameter(False, help="continue from OUT.last.pt if present")
    threads: int | None = threads_parameter()
    precision: str = precision_parameter()
    training: TrainConfig = parameter(factory=TrainConfig, help="network and training")


@dataclass(kw_only=True)
class _ApplyModel3D:
    """What picking and 3D segmentation share."""

    model: str = parameter(help="3D model file (from train3d or import-model)")
    class_name: str | None = parameter(None, help="class to use for multi-class models (default: the first)")
    context: str | None = parameter(None, help="context mask (e.g. cytosol) of the tomogram, at its binning or "
                                               "another (resampled to the tomogram's voxels)")
    probability_map: str | None = parameter(None, help="also keep the probability map here")
    threads: int | None = threads_parameter()
    precision: str = precision_parameter()
    postprocess: PostprocessOptions = parameter(factory=PostprocessOptions,
                                                help="post-processing (defaults: the model's suggestions)")
    inference: InferenceOptions = parameter(factory=InferenceOptions, help="inference")


@dataclass(kw_only=True)
class PickJob(_ApplyModel3D):
    step: ClassVar[str] = "pick"

    tomogram: str = parameter(help="tomogram (MRC) to pick particles in")
    out: str = parameter(help="picks CSV to write")
    min_distance: float | None = parameter(None, help="merge picks closer than this (voxels of the input tomogram; "
                                                      "default: the model's calibrated duplicate distance, else "
                                                      "its training sphere radius)")
    orient_by_context: bool = parameter(False, help="orient each pick along the normal of the context mask's "
                                                    "surface near it (a plane fit), e.g. nuclear pores by the "
                                                    "nuclear envelope: writes rot, tilt, psi (RELION ZYZ, rot 0, "
                                                    "the normal towards +z); needs --context")
    split_touching: bool = parameter(SPLIT_TOUCHING, help="split clusters of touching particles (1.5 training-sphere "
                                                "volumes or more) at the peaks of their distance transform, one "
                                                "pick per particle, e.g. for crowded ribosomes (default: off)")


@dataclass(kw_only=True)
class Segment3DJob(_ApplyModel3D):
    step: ClassVar[str] = "segment3d"

    tomogram: str = parameter(help="tomogram (MRC) to segment")
    out: str = parameter(help="binary mask MRC to write")


@dataclass(kw_only=True)
class ImportModelJob:
    step: ClassVar[str] = "import-model"

    checkpoint: str = parameter(help="the published DeePiCt 3D checkpoint (.pth) to read")
    out: str = parameter(help="model file to write (e.g. ribo.pt)")
    voxel_size: float | None = parameter(None, help="voxel size the network was trained at, in Å")


@dataclass(kw_only=True)
class Train2DJob:
    step: ClassVar[str] = "train2d"

    tomograms: list[str] = parameter(help="training tomograms (MRC), all at the same voxel size")
    masks: list[str] = parameter(help="one mask per tomogram, same order, same size and voxel size (MRC or "
                                      ".mrc.gz): 1 = the compartment, 0 = elsewhere; or label maps together with "
                                      "--remap")
    training_voxel_size: float | None = parameter(
        None, help="voxel size in Å the network is trained at, recorded in the model: tomograms at other voxel sizes "
                   "(more than 1%% off) are rescaled to it with their masks, up to 4x either way (default: the first "
                   "tomogram's)")
    out: str = parameter(help="model file to write (e.g. cytosol2d.pt); the resumable state goes to MODEL.last.pt")
    equalize_to: str | None = parameter(
        None, help="equalize the training tomograms, in memory, to 'auto' (their mean spectrum) or to a reference "
                   "(a tomogram or a spectrum TSV); the reference is stored in the model and 'deepict segment2d' "
                   "equalizes new tomograms to it (--equalize auto), so data from other microscopes or defocus look "
                   "like the training data (default: none)")
    spectrum_lowpass_angstrom: float | None = parameter(None, help="low-pass (Å) applied with that equalization "
                                                                   "(default: none)")
    resume: bool = parameter(False, help="continue the interrupted training of OUT from OUT.last.pt (its settings "
                                         "are kept; --epochs and --patience may be raised); starts afresh if there "
                                         "is no such file")
    threads: int | None = threads_parameter()
    precision: str = precision_parameter()
    training: Train2DConfig = parameter(factory=Train2DConfig, help="network and training")


@dataclass(kw_only=True)
class Segment2DJob:
    step: ClassVar[str] = "segment2d"

    model: str = parameter(help="2D model file from 'deepict train2d'")
    tomogram: str = parameter(help="tomogram to segment (MRC)")
    out: str = parameter(help="binary mask to write (int8 MRC, 1 = compartment)")
    probability_map: str | None = parameter(None, help="also write the unsmoothed per-voxel probabilities "
                                                       "(float32 MRC)")
    threshold: float | None = parameter(None, help="probability threshold after smoothing, in [0, 1) (default: the "
                                                   "model's, calibrated on its validation data at training; DeePiCt "
                                                   "used 0.75)")
    sigma: float | None = parameter(None, help="Gaussian smoothing along z in slices; 0 = none (default: the "
                                               "model's, usually 5)")
    batch_size: int = parameter(DEFAULT_BATCH_SIZE, help="tiles per network call; larger is faster on a GPU but "
                                                         "needs more memory (default: %(default)s)")
    z_range: list[int] | None = parameter(None, help="only segment slices FIRST..END-1 (0-based); the others are 0 "
                                                     "(default: all slices)")
    tile_size: int | None = parameter(None, help="prediction tile edge, a multiple of 16 (default: chosen from the "
                                                 f"model's training tile up to {MAX_AUTO_TILE} px to need the least "
                                                 "computation)")
    crop: int | None = parameter(None, help="rim discarded from every tile, px (default: the model's, usually 48)")
    voxel_size: float | None = parameter(None, help="voxel size of the tomogram in Å, e.g. when its header is wrong "
                                                    "(default: its header)")
    ignore_voxel_size: bool = parameter(False, help="segment even if the tomogram's voxel size differs from the "
                                                    "model's by more than 5%%")
    equalize: str = parameter("auto", choices=EQUALIZE_MODES,
                              help="equalize the tomogram to the model's reference spectrum (and low-pass) first: "
                                   "auto = if the model stores one (trained with --equalize-to), on = always (error "
                                   "if it has none), off = never (default %(default)s); the equalized tomogram is a "
                                   "temporary file next to the output")
    device: str = device_parameter()
    threads: int | None = threads_parameter()
    precision: str = precision_parameter()


@dataclass(kw_only=True)
class SpectrumJob:
    step: ClassVar[str] = "spectrum"

    tomogram: str = parameter(help="tomogram (MRC) to measure")
    out: str = parameter(help="spectrum table to write (atomically)")
    voxel_size: float | None = parameter(None, help="voxel size in Å (default: from the MRC header; required if the "
                                                    "header has none)")
    bins: int | None = parameter(None, help="number of frequency shells up to the corner of the Fourier box "
                                            "(default: shells 1 / (longest side × voxel size) wide)")
    threads: int | None = parameter(None, help=_FFT_THREADS_HELP)


@dataclass(kw_only=True)
class EqualizeJob:
    step: ClassVar[str] = "equalize"

    tomogram: str = parameter(help="tomogram (MRC) to equalize")
    reference: str = parameter(help="reference tomogram or spectrum table (see above)")
    out: str = parameter(help="equalized tomogram to write (float32 MRC, mean 0, std 1; written atomically)")
    voxel_size: float | None = parameter(None, help="voxel size of --tomogram in Å (default: from its MRC header)")
    lowpass_angstrom: float | None = parameter(None, help="also low-pass the result: gain 0.5 at this resolution "
                                                          "in Å (sigmoid). Must be at least 2 × the voxel size "
                                                          "(Nyquist). Default: no low-pass")
    lowpass_width: float = parameter(DEFAULT_LOWPASS_WIDTH,
                                     help="10–90%% transition width of the low-pass as a fraction of its cut-off "
                                          "frequency, in (0, 1] (default %(default)s: gain 0.9 at 0.95 and 0.1 at "
                                          "1.05 × the cut-off frequency)")
    reference_voxel_size: float | None = parameter(None, help="voxel size in Å of the reference: required for an "
                                                              "original DeePiCt TSV; for a reference tomogram it "
                                                              "overrides the header")
    reference_box: list[int] | None = parameter(None, help="box size in voxels of the tomogram an original DeePiCt "
                                                           "TSV was extracted from (required for that format; the "
                                                           "order does not matter)")
    spectrum_out: str | None = parameter(None, help="also write the spectrum of the equalized tomogram (TSV)")
    threads: int | None = parameter(None, help=_FFT_THREADS_HELP)


@dataclass(kw_only=True)
class EvaluateJob:
    step: ClassVar[str] = "evaluate"

    pred: str | None = parameter(None, help="predicted coordinates (x,y,z[,score]; or a motl)")
    gt: str | None = parameter(None, help="ground-truth coordinates of the same tomogram")
    radius: float = parameter(10.0, help="tolerance radius in voxels of that tomogram (default: 10, as DeePiCt)")
    curve: str | None = parameter(None, help="also write the PR curve (threshold, n_kept, tp, fp, precision, recall, "
                                             "f1)")
    pred_mask: str | None = parameter(None, help="predicted binary mask (nonzero = foreground)")
    probability_map: str | None = parameter(None, help="predicted probability map (any score map)")
    gt_mask: str | None = parameter(None, help="ground-truth binary mask (nonzero = foreground)")
    bins: int = parameter(DEFAULT_BINS, help="histogram bins for the voxel AUPRC (default: %(default)s)")
    json: str | None = parameter(None, help="also write the JSON result to this file")


#: The help of the tsId and voxel-size options of the steps that read tomograms only for their names and sizes.
TOMO_NAME_HELP = "tsId per tomogram (default: the tomogram file name without extension)"
TOMOGRAMS_VOXEL_SIZE_HELP = "voxel size of the tomograms when their MRC headers hold none (or are wrong)"


@dataclass(kw_only=True)
class ExportJob:
    step: ClassVar[str] = "export"

    coords: list[str] = parameter(help="coordinate file(s), one per tomogram (repeat the option or list several)")
    tomogram: list[str] = parameter(help="tomogram(s) the coordinates refer to, in the same order as --coords")
    format: str = parameter(choices=FORMATS + (COPICK_FORMAT,), help="output format (see above)")
    out: str = parameter(help="output file (relion4, relion5, dynamo .tbl, single-tomogram motl .csv) or folder "
                              "(warp, multi-tomogram motl)")
    output_pixel_size: float | None = parameter(None, help="pixel size of the written coordinates (default: each "
                                                           "tomogram's voxel size)")
    tomo_name: list[str] | None = parameter(None, help=TOMO_NAME_HELP)
    voxel_size: float | None = parameter(None, help=TOMOGRAMS_VOXEL_SIZE_HELP)
    copick_object: str | None = parameter(None, help="copick: object name of all the picks (default: each row's "
                                                     "class name)")
    copick_user_id: str = parameter("deepict", help="copick: user id of the picks files (default %(default)s)")
    copick_session_id: str = parameter("0", help="copick: session id of the picks files (default %(default)s, "
                                                 "copick's id for picks made by a tool)")
    copick_radius: float | None = parameter(None, help="copick: particle radius in Å of an object the config lacks")


@dataclass(kw_only=True)
class ImportPicksJob:
    step: ClassVar[str] = "import-picks"

    copick: str = parameter(help="copick project: its config JSON (or the folder holding copick_config.json)")
    run: list[str] = parameter(help="run name(s) (tsIds) to read")
    object: str = parameter(help="pickable object name (e.g. ribosome)")
    user_id: str = parameter(help="user id of the picks")
    session_id: str = parameter(help="session id of the picks")
    voxel_size: float = parameter(help="voxel size in Å of the tomograms the coordinates are for")
    out: str = parameter(help="output CSV (one run) or folder receiving <run>.csv per run")


@dataclass(kw_only=True)
class ImportStarJob:
    step: ClassVar[str] = "import-star"

    star: str = parameter(help="RELION 4 or 5 particles STAR file (rlnTomoName: each tomogram's tsId)")
    tomogram: list[str] = parameter(help="the tomograms the particles are in: their size and voxel size convert "
                                         "the STAR's values to their voxels")
    tomo_name: list[str] | None = parameter(None, help=TOMO_NAME_HELP + "; RELION's rlnTomoName")
    voxel_size: float | None = parameter(None, help=TOMOGRAMS_VOXEL_SIZE_HELP)
    pixel_size: float | None = parameter(None, help="RELION 4: the pixel size in Å of rlnCoordinateX/Y/Z when the "
                                                    "file has no rlnDetectorPixelSize (default: the tomograms' voxel "
                                                    "size); RELION 5's centred Å need none")
    out: str = parameter(help="output CSV (one tomogram) or folder receiving <tsId>.csv per tomogram")


@dataclass(kw_only=True)
class EnsembleJob:
    step: ClassVar[str] = "ensemble"

    models: list[str] = parameter(help="two or more 3D model files trained for the same classes on tomograms "
                                       "equalized alike (e.g. the same training with different --seed)")
    out: str = parameter(help="ensemble model file to write (e.g. fas_ensemble.pt): pick and segment3d use it as "
                              "any model, averaging the members' probabilities")
    tomograms: list[str] | None = parameter(None, help="the members' training tomograms: the ensemble's "
                                                       "post-processing is calibrated on their validation slabs "
                                                       "(default: the members' median threshold, minimum size and "
                                                       "duplicate distance)")
    coords: list[str] | None = parameter(None, help="one coordinate CSV per --tomograms tomogram, same order")
    voxel_size: float | None = parameter(None, help="voxel size in Å if the tomograms' headers lack it")
    device: str = device_parameter()
    threads: int | None = threads_parameter()
    precision: str = precision_parameter()


@dataclass(kw_only=True)
class ModelInfoJob:
    step: ClassVar[str] = "model-info"

    model: str = parameter(help="model file (from train3d, train2d or import-model)")
    json: str | None = parameter(None, help="also write the JSON to this file")


@dataclass(kw_only=True)
class FilterContextJob:
    step: ClassVar[str] = "filter-context"

    coords: str = parameter(help="coordinate table of any picker (CSV x,y,z in 0-based voxels of its tomogram; "
                                 "every other column is kept)")
    context: str = parameter(help="context mask (MRC) of the same tomogram, at any binning: voxels above 0 are the "
                                  "context (a binary mask, or every label of a label map)")
    mode: str = parameter(CONTEXT_MODES[0], choices=CONTEXT_MODES,
                          help="intersection: keep the points in the mask; contact: in the mask or within the "
                               "distance of it; colocalization: within the distance of the mask's surface, inside "
                               "or outside (at a compartment's border, on or beside a membrane; points deep inside "
                               "are rejected) (default %(default)s)")
    distance_angstrom: float = parameter(0.0, help="distance in Å for contact and colocalization (not used by "
                                                   "intersection; default %(default)s)")
    out: str = parameter(help="CSV of the kept coordinates (all columns, input order)")
    rejected: str | None = parameter(None, help="also write the rejected coordinates here (kept and rejected are "
                                                "the input rows)")
    tomogram: str | None = parameter(None, help="the coordinates' tomogram (only its header is read): the mask must "
                                                "cover its extent")
    voxel_size: float | None = parameter(None, help="voxel size in Å of the coordinates (and their tomogram) "
                                                    "(default: the table's '# voxel_size_angstrom' line, else the "
                                                    "tomogram's header, else the mask's)")
    context_voxel_size: float | None = parameter(None, help="voxel size in Å of the mask (default: its header, else "
                                                            "the coordinates')")


@dataclass(kw_only=True)
class FilamentsJob:
    step: ClassVar[str] = "filaments"

    mask: str | None = parameter(None, help="filament mask (MRC; voxels above 0 are filament), e.g. from segment3d "
                                            "or segment2d")
    probability_map: str | None = parameter(None, help="filament probability map (MRC) instead of a mask, "
                                                       "thresholded at --threshold")
    threshold: float = parameter(0.5, help="probability from which a voxel of --probability-map is filament "
                                           "(default %(default)s)")
    voxel_size: float | None = parameter(None, help="voxel size in Å of the mask or map (default: its header; a "
                                                    "header that disagrees is refused)")
    out: str = parameter(help="CSV of the sampled points: x, y, z (0-based voxels), rot, tilt, psi (RELION angles: "
                              "the centre line's direction), filament_id, arc_length_angstrom")
    tracing: FilamentOptions = parameter(help="how filaments are traced and sampled (spacing required)")


#: The job class of each ``deepict`` subcommand.
JOB_CLASSES = {cls.step: cls for cls in (Train3DJob, PickJob, Segment3DJob, ImportModelJob, Train2DJob, Segment2DJob,
                                         SpectrumJob, EqualizeJob, EvaluateJob, ExportJob, ModelInfoJob, EnsembleJob,
                                         FilterContextJob, ImportPicksJob, ImportStarJob, FilamentsJob)}


# --------------------------------------------------------------------------------------------
# The device of a step that runs a network
# --------------------------------------------------------------------------------------------

def device_path(job_class: type) -> str | None:
    """Path of the ``device`` parameter of a job (``"training.device"``), ``None`` for a step without a network."""
    return next((path for path in parameter_paths(job_class) if path.split(".")[-1] == "device"), None)


def runs_network(job_class: type) -> bool:
    """Whether the step of ``job_class`` runs a network (it then has a device)."""
    return device_path(job_class) is not None


def set_device(job, device: str) -> None:
    """Run the network of ``job`` on ``device`` (auto, cpu, cuda, cuda:N)."""
    path = device_path(type(job))
    if path is None:
        raise ValueError(f"deepict {job.step} runs no network: it has no device")
    *groups, name = path.split(".")
    owner = job
    for group in groups:
        owner = getattr(owner, group)
    setattr(owner, name, device)


# --------------------------------------------------------------------------------------------
# Job files
# --------------------------------------------------------------------------------------------

def job_to_dict(job) -> dict:
    """The JSON content of a job file."""
    return {STEP_KEY: job.step, VERSION_KEY: FORMAT_VERSION, **_values(job)}


def _values(group) -> dict:
    values = {}
    for field in parameter_fields(type(group)):
        value = getattr(group, field.name)
        values[field.name] = _values(value) if dataclasses.is_dataclass(value) else _plain(value)
    return values


def _plain(value):
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def write_job(job, path):
    """Write ``job`` as a JSON job file (atomically, with the permissions of any new file)."""
    text = json.dumps(job_to_dict(job), indent=2, ensure_ascii=False) + "\n"
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def read_job(path, job_class: type | None = None):
    """The job in the job file ``path``; ``job_class``: the step it must be for.

    A file that is not a valid job (unreadable, not JSON, another step, an unknown parameter, a
    missing or mistyped value) raises :class:`InputFileError` naming the file and the fix.
    """
    check_readable(path, "job file")
    try:
        data = json.loads(open(path, encoding="utf-8").read())
    except UnicodeDecodeError:
        raise InputFileError(path, "is not a text file", _WRITE_AGAIN) from None
    except json.JSONDecodeError as exc:
        raise InputFileError(path, f"is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})",
                             _WRITE_AGAIN) from None
    if not isinstance(data, dict):
        raise InputFileError(path, "does not hold a job (a JSON object with the step and its parameters)",
                             _WRITE_AGAIN)
    step = data.pop(STEP_KEY, None)
    version = data.pop(VERSION_KEY, None)
    if step not in JOB_CLASSES:
        raise InputFileError(path, f"names no step of deepict ('{STEP_KEY}': {json.dumps(step)})",
                             f"Give '{STEP_KEY}' one of: {', '.join(JOB_CLASSES)}.")
    if job_class is not None and step != job_class.step:
        raise InputFileError(path, f"is a job of 'deepict {step}', not of 'deepict {job_class.step}'",
                             f"Run it with 'deepict {step} --job {path}', or give a {job_class.step} job file.")
    if not (isinstance(version, int) and not isinstance(version, bool) and 1 <= version <= FORMAT_VERSION):
        raise InputFileError(path, f"has job format version {json.dumps(version)}; this deepict reads version "
                                   f"{FORMAT_VERSION}", "Write the job again with this deepict (or update it).")
    return _group_from_dict(JOB_CLASSES[step], data, path, step, "")


def _parameter_paths(cls: type, prefix: str = "") -> list:
    """Every parameter of a job (or group) class as its path in a job file: ``threshold`` of a pick's
    ``postprocess`` group is ``postprocess.threshold``."""
    paths = []
    for field in parameter_fields(cls):
        inner = nested_class(cls, field)
        paths += _parameter_paths(inner, f"{prefix}{field.name}.") if inner is not None else [prefix + field.name]
    return paths


_WRITE_AGAIN = "Write the job file again (the Scipion protocol writes it; by hand, see deepict.jobs)."


def _group_from_dict(cls: type, data: dict, path, step: str, prefix: str):
    """``cls`` (a job or a group of its parameters) from the JSON object ``data`` of the job file ``path``."""
    fields = {field.name: field for field in parameter_fields(cls)}
    for key in data:
        if key not in fields:
            elsewhere = [where for where in _parameter_paths(JOB_CLASSES[step]) if where.rsplit(".", 1)[-1] == key]
            fix = (f"Its place is {' or '.join(repr(where) for where in elsewhere)}: move it there." if elsewhere else
                   f"Remove it or correct its name; the parameters are: {', '.join(prefix + name for name in fields)}.")
            raise InputFileError(path, f"has an unknown parameter '{prefix}{key}' for 'deepict {step}'", fix)
    hints = type_hints(cls)
    values = {}
    for name, field in fields.items():
        where = prefix + name
        if name not in data:
            if not has_default(field):
                raise InputFileError(path, f"lacks the required parameter '{where}' of 'deepict {step}'",
                                     f"Add '{name}' to the job file.")
            continue
        value = data[name]
        inner = nested_class(cls, field)
        if inner is not None:
            if not isinstance(value, dict):
                raise _wrong_type(path, where, value, "an object of parameters")
            values[name] = _group_from_dict(inner, value, path, step, where + ".")
            continue
        values[name] = _checked(hints[name], value, path, where)
        if value == [] and not has_default(field):  # as the option's nargs="+"
            raise InputFileError(path, f"gives '{where}' an empty list", "Give at least one value.")
        choices = field.metadata.get(CHOICES)
        if choices is not None and values[name] not in choices:
            raise InputFileError(path, f"gives '{where}' the value {json.dumps(value)}",
                                 f"Give one of: {', '.join(map(str, choices))}.")
    return cls(**values)


_NAMES = {bool: ("true or false", "true or false values"), int: ("a whole number", "whole numbers"),
          float: ("a number", "numbers"), str: ("a text", "texts"), list: ("a list", "lists"),
          dict: ("an object", "objects")}


def _checked(kind, value, path, where):
    """``value`` if it has the type ``kind`` (floats also from whole numbers), else InputFileError."""
    origin, arguments = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in arguments:
            return None
        options = [argument for argument in arguments if argument is not type(None)]
        kind, origin, arguments = options[0], typing.get_origin(options[0]), typing.get_args(options[0])
        if not _fits(kind, value):
            raise _wrong_type(path, where, value, f"{_describe(kind)} or null")
    elif not _fits(kind, value):
        raise _wrong_type(path, where, value, _describe(kind))
    if origin is list:
        return [_checked(arguments[0], item, path, f"{where}[{index}]") for index, item in enumerate(value)] \
            if arguments else list(value)
    return float(value) if kind is float else value


def _fits(kind, value) -> bool:
    base = typing.get_origin(kind) or kind
    if base is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if base is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, base)


def _describe(kind) -> str:
    base, arguments = typing.get_origin(kind) or kind, typing.get_args(kind)
    if base is list and arguments:
        return f"a list of {_NAMES[typing.get_origin(arguments[0]) or arguments[0]][1]}"
    return _NAMES[base][0]


def _wrong_type(path, where, value, expected) -> InputFileError:
    return InputFileError(path, f"gives '{where}' the value {json.dumps(value)}, which is not {expected}",
                          f"Give {expected}.")


__all__ = ["FORMAT_VERSION", "JOB_CLASSES", "InferenceOptions", "PostprocessOptions", "Train3DJob", "PickJob",
           "Segment3DJob", "ImportModelJob", "Train2DJob", "Segment2DJob", "SpectrumJob", "EqualizeJob",
           "EvaluateJob", "ExportJob", "ModelInfoJob", "FilterContextJob", "ImportPicksJob", "ImportStarJob", "device_path", "runs_network", "set_device",
           "job_to_dict", "write_job", "read_job"]
