"""Viewer of a spectrum equalization: radial spectra of the inputs, the reference and the outputs."""

import os

import numpy as np

from pyworkflow.viewer import DESKTOP_TKINTER, MessageView, Viewer

from ..protocols import ProtDeepictEqualize

#: At most this many tomograms are drawn (the first ones of the set), to keep the plot legible.
MAX_TOMOGRAMS = 6
PNG_NAME = "spectra.png"


def _readSpectrum(path):
    # Only a small table; the spectrum module needs numpy and scipy, no torch.
    from deepict.spectrum import read_spectrum
    return read_spectrum(path)


def equalizedRatio(after, reference, lowpass=None, lowpassWidth=None):
    """(frequency, amplitude ratio) of an equalized tomogram's spectrum ``after`` to its target, the ``reference``
    times the low-pass, at the frequencies the reference covers, scaled to 1 in the pass band: an equalized
    tomogram is normalized to unit variance, so a low-pass that removes a share of its power raises what is
    left (the unscaled ratio read 1.32 everywhere for the reference tomogram itself)."""
    from deepict.spectrum.equalize import lowpass_response
    inside = after.frequency <= reference.max_frequency
    frequency = after.frequency[inside]
    gain = lowpass_response(frequency, lowpass, lowpassWidth) if lowpass else np.ones(len(frequency))
    ratio = after.amplitude[inside] / (reference.at(frequency) * np.maximum(gain, 1e-12))
    passBand = (gain >= 0.9) & (frequency > 0)
    return frequency, ratio / (np.median(ratio[passBand]) if passBand.any() else 1.0)


def plotEqualizationSpectra(protocol, pngPath=None, maxTomograms=MAX_TOMOGRAMS):
    """A Plotter with the radial spectra of ``protocol`` (a finished or running ProtDeepictEqualize).

    Top: amplitude (log scale) over spatial frequency of the reference (black), of each input
    tomogram (dashed) and of its equalized version (solid, same colour); the low-pass is a dotted
    line. Bottom: equalized / (reference × low-pass) amplitude (:func:`equalizedRatio`), which is 1 where the
    spectra match. The figure
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
    lowpass = protocol.lowpassResolution()
    ratio = plotter.createSubPlot("Equalized / (reference × low-pass), scaled to 1 in the pass band",
                                  "Spatial frequency (1/Å)", "Amplitude ratio")
    for colour, (key, _, outputPath) in zip(colours, files):
        ratio.plot(*equalizedRatio(_readSpectrum(outputPath), reference, lowpass, protocol.lowpassWidth.get()),
                   color=colour, linewidth=1.2, label=key)
    ratio.axhline(1.0, color="black", linewidth=1)
    ratio.set_ylim(0, 2)
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
