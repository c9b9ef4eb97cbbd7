"""Evaluate picks against ground-truth coordinates, or segmentations against ground-truth masks."""

import json
import os

import pyworkflow.object as pwobj
from pyworkflow import BETA
from pyworkflow.protocol import params
from pyworkflow.protocol.constants import STEPS_PARALLEL

from deepict.conventions import voxel_sizes_differ
from deepict.evaluate.metrics import FBETA_BETA
from deepict.evaluate.pooling import PARTICLE_KEYS, pool_particles, pool_voxels, read_curve_csv, write_curve_csv
from deepict.io import write_coordinates
from deepict.jobs import EvaluateJob

from ..convert import baseName, coordinateGroups, coordinateSetErrors, tomogramKey
from .protocol_base import ProtDeepictBase

MODE_PARTICLES = 0
MODE_VOXELS = 1


class ProtDeepictEvaluate(ProtDeepictBase):
    """Evaluate particle picks or segmentations against a ground truth.

    Particles: picks are matched one to one with ground-truth coordinates of the same tomogram
    (joined by tsId) within a radius in voxels, the highest scores first; precision, recall and F1
    per tomogram and overall (from the summed TP/FP/FN), F-beta with beta = 4 (recall-weighted, the CZII
    cryo-ET challenge's metric; its tolerance is our matching radius), the precision-recall curve over the score and
    its area (AUPRC). Ground truth at another sampling rate is rescaled to the picks' voxels.

    Voxels: predicted binary masks and/or probability maps against ground-truth masks of the same
    tomograms: voxel F1 (Dice) and the voxel AUPRC.

    Results: extra/evaluation.json, per-tomogram JSON and PR-curve CSVs in extra/, the summary, and the
    'DeePiCt evaluation' viewer (PR curves and F1 table).
    """

    _label = "evaluate picks / segmentations"
    _devStatus = BETA
    stepsExecutionMode = STEPS_PARALLEL
    _jobClass = EvaluateJob

    def __init__(self, **kwargs):
        ProtDeepictBase.__init__(self, **kwargs)
        self.overallF1 = pwobj.Float()
        self.overallFbeta = pwobj.Float()
        self.overallAuprc = pwobj.Float()

    def _defineParams(self, form):
        form.addSection(label="Input")
        form.addParam("evaluationMode", params.EnumParam, choices=["particles (coordinates)", "voxels (masks)"],
                      default=MODE_PARTICLES, display=params.EnumParam.DISPLAY_HLIST, label="Evaluate",
                      help="particles: picks against ground-truth coordinates (one-to-one matching within a radius; "
                           "precision, recall, F1, PR curve); voxels: binary masks and/or probability maps against "
                           "ground-truth masks (voxel F1/Dice, AUPRC).")
        form.addParam("inputCoordinates", params.PointerParam, pointerClass="SetOfCoordinates3D",
                      condition=f"evaluationMode=={MODE_PARTICLES}", label="Picks",
                      help="Predicted coordinates; their score ranks them for the PR curve.")
        form.addParam("groundTruthCoordinates", params.PointerParam, pointerClass="SetOfCoordinates3D",
                      condition=f"evaluationMode=={MODE_PARTICLES}", label="Ground-truth coordinates",
                      help="Annotated coordinates of the same tomograms (matched by tsId). At another sampling "
                           "rate they are rescaled to the picks' voxels by the ratio of sampling rates.")
        form.addParam("radius", params.FloatParam, default=self._default("radius"),
                      condition=f"evaluationMode=={MODE_PARTICLES}",
                      label="Matching radius (voxels)",
                      help="A pick within this distance (voxels of the picks' tomograms) of a still unmatched "
                           "ground-truth particle is a true positive (DeePiCt uses 10). It is the tolerance of F1 "
                           "and F-beta alike; the CZII challenge's F-beta counts half the particle radius.")
        form.addParam("inputMasks", params.PointerParam, pointerClass="SetOfTomoMasks", allowsNull=True,
                      condition=f"evaluationMode=={MODE_VOXELS}", label="Predicted binary masks",
                      help="Segmentations (nonzero = foreground): voxel F1 (Dice).")
        form.addParam("inputProbabilityMaps", params.PointerParam, pointerClass="SetOfTomoMasks", allowsNull=True,
                      condition=f"evaluationMode=={MODE_VOXELS}", label="Predicted probability maps",
                      help="Probability maps (e.g. 'keep probability maps' of pick/segment): voxel AUPRC and "
                           "the best voxel F1 over the threshold.")
        form.addParam("groundTruthMasks", params.PointerParam, pointerClass="SetOfTomoMasks",
                      condition=f"evaluationMode=={MODE_VOXELS}", label="Ground-truth masks",
                      help="Binary masks of the same tomograms (matched by tsId, else by tomogram file name).")
        form.addParam("bins", params.IntParam, default=self._default("bins"),
                      expertLevel=params.LEVEL_ADVANCED,
                      condition=f"evaluationMode=={MODE_VOXELS}", label="Histogram bins",
                      help=self._help("bins"))
        self._defineComputeParams(form, gpu=False, threads=2)

    def isParticleMode(self):
        return self.evaluationMode.get() == MODE_PARTICLES

    # ------------------------------------ steps ------------------------------------------------
    def _insertAllSteps(self):
        convert = self._insertFunctionStep(self.convertInputStep, needsGPU=False)
        steps = [self._insertFunctionStep(self.evaluateStep, key, prerequisites=[convert], needsGPU=False)
                 for key in self.pairKeys()]
        self._insertFunctionStep(self.summaryStep, prerequisites=steps, needsGPU=False)

    def pairKeys(self):
        """The tomogram keys evaluated: those of the ground truth that also have predictions' tomograms."""
        if self.isParticleMode():
            truth = self._precedentKeys(self.groundTruthCoordinates.get())
            return [k for k in truth if k in set(self._precedentKeys(self.inputCoordinates.get()))]
        truth = self._maskFiles(self.groundTruthMasks.get())
        keys = []
        for key in truth:
            if all(key in self._maskFiles(s) for s in self._predictionSets()):
                keys.append(key)
        return keys

    @staticmethod
    def _precedentKeys(coordinates):
        precedents = coordinates.getPrecedents() if coordinates is not None else None
        return [tomogramKey(t) for t in precedents.iterItems(orderBy="id")] if precedents is not None else []

    def _predictionSets(self):
        return [s for s in (self.inputMasks.get(), self.inputProbabilityMaps.get()) if s is not None]

    @staticmethod
    def _maskFiles(masks):
        """{key: file} of a SetOfTomoMasks: keyed by tsId, else by the base name of its tomogram."""
        files = {}
        for mask in masks.iterItems(orderBy="id"):
            key = mask.getTsId() or baseName(mask.getVolName()) or tomogramKey(mask)
            files[key] = os.path.abspath(mask.getFileName())
        return files

    def _inputPath(self, kind, key):
        return os.path.abspath(self._getExtraPath("inputs", f"{key}_{kind}.csv"))

    def _resultPath(self, key):
        return os.path.abspath(self._getExtraPath(f"{key}_evaluation.json"))

    def curvePath(self, key):
        return os.path.abspath(self._getExtraPath(f"{key}_pr_curve.csv"))

    def overallCurvePath(self):
        return os.path.abspath(self._getExtraPath("pr_curve_overall.csv"))

    def evaluationPath(self):
        return os.path.abspath(self._getExtraPath("evaluation.json"))

    def truthScale(self):
        """Factor taking ground-truth voxels to pick voxels: truth sampling rate / picks sampling rate."""
        picks, truth = self.inputCoordinates.get().getSamplingRate(), self.groundTruthCoordinates.get().getSamplingRate()
        if not voxel_sizes_differ(picks, truth):
            return 1.0
        return truth / picks

    def convertInputStep(self):
        if not self.isParticleMode():
            return
        os.makedirs(self._getExtraPath("inputs"), exist_ok=True)
        picks, truth = self.inputCoordinates.get(), self.groundTruthCoordinates.get()
        predGroups = coordinateGroups(picks, keepEmpty=True)
        truthGroups = coordinateGroups(truth, keepEmpty=True)
        for key in self.pairKeys():  # truth at its own sampling rate: the engine rescales it to the picks' voxels
            write_coordinates(self._inputPath("pred", key),
                              predGroups[key].table(picks.getSamplingRate(), withClass=False))
            write_coordinates(self._inputPath("truth", key),
                              truthGroups[key].table(truth.getSamplingRate() if self.truthScale() != 1.0
                                                     else picks.getSamplingRate(), withClass=False))

    def evaluateStep(self, key):
        if self.isParticleMode():
            job = EvaluateJob(pred=self._inputPath("pred", key), gt=self._inputPath("truth", key),
                              radius=self.radius.get(), curve=self.curvePath(key))
        else:
            job = EvaluateJob(gt_mask=self._maskFiles(self.groundTruthMasks.get())[key], bins=self.bins.get())
            if self.inputMasks.get() is not None:
                job.pred_mask = self._maskFiles(self.inputMasks.get())[key]
            if self.inputProbabilityMaps.get() is not None:
                job.probability_map = self._maskFiles(self.inputProbabilityMaps.get())[key]
        job.json = self._resultPath(key)
        self.runDeepict(job, f"evaluate_{key}")

    def summaryStep(self):
        results = {}
        for key in self.pairKeys():
            with open(self._resultPath(key)) as handle:
                results[key] = json.load(handle)
        evaluation = self._particleSummary(results) if self.isParticleMode() else self._voxelSummary(results)
        with open(self.evaluationPath(), "w") as handle:
            json.dump(evaluation, handle, indent=1)
        overall = evaluation["overall"]
        self.overallF1.set(overall.get("f1"))
        self.overallFbeta.set(overall.get("fbeta"))
        self.overallAuprc.set(overall.get("auprc"))
        self._store(self.overallF1, self.overallFbeta, self.overallAuprc)

    def _particleSummary(self, results):
        tomograms = {key: {k: r["particles"].get(k) for k in PARTICLE_KEYS} for key, r in results.items()}
        curves = [read_curve_csv(self.curvePath(k)) for k in tomograms]
        overall, curve = pool_particles(list(tomograms.values()), curves)
        write_curve_csv(self.overallCurvePath(), curve.rows())
        picks, truth = self.inputCoordinates.get(), self.groundTruthCoordinates.get()
        skipped = [k for k in self._precedentKeys(picks) if k not in tomograms]
        return {"mode": "particles", "radius": self.radius.get(), "sampling_rate": picks.getSamplingRate(),
                "ground_truth_sampling_rate": truth.getSamplingRate(), "ground_truth_scale": self.truthScale(),
                "tomograms": tomograms, "overall": overall,
                "curves": {**{k: os.path.basename(self.curvePath(k)) for k in tomograms},
                           "overall": os.path.basename(self.overallCurvePath())},
                "not_evaluated": skipped}

    def _voxelSummary(self, results):
        tomograms = {key: r["voxels"] for key, r in results.items()}
        binary, probability = self.inputMasks.get() is not None, self.inputProbabilityMaps.get() is not None
        return {"mode": "voxels", "tomograms": tomograms,
                "overall": pool_voxels(list(tomograms.values()), binary, probability),
                "binary_masks": binary, "probability_maps": probability}

    def loadEvaluation(self):
        """The content of extra/evaluation.json, or None before the protocol has finished."""
        if not os.path.exists(self.evaluationPath()):
            return None
        with open(self.evaluationPath()) as handle:
            return json.load(handle)

    # ------------------------------------ info ------------------------------------------------
    def _validate(self):
        if self.isParticleMode():
            return self._validateParticles()
        return self._validateVoxels()

    def _validateParticles(self):
        errors = self._validateNotEmpty(self.inputCoordinates, "Picks")
        errors += self._validateNotEmpty(self.groundTruthCoordinates, "Ground-truth coordinates")
        if errors:
            return errors
        if not self.radius.get() or self.radius.get() <= 0:
            errors.append(f"The matching radius must be > 0 voxels (got {self.radius.get()}).")
        picks, truth = self.inputCoordinates.get(), self.groundTruthCoordinates.get()
        errors += self._sameSetErrors(picks, truth, "Picks")
        for coordinates, label in ((picks, "Picks"), (truth, "Ground-truth coordinates")):
            if not coordinates.getSamplingRate() or coordinates.getSamplingRate() <= 0:
                errors.append(f"{label} have no sampling rate: import them with their tomograms.")
            precedents = coordinates.getPrecedents()
            if precedents is None or precedents.getSize() == 0:
                errors.append(f"{label}: the coordinates have no tomograms (their precedents are missing).")
            else:
                errors += [e for e in coordinateSetErrors(coordinates, label) if "have no tomogram" in e]
        if not errors and not self.pairKeys():
            errors.append(f"No tomogram in common: the picks are on {', '.join(self._precedentKeys(picks))} and the "
                          f"ground truth on {', '.join(self._precedentKeys(truth))} (tomograms are matched by tsId).")
        return errors

    @staticmethod
    def _sameSetErrors(predictions, truth, label):
        """Predictions that are the ground truth itself (Scipion fills both fields with the selected run's output)
        would score a perfect 1.0."""
        if predictions.getObjId() != truth.getObjId():
            return []
        return [f"{label} and the ground truth are the same set ({truth.getNameId()}): choose the annotated "
                "(imported) coordinates or masks as the ground truth."]

    def _validateVoxels(self):
        errors = self._validateNotEmpty(self.groundTruthMasks, "Ground-truth masks")
        if not self._predictionSets():
            errors.append("Give predicted binary masks and/or probability maps.")
        for pointer, label in ((self.inputMasks, "Predicted masks"), (self.inputProbabilityMaps, "Probability maps")):
            if pointer.get() is not None:
                errors += self._validateNotEmpty(pointer, label)
        if errors:
            return errors
        truth = self.groundTruthMasks.get()
        for predictions in self._predictionSets():
            errors += self._sameSetErrors(predictions, truth, str(predictions))
        errors += self._binaryMaskErrors(truth, "Ground-truth masks")
        errors += self._binaryMaskErrors(self.inputMasks.get(), "Predicted masks")  # the maps have their own field
        for predictions in self._predictionSets():
            if not self._sameSampling(predictions.getSamplingRate(), truth.getSamplingRate()):
                errors.append(f"{predictions} has {predictions.getSamplingRate():.2f} Å/voxel but the ground-truth "
                              f"masks {truth.getSamplingRate():.2f} Å/voxel: voxel metrics compare volumes of the "
                              "same tomograms at the same sampling; resample one of them first.")
        if not errors and not self.pairKeys():
            errors.append("No tomogram in common between the predictions and the ground-truth masks (matched by "
                          "tsId, else by tomogram file name).")
        missing = [path for s in self._predictionSets() + [truth] for path in self._maskFiles(s).values()
                   if not os.path.exists(path)]
        if missing:
            errors.append(f"Mask file(s) not found: {', '.join(missing)}.")
        return errors

    def _summary(self):
        evaluation = self.loadEvaluation() if self.isFinished() else None
        if evaluation is None:
            return ["Evaluation not finished yet."]
        return summaryLines(evaluation)

    def _methods(self):
        evaluation = self.loadEvaluation() if self.isFinished() else None
        if evaluation is None:
            return []
        overall = evaluation["overall"]
        if evaluation["mode"] == "particles":
            return [f"Picks were evaluated against ground truth by one-to-one matching within "
                    f"{evaluation['radius']:g} voxels: F1 {overall['f1']:.3f}, "
                    f"F-beta (beta {FBETA_BETA:g}) {_fmt(overall.get('fbeta'))}, AUPRC {overall['auprc']:.3f} "
                    "[deTeresaTrueba2023]."]
        return ["Segmentations were evaluated voxel-wise against ground-truth masks: "
                + ", ".join(f"{name} {overall[k]:.3f}" for k, name in (("f1", "voxel F1 (Dice)"), ("auprc", "AUPRC"))
                            if k in overall) + "."]


