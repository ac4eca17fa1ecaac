"""House-number reader: read whole digit sequences from street photos (SVHN), end to end.

One module per job: `download` (fetch and unpack archives), `digitstruct` (read/write SVHN's
digitStruct.mat), `preprocess` (crop, grayscale, normalise, store), `synthetic` (SVHN-format data made
here), `notmnist` (letters A-J), `model`, `train`, `metrics`, `plots`, `predict`, `sweep`, `baselines`.
The numbered scripts at the top of the repository are thin command-line fronts for these modules.
"""

__version__ = "0.1.0"
