"""The words of the protocols' summaries, methods and citations, built from stand-ins for their inputs and
outputs (no project, no run): counted nouns, rounded values, classes named in a sentence, one term per metric,
each reference listed once, the published network's warning shown once."""

from __future__ import annotations

import tempfile
from types import SimpleNamespace as NS

import pwem

from deepict.job_warnings import recording_warnings
from deepict.nn.model_files import PUBLISHED_SOURCE_PREFIX
from deepict_scipion import bibtex
from deepict_scipion.protocols import (ProtDeepictEnsemble, ProtDeepictExport, ProtDeepictFilterContext,
                                       ProtDeepictPick, ProtDeepictSegment3D, ProtDeepictTrain3D,
                                       ProtDeepictTraceFilaments)
from deepict_scipion.protocols.protocol_base import citeWithLink, counted, listed
from deepict_scipion.protocols.protocol_evaluate import summaryLines
from deepict_scipion.protocols.protocol_export import EXPORT_FORMATS

pwem.Domain.getProtocols()  # Scipion's registration: the protocols learn their package (its references)


class Pointer:
    def __init__(self, value):
        self.value = value

    def get(self):
        return self.value


def model(classes=("ribo",), source=None, spectrum=True, postprocess=None, voxel=13.48):
    return NS(getPostprocess=lambda: postprocess if postprocess is not None else
              {"threshold": 0.42, "min_size": 21, "min_distance": 8.01187},
              getClasses=lambda: list(classes), getMemberCount=lambda: 0, getVoxelSize=lambda: voxel,
              getSource=lambda: source, hasSpectrum=lambda: spectrum, __str__=lambda: "model")


def tomograms(count, voxel=13.48):
    return NS(getSize=lambda: count, getSamplingRate=lambda: voxel)


def finished(protocol, **attributes):
    protocol.isFinished = lambda: True
    protocol._ranInferenceJob = lambda: None  # no job file: the form's values
    for name, value in attributes.items():
        setattr(protocol, name, value)
    return protocol


def test_counted_nouns_and_lists():
    assert counted(1, "epoch") == "1 epoch"
    assert counted(2, "tomogram") == "2 tomograms"
    assert counted(0, "map") == "0 maps"
    assert counted(3, "class", "classes") == "3 classes"
    assert listed(["RELION 5"]) == "RELION 5"
    assert listed(["RELION 5", "Warp"]) == "RELION 5 and Warp"
    assert listed(["RELION 5", "Warp", "Dynamo"]) == "RELION 5, Warp and Dynamo"


def test_train3d_summary_counts_one_epoch_and_says_why_the_models_dice_differs():
    info = {"history": [{"loss": 1.414, "val_dice": 0.319}], "architecture": {"batch_norm": True},
            "weight_average": {"first_epoch": 1, "last_epoch": 1, "val_dice": 0.215}}
    text = " ".join(ProtDeepictTrain3D._historySummary(info))
    assert text.startswith("1 epoch, final loss 1.414, best validation Dice 0.319"), text
    assert "1 epochs" not in text
    assert "the weights of epoch 1 with batch-norm statistics estimated anew" in text
    assert "validation Dice 0.215 as it is, against 0.319 for the best epoch as trained" in text


def test_pick_methods_count_name_the_class_and_give_the_post_processing():
    pick = finished(ProtDeepictPick(), inputModel=Pointer(model()), inputTomograms=Pointer(tomograms(1, 26.96)),
                    output3DCoordinates=NS(getSize=lambda: 9, getBoxSize=lambda: 32))
    text = " ".join(pick._methods())
    assert text.startswith("9 particles of class 'ribo' were picked in 1 tomogram with"), text
    assert "ribo particles" not in text and "1 tomograms" not in text
    assert "probability threshold 0.42 (the model's suggestion)" in text
    assert "minimum particle size 21 voxels" in text
    assert "duplicates within 8.0 voxels merged" in text
    assert "box size 32 voxels" in text
    assert "rescaled to the network's 13.48 Å/voxel" in text
    pick.threshold.set(0.3)
    pick.minSize.set(5)
    text = " ".join(pick._methods())
    assert "probability threshold 0.3," in text and "minimum particle size 5 voxels" in text
    # the job that ran, not the form changed since (a Continue not run yet)
    ran = NS(class_name="", min_distance=6.0, postprocess=NS(threshold=0.25, min_size=7, max_size=None),
             inference=NS(test_time_rotations=True))
    pick._ranInferenceJob = lambda: ran
    text = " ".join(pick._methods())
    assert "probability threshold 0.25," in text and "minimum particle size 7 voxels" in text, text
    assert "duplicates within 6 voxels merged" in text and "four rotations about z" in text, text