def _fmt(value):
    return "-" if value is None else (f"{value:.3f}" if isinstance(value, float) else str(value))


def tradeOffLines(points):
    """The precision-recall trade-off of an evaluation (``overall["trade_off"]``) as summary lines."""
    if not points:
        return []
    return ["Precision-recall trade-off (keep picks with score >= threshold; lower the picking threshold for "
            "more recall):"] + [
        f"  recall >= {p['recall_at_least']:g}: score >= {_fmt(p['threshold'])} keeps {p['n_kept']} picks, "
        f"precision {_fmt(p['precision'])}, recall {_fmt(p['recall'])}, F1 {_fmt(p['f1'])}" for p in points]


def summaryLines(evaluation):
    """Human-readable lines of an evaluation.json (the protocol's summary, also used by the viewer)."""
    overall = evaluation["overall"]
    lines = []
    if evaluation["mode"] == "particles":
        scale = evaluation.get("ground_truth_scale", 1.0)
        lines.append(f"Particles matched within {evaluation['radius']:g} voxels"
                     + (f"; ground truth rescaled x{scale:.4g} to the picks' sampling rate "
                        f"({evaluation['sampling_rate']:.2f} Å/px)" if scale != 1.0 else "") + ".")
        lines.append(f"OVERALL: precision {_fmt(overall['precision'])}, recall {_fmt(overall['recall'])}, "
                     f"F1 {_fmt(overall['f1'])}, F{FBETA_BETA:g} {_fmt(overall.get('fbeta'))}, "
                     f"AUPRC {_fmt(overall['auprc'])} "
                     f"(TP {overall['tp']}, FP {overall['fp']}, FN {overall['fn']}; best F1 {_fmt(overall['max_f1'])} "
                     f"at score >= {_fmt(overall['max_f1_threshold'])})")
        lines += tradeOffLines(overall.get("trade_off"))
        for key, t in evaluation["tomograms"].items():
            lines.append(f"{key}: precision {_fmt(t['precision'])}, recall {_fmt(t['recall'])}, F1 {_fmt(t['f1'])}, "
                         f"F{FBETA_BETA:g} {_fmt(t.get('fbeta'))}, AUPRC {_fmt(t['auprc'])} "
                         f"(TP {t['tp']}, FP {t['fp']}, FN {t['fn']})")
        if evaluation.get("not_evaluated"):
            lines.append(f"Not evaluated (no ground truth): {', '.join(evaluation['not_evaluated'])}")
    else:
        lines.append("OVERALL: " + ", ".join(
            f"{label} {_fmt(overall[k])}" for k, label in (("f1", "voxel F1 (Dice)"), ("precision", "precision"),
                                                           ("recall", "recall"), ("auprc", "mean AUPRC"))
            if k in overall))
        for key, t in evaluation["tomograms"].items():
            # one term: the overall line says voxel F1 (Dice) once, the tomograms' lines the same words
            parts = [f"{label} {_fmt(t[k])}" for k, label in (("dice", "voxel F1"), ("auprc", "AUPRC"),
                                                             ("max_f1", "best voxel F1")) if k in t]
            lines.append(f"{key}: " + ", ".join(parts))
    return lines
