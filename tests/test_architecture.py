"""Architecture-only mode: full-size networks from their configs, random weights, no download."""

import pytest

pytestmark = pytest.mark.slow  # builds an 866 M-parameter UNet (about 3.5 GB, ~1 min on 2 cores)


def test_sd21_unet_has_the_published_parameter_count():
    from diffusers import UNet2DConditionModel

    from dreamflow.priors.architecture import SD21_UNET, SD21_UNET_PARAMETERS

    unet = UNet2DConditionModel(**SD21_UNET)
    assert sum(p.numel() for p in unet.parameters()) == SD21_UNET_PARAMETERS
