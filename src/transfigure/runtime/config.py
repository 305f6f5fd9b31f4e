"""What the launcher tells this process through the environment (the only place it is read).

``torchrun`` sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; without it they are unset and
the process is rank 0 of 1.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class LaunchEnv:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1


def launch_env() -> LaunchEnv:
    """This process's place in a torchrun launch (rank 0 of 1 when not launched by torchrun)."""
    return LaunchEnv(
        rank=int(os.environ.get("RANK", "0")),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        world_size=int(os.environ.get("WORLD_SIZE", "1")),
    )
