"""Packaged bench presets (``aem-train bench --preset NAME``): quick.yaml, standard.yaml, paper.yaml."""
