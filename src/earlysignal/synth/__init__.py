"""The synthetic borough: people, households, latent adversity, services, outcomes and ground truth.

`generate_borough` writes a borough in the shared data contract; `oracle_risk` scores residents from the
ground truth (what a model could at best know). See docs/synthetic-borough.md.
"""

from earlysignal.synth.bias import parse_recording_bias
from earlysignal.synth.borough import STAGES, BoroughSummary, SynthError, generate_borough
from earlysignal.synth.oracle import oracle_risk
from earlysignal.synth.recording_change import parse_recording_change

__all__ = ["STAGES", "BoroughSummary", "SynthError", "generate_borough", "oracle_risk", "parse_recording_bias",
           "parse_recording_change"]
