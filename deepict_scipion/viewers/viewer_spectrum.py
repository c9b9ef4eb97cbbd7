"""Viewer of a spectrum equalization: radial spectra of the inputs, the reference and the outputs."""

import os

from pyworkflow.viewer import DESKTOP_TKINTER, MessageView, Viewer

from ..protocols import ProtDeepictEqualize

#: At most this many tomograms are drawn (the first ones of the set), to keep the plot legible.
MAX_TOMOGRAMS = 6
PNG_NAME = "spectra.png"


def _readSpectrum(path):
    # Only a small table; the spectrum module needs numpy and scipy, no torch.
    from deepict.spectrum import read_spectrum
    return read_spectrum(path)


def plotEqualizationSpectra(protocol, pngPath=None, maxTomograms=MAX_TOMOGRAMS):
    """A Plotter with the radial spectra of ``protocol`` (a finished or running ProtDeepictEqualize).

    Top: amplitude (log scale) over spatial frequency of the reference (black), of each input
    tomogram (dashed) and of its equalized version (solid, same colour); the low-pass is a dotted
    line. Bottom: equalized / reference amplitude, which is 1 where the spectra match. The figure
    is also written to ``pngPath`` when given. Returns None when no spectrum exists yet.
    """
    from pyworkflow.gui.plotter import Plotter

    referencePath = protocol.referenceSpectrumPath()
    files = protocol.spectrumFiles()[:maxTomograms]
    if not os.path.exists(referencePath) or not files:
        return None
    reference = _readSpectrum(referencePath)
    plotter = Plotter(x=2, y=1, figsize=(7, 8), windowTitle="Spectrum equalization",
                      mainTitle="Radial amplitude spectra")
    spectra = plotter.createSubPlot("Input (dashed), equalized (solid) and reference (black)",
                                    "Spatial frequency (1/Å)", "Mean Fourier amplitude")
    colours = [f"C{i % 10}" for i in range(len(files))]
    spectra.semilogy(reference.frequency, reference.amplitude, color="black", linewidth=2.5, label="reference")
    top = reference.max_frequency
    for colour, (key, inputPath, outputPath) in zip(colours, files):
        before, after = _readSpectrum(inputPath), _readSpectrum(outputPath)
        spectra.semilogy(before.frequency, before.amplitude, color=colour, linestyle="--", linewidth=1,
                         label=f"{key} input")
        spectra.semilogy(after.frequency, after.amplitude, color=colour, linewidth=1.2, label=f"{key} equalized")
        top = max(top, before.max_frequency)
    ratio = plotter.createSubPlot("Equalized / reference", "Spatial frequency (1/Å)", "Amplitude ratio")
    for colour, (key, _, outputPath) in zip(colours, files):
        after = _readSpectrum(outputPath)
        inside = after.frequency <= reference.max_frequency
        ratio.plot(after.frequency[inside], after.amplitude[inside] / reference.at(after.frequency[inside]),
                   color=colour, linewidth=1.2, label=key)
    ratio.axhline(1.0, color="black", linewidth=1)
    ratio.set_ylim(0, 2)
    lowpass = protocol.lowpassResolution()
    for axis in (spectra, ratio):
        if lowpass:
            axis.axvline(1.0 / lowpass, color="grey", linestyle=":", label=f"low-pass {lowpass:g} Å")
        axis.set_xlim(0, top)
        axis.grid(True, alpha=0.3)
    spectra.legend(fontsize=7, ncol=2)
    ratio.legend(fontsize=7, ncol=2)
    if pngPath:
        plotter.savefig(pngPath)
    return plotter


class DeepictSpectrumViewer(Viewer):
    """Plots the radial amplitude spectra of an equalization (input, reference, output); also saved
    as extra/spectra.png of the protocol."""

    _label = "radial spectra"
    _name = "DeePiCt radial spectra"  # what the right-click menu shows (else the class name)
    _targets = [ProtDeepictEqualize]
    _environments = [DESKTOP_TKINTER]

    def _visualize(self, obj, **kwargs):
        plotter = plotEqualizationSpectra(obj, obj._getExtraPath(PNG_NAME))
        if plotter is None:
            return [MessageView("No spectra yet: the protocol has not equalized any tomogram.",
                                title="Spectrum equalization", tkParent=self.getTkRoot())]
        return [plotter]