def test_segment3d_methods_name_the_published_membrane_class_in_a_sentence():
    segment = finished(ProtDeepictSegment3D())
    segment.inputModel, segment.inputTomograms = Pointer(model(("memb",))), Pointer(tomograms(2))
    segment.segmentations = NS(getSize=lambda: 2)
    text = " ".join(segment._methods())
    assert text.startswith("Class 'memb' was segmented in 2 tomograms"), text
    assert "Memb was" not in text
    summary = " ".join(segment._summary())
    assert "2 tomograms segmented for class 'memb'" in summary


def test_probability_maps_are_said_what_they_are():
    pick = ProtDeepictPick()
    pick.inputModel = Pointer(model())
    text = pick._probabilityMapsSummary(NS(getSize=lambda: 2))
    assert text.startswith("The network's probability maps of class 'ribo' (before thresholding), one per tomogram "
                           "(2 maps): output 'probabilityMaps'"), text
    assert "<tsId>_probability.mrc" in text


def test_ensemble_post_processing_is_rounded():
    text = ProtDeepictEnsemble._postprocessText({"threshold": 0.5, "min_size": 21, "min_distance": 8.01187})
    assert text == "threshold 0.5, minimum cluster size 21 voxels, duplicate distance 8.0 voxels", text
    assert "8.01187" not in text


def test_filter_context_says_one_mask_per_tomogram():
    protocol = ProtDeepictFilterContext()
    protocol._counts = lambda: (3, 63)
    protocol.inputMasks = Pointer(NS(getSize=lambda: 2))
    protocol.inputCoordinates = Pointer(NS(getSamplingRate=lambda: 13.48))
    summary = " ".join(protocol._summary())
    assert "3 of 66 coordinates kept, 63 rejected" in summary
    assert "intersection of the 2 context masks" not in summary
    assert "each coordinate against its own tomogram's context mask; 2 masks, one per tomogram" in summary
    assert "filtered by the context mask of their tomogram (intersection)" in " ".join(protocol._methods())


def test_trace_summary_counts():
    protocol = ProtDeepictTraceFilaments()
    protocol._counts = lambda: (1, 1, 1)
    summary = " ".join(protocol._summary())
    assert "1 filament traced in 1 tomogram: 1 particle every" in summary, summary


def test_mask_evaluation_uses_one_term():
    evaluation = {"mode": "masks", "overall": {"f1": 0.014, "precision": 0.417, "recall": 0.007},
                  "tomograms": {"vpp_002": {"dice": 0.0}, "vpp_003": {"dice": 0.045, "max_f1": 0.1}}}
    lines = summaryLines(evaluation)
    assert lines[0].startswith("OVERALL: voxel F1 (Dice) 0.014"), lines
    assert lines[1:] == ["vpp_002: voxel F1 0.000", "vpp_003: voxel F1 0.045, best voxel F1 0.100"], lines
    assert not any(line.split(": ", 1)[1].startswith("Dice") for line in lines[1:])


def test_export_methods_list_the_formats_and_cite_nothing_of_their_own():
    export = finished(ProtDeepictExport(), inputCoordinates=Pointer(NS(getSize=lambda: 66)))
    export.selectedFormats = lambda: list(EXPORT_FORMATS)
    export.outputPixelSizeValue = lambda: 13.48
    labels = [label for label, _ in EXPORT_FORMATS.values()]
    text = " ".join(export._methods())
    assert f"{', '.join(labels[:-1])} and {labels[-1]}" in text, text
    assert "[deTeresaTrueba2023]" not in text
    assert not export.getCitations()
    citations = export.citations()
    assert "*Protocol references:* " not in citations
    assert "*Package references:*" in citations


