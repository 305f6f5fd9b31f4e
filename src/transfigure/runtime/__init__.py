"""Where and how code runs: device/precision choice and torchrun process groups.

Shared by training, evaluation, inference, serving and the pipelines; imports only torch.
"""
