"""Spectrum equalization: make tomograms from different microscopes or settings look alike."""

import os
import shutil

from pwem.objects import EMFile
from pyworkflow import BETA
from pyworkflow.object import Float, String
from pyworkflow.protocol import params
from pyworkflow.protocol.constants import STEPS_PARALLEL
from tomo.objects import SetOfTomograms, Tomogram

from deepict.conventions import SPECTRUM_COLUMNS
from deepict.jobs import EqualizeJob, SpectrumJob

from ..constants import LOWPASS_ATTRIBUTE, LOWPASS_WIDTH_ATTRIBUTE, ORIGINAL_SPECTRUM_COLUMNS, SPECTRUM_ATTRIBUTE
from ..convert import spectrumFileHeader, tomogramKey, tomogramsByKey
from .protocol_base import ProtDeepictBase, counted

REFERENCE_TOMOGRAM, REFERENCE_FILE = 0, 1


class ProtDeepictEqualize(ProtDeepictBase):
    """Equalize the radial amplitude spectrum of tomograms to a reference ("spectrum matching").

    Tomograms from different microscopes, phase plates, defocus or reconstruction settings differ
    in their Fourier amplitude profile, and a network trained on one kind generalises poorly to the
    others. Every tomogram is filtered so that its rotationally averaged amplitude spectrum matches
    that of one reference tomogram (or a stored spectrum), optionally low-pass filtered, and
    normalised to mean 0 and standard deviation 1. Train on equalized tomograms and equalize new
    ones to the same reference (the pick and segment protocols can do it on the fly).
    """

    _label = "equalize spectrum"
    _devStatus = BETA
    _possibleOutputs = {"Tomograms": SetOfTomograms, "referenceSpectrum": EMFile}
    stepsExecutionMode = STEPS_PARALLEL
    _jobClass = EqualizeJob

    def _defineParams(self, form):
        form.addSection(label="Input")
        form.addParam("inputTomograms", params.PointerParam, pointerClass="SetOfTomograms", important=True,
                      label="Tomograms", help="Tomograms to equalize (any voxel size).")
        form.addParam("referenceSource", params.EnumParam, choices=["a tomogram", "a spectrum file"],
                      default=REFERENCE_TOMOGRAM, display=params.EnumParam.DISPLAY_HLIST, label="Reference",
                      help="The tomogram whose spectrum the others are matched to (e.g. a good tomogram of the "
                           "training data), or a spectrum table measured before.")
        # A set and a tsId, not a pointer to one tomogram: Scipion's chooser lists no items of a SetOfTomograms.
        form.addParam("referenceTomograms", params.PointerParam, pointerClass="SetOfTomograms", allowsNull=True,
                      condition=f"referenceSource == {REFERENCE_TOMOGRAM}", label="Reference tomograms",
                      help="The set that holds the reference tomogram (e.g. the training tomograms, or the input "
                           "tomograms themselves). Its voxel size may differ from the input's: the spectra are "
                           "matched in physical frequency (1/Å).")
        form.addParam("referenceTsId", params.StringParam, default="",
                      condition=f"referenceSource == {REFERENCE_TOMOGRAM}", label="Reference tomogram (tsId)",
                      help="Which tomogram of that set is the reference: its tomogram id (tsId, as the set's "
                           "Analyze results lists them; else its file name without extension). Empty: the set's "
                           "first tomogram.")
        form.addParam("referenceFile", params.FileParam, allowsNull=True,
                      condition=f"referenceSource == {REFERENCE_FILE}", label="Reference spectrum file",
                      help="A TSV written by 'deepict spectrum' (or by this protocol: extra/reference_spectrum.tsv), "
                           "or DeePiCt's original spectrum TSV (columns freq, intensity; e.g. the authors' "
                           "spectrum_TS_001.tsv), which also needs the voxel size and box of its tomogram.")
        line = form.addLine("Reference voxel size and box",
                            condition=f"referenceSource == {REFERENCE_FILE}",
                            help="Only for an original DeePiCt TSV (shells in index units of the tomogram it was "
                                 "measured on): that tomogram's voxel size and box, e.g. 13.48 and '928 928 464' "
                                 "for spectrum_TS_001.tsv of the published models.")
        line.addParam("referenceVoxelSize", params.FloatParam, allowsNull=True, label="voxel size (Å)")
        line.addParam("referenceBox", params.StringParam, default="", label="box (x y z)")

        form.addSection(label="Filter")
        form.addParam("lowpassAngstrom", params.FloatParam, default=40.0, allowsNull=True,
                      label="Low-pass resolution (Å)",
                      help="Also low-pass the result (smooth sigmoid, gain 0.5 at this resolution). Must be at "
                           "least 2 x the voxel size (Nyquist); about 3 x the voxel size removes the noisiest "
                           "frequencies (40 Å at 13.48 Å/voxel). Empty: no low-pass. Use the same value for every "
                           "tomogram a network is trained on or applied to.")
        form.addParam("lowpassWidth", params.FloatParam, default=self._default("lowpass_width"),
                      condition="lowpassAngstrom",
                      validators=[params.Range(0.01, 1.0)], expertLevel=params.LEVEL_ADVANCED,
                      label="Low-pass transition width",
                      help=self._help("lowpass_width"))
        self._defineComputeParams(form, gpu=False)

    # ----------------------------------------- steps -----------------------------------------
    def _insertAllSteps(self):
        self.tomos = tomogramsByKey(self.inputTomograms.get())
        reference = self._insertFunctionStep(self.referenceStep, needsGPU=False)
        steps = [self._insertFunctionStep(self.equalizeStep, key, prerequisites=[reference], needsGPU=False)
                 for key in self.tomos]
        self._insertFunctionStep(self.createOutputStep, prerequisites=steps, needsGPU=False)

    def referenceStep(self):
        """The reference spectrum as a DeePiCt-scipion TSV in extra/ (also an output of the protocol)."""
        out = os.path.abspath(self.referenceSpectrumPath())
        if self.referenceSource.get() == REFERENCE_TOMOGRAM:
            tomo = self.referenceTomogram()
            self.runDeepict(SpectrumJob(tomogram=os.path.abspath(tomo.getFileName()), out=out,
                                        voxel_size=tomo.getSamplingRate()), "reference_spectrum")
        elif self._isOriginalSpectrum():
            # Index units -> physical frequency (a small table, no voxel work).
            from deepict.spectrum import read_spectrum, write_spectrum
            write_spectrum(out, read_spectrum(self.referenceFile.get(), self.referenceVoxelSize.get(),
                                              self._referenceBox()))
        else:
            shutil.copyfile(self.referenceFile.get(), out)

    def equalizeStep(self, key):
        tomo = self.tomos[key]
        source = os.path.abspath(tomo.getFileName())
        self.runDeepict(SpectrumJob(tomogram=source, out=os.path.abspath(self.inputSpectrumPath(key)),
                                    voxel_size=tomo.getSamplingRate()), f"spectrum_{key}")
        self.runDeepict(EqualizeJob(tomogram=source, reference=os.path.abspath(self.referenceSpectrumPath()),
                                    out=os.path.abspath(self.equalizedPath(key)), voxel_size=tomo.getSamplingRate(),
                                    spectrum_out=os.path.abspath(self.outputSpectrumPath(key)),
                                    lowpass_angstrom=self.lowpassResolution(), lowpass_width=self.lowpassWidth.get()),
                        f"equalize_{key}")

    def createOutputStep(self):
        inputs = self.inputTomograms.get()
        output = self._createSetOfTomograms()
        output.copyInfo(inputs)
        for key, tomo in self.tomos.items():
            equalized = Tomogram()
            equalized.copyInfo(tomo)  # sampling rate, acquisition, tsId, origin
            equalized.setLocation(self.equalizedPath(key))
            output.append(equalized)
        spectrum = os.path.abspath(self.referenceSpectrumPath())
        setattr(output, SPECTRUM_ATTRIBUTE, String(spectrum))
        setattr(output, LOWPASS_ATTRIBUTE, Float(self.lowpassResolution()))
        setattr(output, LOWPASS_WIDTH_ATTRIBUTE, Float(self.lowpassWidth.get()))
        reference = EMFile(filename=spectrum)
        self._defineOutputs(Tomograms=output, referenceSpectrum=reference)
        self._defineSourceRelation(self.inputTomograms, output)
        if self.referenceSource.get() == REFERENCE_TOMOGRAM:
            self._defineSourceRelation(self.referenceTomograms, output)
            self._defineSourceRelation(self.referenceTomograms, reference)

    # ----------------------------------------- files -----------------------------------------
    def referenceSpectrumPath(self):
        return self._getExtraPath("reference_spectrum.tsv")

    def equalizedPath(self, key):
        return self._getExtraPath(f"{key}_equalized.mrc")

    def inputSpectrumPath(self, key):
        return self._getExtraPath(f"{key}_input_spectrum.tsv")

    def outputSpectrumPath(self, key):
        return self._getExtraPath(f"{key}_equalized_spectrum.tsv")

    def spectrumFiles(self):
        """[(key, input spectrum TSV, equalized spectrum TSV)] of the tomograms done so far (for viewers)."""
        keys = [tomogramKey(t) for t in self.inputTomograms.get().iterItems(orderBy="id")] \
            if self.inputTomograms.get() is not None else []
        return [(k, self.inputSpectrumPath(k), self.outputSpectrumPath(k)) for k in keys
                if os.path.exists(self.inputSpectrumPath(k)) and os.path.exists(self.outputSpectrumPath(k))]

    # ----------------------------------------- helpers ----------------------------------------
    def lowpassResolution(self):
        """The low-pass resolution (Å) the tomograms are filtered at, or None (for viewers too)."""
        value = self.lowpassAngstrom.get()
        return value if value else None  # empty or 0: none

    def referenceTomogram(self):
        """The reference tomogram: the item of "Reference tomograms" whose key (tsId, else file name) is "Reference
        tomogram (tsId)", the set's first if that is empty; None if there is no such set or item."""
        tomograms, wanted = self.referenceTomograms.get(), (self.referenceTsId.get() or "").strip()
        if tomograms is None:
            return None
        return next((t.clone() for t in tomograms.iterItems(orderBy="id") if not wanted or tomogramKey(t) == wanted),
                    None)

    def _referenceBox(self):
        return [int(v) for v in (self.referenceBox.get() or "").replace(",", " ").split()]

    def _isOriginalSpectrum(self):
        header = spectrumFileHeader(self.referenceFile.get()) or []
        return all(c in header for c in ORIGINAL_SPECTRUM_COLUMNS) and not all(c in header for c in SPECTRUM_COLUMNS)

    # ------------------------------------------ info -----------------------------------------
    def _validate(self):
        errors = self._validateTomograms(self.inputTomograms, "Tomograms")
        if self.referenceSource.get() == REFERENCE_TOMOGRAM:
            errors += self._validateReference()
        else:
            errors += self._validateSpectrumFile()
        lowpass = self.lowpassResolution()
        tomograms = self.inputTomograms.get()
        if lowpass is not None and tomograms is not None and tomograms.getSamplingRate():
            nyquist = 2 * tomograms.getSamplingRate()
            if lowpass < 0:
                errors.append("The low-pass resolution must be positive (empty: no low-pass).")
            elif lowpass < nyquist:
                errors.append(f"A low-pass at {lowpass:g} Å is finer than the Nyquist limit of the tomograms "
                              f"(2 x {tomograms.getSamplingRate():.2f} Å = {nyquist:.2f} Å). Give at least "
                              f"{nyquist:.1f} Å (about {3 * tomograms.getSamplingRate():.0f} Å is typical), "
                              "or leave it empty for none.")
            else:
                dims = tomograms.getDim()  # (x, y, z) of one tomogram
                extent = max(dims) * tomograms.getSamplingRate() if dims and all(dims) else None
                if extent and lowpass > extent:
                    errors.append(f"A low-pass at {lowpass:g} Å is longer than the tomograms themselves "
                                  f"({extent:.0f} Å): it would remove all their detail. Give a smaller value "
                                  "(about 3 x the voxel size), or leave it empty for none.")
        return errors

    def _validateReference(self):
        """A reference tomogram that exists, in a set of tomograms (not masks or probability maps)."""
        tomograms = self.referenceTomograms.get()
        if tomograms is None:
            return ["Reference tomograms: none selected. Choose the set that holds the reference tomogram (e.g. the "
                    "training tomograms), or give a spectrum file."]
        errors = self._tomogramsNotMasksErrors(tomograms, "Reference tomograms")
        tomo = self.referenceTomogram()
        if tomo is None:
            keys = [tomogramKey(t) for t in tomograms.iterItems(orderBy="id")]
            shown = ", ".join(keys[:8]) + (f" and {len(keys) - 8} more" if len(keys) > 8 else "")
            return errors + [f"Reference tomogram (tsId): '{self.referenceTsId.get()}' is not in "
                             f"{tomograms.getNameId()} ({shown or 'empty'}): give one of these, or leave it empty "
                             "for the first."]
        if not tomo.getFileName() or not os.path.exists(tomo.getFileName()):
            errors.append(f"Reference tomogram: file {tomo.getFileName()} not found.")
        return errors

    def _validateSpectrumFile(self):
        path = self.referenceFile.get()
        if not path:
            return ["Reference spectrum file: none given. Give a TSV from 'deepict spectrum', or choose a "
                    "reference tomogram."]
        if not os.path.isfile(path):
            return [f"Reference spectrum file {path} not found."]
        header = spectrumFileHeader(path)
        if header is None:
            return [f"Reference spectrum file {path} is not a readable text table."]
        if all(c in header for c in SPECTRUM_COLUMNS):
            return []
        if all(c in header for c in ORIGINAL_SPECTRUM_COLUMNS):
            errors = []
            if not self.referenceVoxelSize.get() or self.referenceVoxelSize.get() <= 0:
                errors.append(f"{os.path.basename(path)} is an original DeePiCt spectrum (columns freq, intensity) "
                              "in index units: give the voxel size (Å) of the tomogram it was measured on.")
            try:
                box = self._referenceBox()
            except ValueError:
                box = []
            if len(box) != 3 or min(box) < 2:
                errors.append(f"{os.path.basename(path)} is an original DeePiCt spectrum: give the box (x y z "
                              "voxels) of the tomogram it was measured on, e.g. '928 928 464'.")
            return errors
        missing = [c for c in SPECTRUM_COLUMNS if c not in header]
        return [f"Reference spectrum file {path} lacks the column(s) {', '.join(missing)} (its header is "
                f"{' '.join(header)}). Give a TSV written by 'deepict spectrum' (columns "
                f"{' '.join(SPECTRUM_COLUMNS)}) or an original DeePiCt one (freq, intensity)."]

    def _referenceLabel(self):
        if self.referenceSource.get() == REFERENCE_TOMOGRAM:
            tomo = self.referenceTomogram()
            return f"tomogram {tomogramKey(tomo)}" if tomo is not None else "?"
        return f"spectrum file {self.referenceFile.get()}"

    def _summary(self):
        lowpass = f", low-pass {self.lowpassResolution():g} Å" if self.lowpassResolution() else ", no low-pass"
        summary = [f"Reference: {self._referenceLabel()}{lowpass}."]
        if hasattr(self, "Tomograms"):
            summary.append(f"{counted(self.Tomograms.getSize(), 'tomogram')} equalized.")
        if os.path.exists(self.referenceSpectrumPath()):
            summary.append(f"Reference spectrum: {self.referenceSpectrumPath()} (give it to 'train 3D network' "
                           "and to 'deepict equalize --reference').")
        return summary

    def _methods(self):
        if not hasattr(self, "Tomograms"):
            return []
        lowpass = f" and low-pass filtered at {self.lowpassResolution():g} Å" if self.lowpassResolution() else ""
        return [f"The radial amplitude spectra of {counted(self.Tomograms.getSize(), 'tomogram')} were equalized to "
                f"that of {self._referenceLabel()}{lowpass}, as in DeePiCt [deTeresaTrueba2023]."]