def test_the_paper_is_listed_once_with_a_working_link():
    for protocol in (ProtDeepictPick(), ProtDeepictTrain3D(), ProtDeepictFilterContext(),
                     ProtDeepictTraceFilaments()):
        citations = protocol.citations()
        assert sum("de Teresa-Trueba et al." in line for line in citations) == 1, citations
        assert "[[https://doi.org/10.1038/s41592-022-01746-2][de Teresa-Trueba et al., Nature Methods, 2023]]" \
            in citations
    entry = bibtex.__doc__
    assert "doi = {10.1038/s41592-022-01746-2}" in entry
    assert citeWithLink({"doi": "10.1/x"})["doi"] == "https://doi.org/10.1/x"
    assert citeWithLink({"doi": "https://doi.org/10.1/x"})["doi"] == "https://doi.org/10.1/x"


def published_pick(folder, failed=False, engineWarned=True):
    """A pick of a published network, its job having printed the engine's warning (or not), finished or failed."""
    pick = ProtDeepictPick()
    pick.workingDir.set(folder)
    pick.inputModel = Pointer(model(source=f"{PUBLISHED_SOURCE_PREFIX} ribo.pth", spectrum=False))
    pick.inputTomograms = Pointer(tomograms(2))
    pick.isFailed = lambda: failed
    warning = pick._publishedWarning()
    if engineWarned:
        with recording_warnings(pick._getExtraPath("pick_t0.json")):
            print(f"warning: /x/model.pt: {warning}")
    pick.checkSummaryWarnings()
    return pick, warning


def test_the_published_network_is_warned_of_once():
    with tempfile.TemporaryDirectory() as folder:
        pick, warning = published_pick(folder)
        summary = "\n".join(pick.summary())
        assert summary.count(warning) == 1, summary
        assert warning in summary.split("*WARNINGS:*")[1]
        assert "The model is a published DeePiCt network without a reference spectrum: see WARNINGS." in summary
    with tempfile.TemporaryDirectory() as folder:  # before the run (or from a run that printed nothing)
        pick, warning = published_pick(folder, engineWarned=False)
        summary = "\n".join(pick.summary())
        assert summary.count(warning) == 1, summary
        assert "deepict equalize" in summary.split("*WARNINGS:*")[1]


def test_a_failed_run_does_not_warn_about_results_it_has_not():
    with tempfile.TemporaryDirectory() as folder:
        pick, warning = published_pick(folder, failed=True)
        summary = "\n".join(pick.summary())
        assert "published DeePiCt network" not in summary, summary


def test_segment2d_says_what_its_probability_maps_are():
    from deepict_scipion.protocols import ProtDeepictSegment2D
    segment = ProtDeepictSegment2D()
    segment.inputModel = Pointer(NS(getVoxelSize=lambda: 13.48, getClasses=lambda: ["cytosol"], __str__=lambda: "m"))
    segment.inputTomograms = Pointer(tomograms(1))
    segment.segmentations = NS(getSize=lambda: 1)
    summary = " ".join(segment._summary())
    assert summary.startswith("Cytosol segmented in 1 tomogram with"), summary
    assert "probability maps of class 'cytosol' (before smoothing and thresholding), one per tomogram: output " \
           "'probabilityMaps'" in summary


def test_copick_methods_count_and_cite_no_paper():
    from deepict_scipion.protocols import ProtDeepictCopickExport, ProtDeepictCopickImport
    export = finished(ProtDeepictCopickExport(), inputCoordinates=Pointer(NS(getSize=lambda: 1)))
    export.objectName.set("ribosome")
    text = " ".join(export._methods())
    assert text.startswith("1 coordinate was exported as copick picks of 'ribosome'"), text
    assert "[deTeresaTrueba2023]" not in text
    imported = finished(ProtDeepictCopickImport(), outputCoordinates=NS(getSize=lambda: 2))
    imported.objectName.set("ribosome")
    assert " ".join(imported._methods()).startswith("2 coordinates of 'ribosome' were imported from a copick project")
