import pytest
import torch
from torch import nn

from dreamflow.config import GuidanceConfig
from dreamflow.guidance import make_guidance
from dreamflow.guidance.schedules import apfo_position, apfo_timesteps
from dreamflow.priors.base import DiffusionPrior, TextEmbeddings

BETAS = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000) ** 2
ALPHAS_CUMPROD = torch.cumprod(1 - BETAS, 0)


class StubPrior:
    """Two small deterministic denoisers behind the prior interface."""

    num_train_timesteps = 1000
    prediction_type = "epsilon"
    device_ = torch.device("cpu")

    def __init__(self):
        self.alphas_cumprod = ALPHAS_CUMPROD
        self.calls = []

    timestep_index = DiffusionPrior.timestep_index
    alpha_sigma = DiffusionPrior.alpha_sigma
    noise_to_signal = DiffusionPrior.noise_to_signal
    add_noise = DiffusionPrior.add_noise

    def predict_eps_cfg(self, x_t, index, text, scale):
        cond, uncond = 0.5 * x_t + 1.0, 0.5 * x_t
        return uncond + scale * (cond - uncond)

    def predict_eps(self, x_t, index, text, uncond=False, use_lora=False, camera=None):
        return 0.25 * x_t

    def add_lora(self, config):
        self.lora = nn.Parameter(torch.zeros(1))
        return [self.lora]


def test_apfo_update_matches_hand_computed_target(monkeypatch):
    prior = StubPrior()
    config = GuidanceConfig(method="apfo", t_max=0.98, t_min=0.2, num_timesteps=4, guidance_scale=3.0, step_scale=0.7)
    guidance = make_guidance(prior, config, iterations=8, seed=5)
    monkeypatch.setattr(guidance, "train_source_model", lambda *a: {})
    latents = torch.randn(2, 4, 8, 8, requires_grad=True)
    text = TextEmbeddings(torch.zeros(2, 3, 4), torch.zeros(2, 3, 4))
    step = 5  # K = 8 / 4 = 2 steps per timestep -> block 2: t from 0.59 to 0.395
    noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(5 + 1))
    t_now, t_next = 0.98 - 2 * 0.195, 0.98 - 3 * 0.195
    i_now, i_next = round(t_now * 999), round(t_next * 999)
    a, s = ALPHAS_CUMPROD[i_now].sqrt(), (1 - ALPHAS_CUMPROD[i_now]).sqrt()
    x_t = a * latents.detach() + s * noise
    eps_pre = 0.5 * x_t + 3.0 * 1.0
    eps_src = 0.25 * x_t
    sigma = lambda i: ((1 - ALPHAS_CUMPROD[i]) / ALPHAS_CUMPROD[i]).sqrt()  # noqa: E731
    expected = 0.7 * (sigma(i_now) - sigma(i_next)) * (eps_pre - eps_src)
    output = guidance(latents, text, torch.zeros(2, 16), step)
    output.loss.backward()
    assert output.info["t"] == pytest.approx(t_now) and output.info["t_next"] == pytest.approx(t_next)
    assert torch.allclose(latents.grad * latents.shape[0], expected, atol=1e-5)


@pytest.mark.parametrize("shape", ["linear", "sigma", "ddim"])
def test_apfo_schedule_is_monotone_with_configured_ends(shape):
    grid = apfo_timesteps(0.98, 0.2, 20, shape, ALPHAS_CUMPROD)
    assert grid[0].item() == pytest.approx(0.98) and grid[-1].item() == pytest.approx(0.2)
    assert (grid[1:] <= grid[:-1]).all() and (grid[1:] < grid[:-1]).sum() >= len(grid) - 3


def test_apfo_position_spends_k_steps_per_timestep():
    grid = apfo_timesteps(1.0, 0.2, 10, "linear", ALPHAS_CUMPROD)
    blocks = [apfo_position(step, 100, grid, None)[0] for step in range(100)]
    assert blocks == sorted(blocks) and blocks[0] == 0 and blocks[-1] == 9 and blocks.count(3) == 10


