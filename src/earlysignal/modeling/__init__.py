"""Training, baselines, calibration, metrics, MLflow logging and the model registry.

Heavy imports stay in the submodules; import what you need from them, e.g.
`from earlysignal.modeling.train import train_model` or
`from earlysignal.modeling.artifacts import load_training_artifacts, load_scoring_model`.
"""
