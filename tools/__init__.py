"""The agent's tools: one module per tool, each wrapping one foundation model."""
