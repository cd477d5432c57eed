"""Procedural datasets in the exact on-disk formats of the real data they imitate.

Each generator is deterministic in its seed: `pasture.generate_pasture_dataset` (CSIRO
Image2Biomass, calibrated to the real label table), `coats.generate_coat_dataset`
(Jaguar Re-ID rosette coats), `leaves.generate_leaf_dataset` (rice leaves with small
lesions and masks, for MIL), `site.generate_site` (a multi-camera mall in MOTChallenge
files with appearance embeddings and exact crossing/visit truth, for flow).
"""
