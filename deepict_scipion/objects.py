"""Scipion objects of the plugin: a trained DeePiCt network as a first-class project object."""

import json

import pyworkflow.object as pwobj
from pwem.objects import EMObject


class DeepictModel(EMObject):
    """A trained DeePiCt network (our self-describing model file).

    Besides the file it records what protocols need to check their inputs without opening the file:
    the kind (``3d`` particles/structures, ``2d`` compartments), the class names, the voxel size
    it was trained at (Å), the sphere radius per class (Å) and whether it carries a reference
    spectrum for on-the-fly equalization.
    """

    def __init__(self, filename=None, **kwargs):
        EMObject.__init__(self, **kwargs)
        self._filename = pwobj.String(filename)
        self._kind = pwobj.String()
        self._classes = pwobj.String()
        self._voxelSize = pwobj.Float()
        self._radiiAngstrom = pwobj.String()
        self._hasSpectrum = pwobj.Boolean(False)
        self._source = pwobj.String()
        self._depth = pwobj.Integer()
        self._postprocess = pwobj.String()
        self._members = pwobj.Integer(0)
        self._validationSplit = pwobj.String()

    def getFileName(self):
        return self._filename.get()

    def setFileName(self, filename):
        self._filename.set(filename)

    def getKind(self):
        return self._kind.get()

    def getClasses(self):
        return [c for c in (self._classes.get() or "").split(",") if c]

    def getVoxelSize(self):
        return self._voxelSize.get()

    def getRadiusAngstrom(self, className):
        """The training sphere radius of a class in Å, or None (structure masks, imported models)."""
        radii = dict(zip(self.getClasses(), (self._radiiAngstrom.get() or "").split(",")))
        value = radii.get(className)
        return float(value) if value else None

    def getDepth(self):
        """Pooling levels of the U-Net (inference boxes must be divisible by 2^depth), or None if not recorded."""
        return self._depth.get()

    def getPostprocess(self):
        """The post-processing the model suggests: {"threshold", "min_size", "max_size"} ({} if not recorded)."""
        return json.loads(self._postprocess.get() or "{}")

    def getMemberCount(self):
        """How many networks an ensemble averages (``deepict ensemble``); 0 for a single network."""
        return self._members.get() or 0

    def getValidationSplit(self):
        """Where its training kept validation slabs: {"val_fraction", "patch_size"}, or None where not recorded
        (imported networks, ensembles, models registered by an older version)."""
        return json.loads(self._validationSplit.get() or "null")

    def hasSpectrum(self):
        return bool(self._hasSpectrum.get())

    def getSource(self):
        """Where the network comes from (``ModelInfo.source``: our training, or a published checkpoint)."""
        return self._source.get()

    def setFromInfo(self, info):
        """Fill the fields from the JSON written by ``deepict model-info``."""
        self._kind.set(info["kind"])
        self._classes.set(",".join(info["classes"]))
        self._voxelSize.set(info.get("voxel_size"))
        radii = info.get("sphere_radius_angstrom") or {}
        self._radiiAngstrom.set(",".join(str(radii.get(c, "")) for c in info["classes"]))
        self._hasSpectrum.set(bool(info.get("has_spectrum")))
        self._source.set(info.get("source"))
        self._depth.set(info.get("depth", (info.get("architecture") or {}).get("depth")))
        self._members.set(len(info.get("members") or []))
        self._postprocess.set(json.dumps(info.get("postprocess") or {}))
        self._validationSplit.set(json.dumps(info.get("validation_split")))

    def __str__(self):
        size = f"{self.getVoxelSize():.2f} Å" if self.getVoxelSize() else "unknown voxel size"
        ensemble = f", ensemble of {self.getMemberCount()}" if self.getMemberCount() else ""
        return f"DeepictModel ({(self.getKind() or '?').upper()}, {', '.join(self.getClasses())}, {size}{ensemble})"
