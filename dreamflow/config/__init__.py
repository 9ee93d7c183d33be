"""Typed run configuration (threestudio/nerfstudio style dataclasses) loaded strictly from YAML.

* `blocks.py`: the run config's blocks (camera, prior, NeRF, stages, ...);
* `methods.py`: each guidance method's recipe, every default with its source (no torch import);
* `loading.py`: the strict loader (unknown, moved and mistyped keys are errors naming the key);
* `recipes.py`: the values each method runs with, stage by stage, and their sources (`dreamflow recipe`).
"""

from dreamflow.config.blocks import (
    CameraConfig,
    ExportConfig,
    ExtractConfig,
    HashGridConfig,
    MeshStageConfig,
    NeRFConfig,
    NeRFStageConfig,
    PriorConfig,
    RunConfig,
    ShadingConfig,
    StageConfig,
    VolumeRenderConfig,
)
from dreamflow.config.loading import (
    ConfigError,
    for_method,
    from_dict,
    load_config,
    load_config_data,
    parse_overrides,
    read_config_data,
    to_dict,
    validate,
)
from dreamflow.config.methods import (
    METHOD_CONFIGS,
    APFOConfig,
    GuidanceConfig,
    LoRAConfig,
    MethodConfig,
    SDSConfig,
    StageGuidanceConfig,
    VSDConfig,
    method_names,
)

__all__ = [
    "METHOD_CONFIGS", "APFOConfig", "CameraConfig", "ConfigError", "ExportConfig", "ExtractConfig", "GuidanceConfig",
    "HashGridConfig", "LoRAConfig", "MeshStageConfig", "MethodConfig", "NeRFConfig", "NeRFStageConfig",
    "PriorConfig", "RunConfig", "SDSConfig", "ShadingConfig", "StageConfig", "StageGuidanceConfig", "VSDConfig",
    "VolumeRenderConfig", "for_method", "from_dict", "load_config", "load_config_data", "method_names",
    "parse_overrides", "read_config_data", "to_dict", "validate",
]
