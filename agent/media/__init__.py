"""Layer 3: video decoding and sampling, the SQLite store, the frame index, text search over
the store, sample videos and the Ray engine. Imports vidagent.core and vidagent.models.
"""
