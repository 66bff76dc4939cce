"""Benchmarks: VideoQA adapters, metrics, runners, and performance benchmarks."""
