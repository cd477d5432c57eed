"""Procedural datasets in the exact on-disk formats of the real competitions.

Each generator is deterministic in its seed and calibrated to the real data it imitates,
e.g. `fieldvision.data.synthetic.pasture.generate_pasture_dataset` (CSIRO Image2Biomass).
"""
