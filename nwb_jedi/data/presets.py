"""Mapper presets for public monkey reaching datasets and the embedded data (DESIGN appendix A).

A preset is a dict of `ConditionMapper` keyword arguments; explicit options override it.
"""

from __future__ import annotations

from typing import Any

from nwb_jedi.errors import UserError

PRESETS: dict[str, dict[str, Any]] = {
    # NLB MC_Maze family (DANDI 000128; 000138/000139/000140 = Large/Medium/Small): conditions are
    # (maze, version); NLB aligns to movement onset, -250..+450 ms, and scores held-in neurons.
    "mc_maze": {
        "by": ["trial_type", "trial_version"],
        "align": "move_onset_time",
        "window": (-0.25, 0.45),
        "bin_size": 0.02,
        "trial_filter": "success == True",
        "exclude_heldout": True,
    },
    # NLB Area2_Bump (DANDI 000127): reach direction x (active reach | passive bump).
    "area2_bump": {
        "by": ["cond_dir", "ctr_hold_bump"],
        "align": "move_onset_time",
        "window": (-0.1, 0.5),
        "bin_size": 0.02,
        "exclude_heldout": True,
    },
    # Perich/Miller center-out (DANDI 000688): rewarded trials, one condition per target.
    "perich_center_out": {
        "by": "target_id",
        "align": "go_cue_time",
        "window": (-0.1, 0.5),
        "bin_size": 0.02,
        "trial_filter": "result == 'R'",
    },
    # The embedded Yu et al. (2009) PMd data: the 400 ms of the delay period that the source
    # keeps (100..500 ms after target onset) for 7 reach targets.
    "yu2009": {
        "by": "reach_target",
        "align": "target_on_time",
        "window": (0.1, 0.5),
        "bin_size": 0.02,
        "trial_filter": {"subset": "ex1_delay"},
    },
}


# The NLB dandisets hold a train and a test file; their presets fit the train file (which has the
# trials table and behavior) unless the SOURCE or --asset names another. Glob patterns.
PRESET_ASSETS: dict[str, str] = {
    "mc_maze": "*_desc-train_*.nwb",
    "area2_bump": "*_desc-train_*.nwb",
}


def preset(name: str) -> dict[str, Any]:
    """The mapper keyword arguments of a preset (a copy)."""
    key = name.lower().replace("-", "_")
    if key not in PRESETS:
        raise UserError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return dict(PRESETS[key])
