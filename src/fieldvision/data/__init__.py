"""Dataset formats, readers, caches, torch Datasets and synthetic generators.

Import the submodules directly (``from fieldvision.data.biomass import read_train_table``);
nothing is re-exported here, so importing one format does not import every dependency.
"""
