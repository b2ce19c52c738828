"""``esper tasks``: list the task presets."""

from __future__ import annotations

import argparse

from esper.app.reporting import markdown_table
from esper.app.tasks import DEFAULT_TASK, TASKS


def run(_: argparse.Namespace) -> int:
    rows = []
    for preset in TASKS.values():
        rows.append(
            [
                preset.name + (" (default)" if preset.name == DEFAULT_TASK else ""),
                preset.host.describe(),
                ", ".join(preset.slots.names()),
                preset.episode_epochs,
                preset.metric,
                preset.data_source,
            ]
        )
    print(markdown_table(["task", "host", "slots", "epochs", "metric", "data"], rows))
    for preset in TASKS.values():
        print(f"\n{preset.name}: {preset.description}")
    return 0
