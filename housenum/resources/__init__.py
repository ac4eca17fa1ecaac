"""Data files bundled with the package (svhn_label_stats.json: label statistics for housenum.synthetic)."""