@pytest.mark.parametrize("method", ["sds", "vsd"])
def test_sds_and_vsd_gradients(method, monkeypatch):
    prior = StubPrior()
    config = GuidanceConfig(method=method, t_max=0.98, t_min=0.02, guidance_scale=2.0)
    guidance = make_guidance(prior, config, iterations=10, seed=3)
    monkeypatch.setattr(guidance, "train_source_model", lambda *a: {})
    generator = torch.Generator().manual_seed(3 + 1)
    t = 0.02 + 0.96 * torch.rand(1, generator=generator)
    index = (t * 999).round().long()
    noise = torch.randn(1, 4, 8, 8, generator=generator)
    latents = torch.randn(1, 4, 8, 8, requires_grad=True)
    x_t = ALPHAS_CUMPROD[index].sqrt() * latents.detach() + (1 - ALPHAS_CUMPROD[index]).sqrt() * noise
    eps_pre = 0.5 * x_t + 2.0
    residual = noise if method == "sds" else 0.25 * x_t
    expected = (1 - ALPHAS_CUMPROD[index]) * (eps_pre - residual)
    guidance(latents, TextEmbeddings(torch.zeros(1, 3, 4), torch.zeros(1, 3, 4)), torch.zeros(1, 16), 0).loss.backward()
    assert torch.allclose(latents.grad, expected, atol=1e-5)


class RecordingPrior(StubPrior):
    """Records the timestep of every source-model (LoRA) call made with gradients: the fine-tuning steps."""

    def predict_eps(self, x_t, index, text, uncond=False, use_lora=False, camera=None):
        if use_lora and torch.is_grad_enabled():
            self.calls.append(float(index.float().mean()) / 999)
        return 0.25 * x_t * (1 + self.lora)


def read_scalars(info: dict) -> dict:
    from dreamflow.device import read_scalars as read

    return read(info)


def run_guidance(method: str, steps: int, **overrides) -> tuple[list[dict], list[float]]:
    prior = RecordingPrior()
    guidance = make_guidance(prior, GuidanceConfig(method=method, t_max=0.98, t_min=0.2, num_timesteps=5,
                                                   **overrides), iterations=steps, seed=0)
    text = TextEmbeddings(torch.zeros(1, 3, 4), torch.zeros(1, 3, 4))
    infos = [read_scalars(guidance(torch.randn(1, 4, 8, 8, requires_grad=True), text, torch.zeros(1, 16), step).info)
             for step in range(steps)]  # a method's info holds device scalars, read as the trainer does
    return infos, prior.calls


def test_apfo_fine_tunes_its_source_model_at_the_current_schedule_timestep():
    infos, source_t = run_guidance("apfo", 20)
    assert source_t == pytest.approx([round(info["t"] * 999) / 999 for info in infos], abs=1e-6)
    assert source_t == sorted(source_t, reverse=True) and len(set(source_t)) == 5  # t_1 > ... > t_N, K each
    uniform, _ = run_guidance("apfo", 20, source_timesteps="uniform")
    assert len({round(info["source_t"], 3) for info in uniform}) > 10  # t ~ U(0, 1): no schedule


def test_vsd_fine_tunes_at_uniform_t_and_anneals_its_range_after_a_fifth_of_the_stage():
    infos, source_t = run_guidance("vsd", 50)
    assert min(source_t) < 0.2 and max(source_t) > 0.8  # U(0, 1), not the guidance's own t
    assert max(info["t"] for info in infos[:10]) > 0.5  # U(0.2, 0.98) for the first 20 % of steps
    assert max(info["t"] for info in infos[10:]) <= 0.5  # then U(0.2, 0.5)
    sds, _ = run_guidance("sds", 50)
    assert max(info["t"] for info in sds[10:]) > 0.5  # SDS keeps one range (its recipe)


def test_apfo_constant_weighting_keeps_the_path_length():
    dsigma, _ = run_guidance("apfo", 5)
    constant, _ = run_guidance("apfo", 5, apfo_weighting="constant")
    assert sum(info["weight"] for info in dsigma) == pytest.approx(sum(info["weight"] for info in constant), rel=1e-4)
    assert len({round(info["weight"], 6) for info in constant}) == 1
    assert dsigma[0]["weight"] > 5 * dsigma[-1]["weight"]  # d sigma decays along the schedule
