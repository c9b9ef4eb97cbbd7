"""Compartment segmentation (cytosol, organelles) with the 2D U-Net: its defaults and where its parts live.

The 2D pipeline is split into modules with one job each:

- :mod:`.masks`: label masks (checking, remapping to 0/1);
- :mod:`.normalization`: per-tomogram z-score normalisation;
- :mod:`.tiling`: the tiles (shared with the 3D sliding window) and the tile size;
- :mod:`.smoothing`: the z-smoothing + threshold post-processing;
- :mod:`.voxel_size`: a tomogram's voxel size against the model's;
- :mod:`deepict.train.train2d`: training a :class:`~deepict.nn.networks.UNet2D` from tomograms + masks;
- :mod:`.slices2d`: applying a trained model to a tomogram (probability map and binary mask).

Conventions: volumes are (z, y, x) arrays; the network sees one z slice at a time; every
tomogram is normalised with the mean and standard deviation of the whole tomogram, at
training and at prediction alike.
"""

#: Prediction defaults when a model does not record its own: z smoothing (slices), mask threshold,
#: rim discarded from every tile (px), tiles per forward pass (on a CPU the speed per pixel hardly
#: depends on it, the memory does: one 1024 px tile of a 928 px slice peaks at 0.70 GB, two at 0.97 GB;
#: on a GPU raise it).
DEFAULT_SIGMA = 5.0
DEFAULT_THRESHOLD = 0.75
DEFAULT_CROP = 48
DEFAULT_BATCH_SIZE = 1
#: Largest prediction tile (px) the automatic tile size considers: larger tiles waste less on their
#: discarded rims (a 928 px slice: one 1024 px tile instead of four of 560 px, 16 % less work and
#: 0.46 s a slice instead of 0.54 on a 2-core CPU in bf16; nine of 416 px took 0.60 s).
MAX_AUTO_TILE = 1024
