"""Layer 2: profiles, the model hub (loaders for every role, tiny checkpoints), encoders and
the LLM backends. Imports only vidagent.core.
"""
