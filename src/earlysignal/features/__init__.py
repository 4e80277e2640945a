"""Point-in-time features: spec, cohort, labels, SQL rendering and the matrix builder."""

from earlysignal.features.builder import build_feature_matrix
from earlysignal.features.labels import follow_up_ended_ids
from earlysignal.features.matrix import (
    FeatureMatrix,
    build_or_reuse_feature_matrix,
    data_fingerprint,
    default_matrix_path,
    matrix_status_words,
    read_feature_matrix,
    sidecar_path,
    write_feature_matrix,
)
from earlysignal.features.spec import FeatureDefinition, config_with_spec, feature_definitions, spec_hash

__all__ = [
    "FeatureDefinition",
    "FeatureMatrix",
    "build_feature_matrix",
    "build_or_reuse_feature_matrix",
    "config_with_spec",
    "data_fingerprint",
    "default_matrix_path",
    "feature_definitions",
    "follow_up_ended_ids",
    "matrix_status_words",
    "read_feature_matrix",
    "sidecar_path",
    "spec_hash",
    "write_feature_matrix",
]
