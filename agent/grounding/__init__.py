"""Layer 4: the temporal grounding head in the style of R2-Tuning, all of it: model, loss,
checkpoint loader, data sets, feature caches and training. Imports core, models and media.
"""
