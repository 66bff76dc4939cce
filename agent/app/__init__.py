"""Layer 8, the top: what users touch, the `vidagent` CLI and the HTTP server with its web UI.
Nothing imports it.
"""
