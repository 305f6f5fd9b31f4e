"""Where and how code runs: device/precision choice, torchrun process groups, remote folders (fsspec).

Shared by training, evaluation, inference, serving and the pipelines; imports only torch and fsspec.
"""
