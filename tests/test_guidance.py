import dataclasses

import pytest
import torch
from torch import nn

from dreamflow.config import APFOConfig, ConfigError, GuidanceConfig, SDSConfig, VSDConfig, load_config
from dreamflow.config.methods import APFOLoRAConfig, LoRAConfig
from dreamflow.guidance import make_guidance
from dreamflow.guidance.schedules import apfo_span, apfo_timesteps
from dreamflow.priors.base import DiffusionPrior, TextEmbeddings

BETAS = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000) ** 2
ALPHAS_CUMPROD = torch.cumprod(1 - BETAS, 0)
SINGLE = {"model": "single_model", "warmup_steps": 0}  # the stub prior is its own source model


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
    model_output_to_eps = DiffusionPrior.model_output_to_eps
    training_target = DiffusionPrior.training_target

    def predict_eps_cfg(self, x_t, index, text, scale):
        cond, uncond = 0.5 * x_t + 1.0, 0.5 * x_t
        return uncond + scale * (cond - uncond)

    def predict_output(self, x_t, index, text, uncond=False, use_lora=False, camera=None):
        return 0.25 * x_t

    def predict_eps(self, x_t, index, text, uncond=False, use_lora=False, camera=None):
        return self.model_output_to_eps(self.predict_output(x_t, index, text, uncond, use_lora, camera), x_t, index)

    def add_lora(self, config):
        self.lora = nn.Parameter(torch.zeros(1))
        return [self.lora]

    def lora_state_dict(self):
        return {"lora": self.lora.detach().clone()}


def guidance_config(method: str, **values) -> GuidanceConfig:
    """The method's published recipe with `values` changed (and a single-model source for the stub)."""
    cls = {"apfo": APFOConfig, "sds": SDSConfig, "vsd": VSDConfig}[method]
    lora_cls = {"apfo": APFOLoRAConfig, "vsd": LoRAConfig}.get(method)
    if lora_cls is not None:
        values.setdefault("lora", lora_cls(**SINGLE))
    return GuidanceConfig(method=method, **{method: cls(**values)})


def test_apfo_update_matches_hand_computed_target(monkeypatch):
    prior = StubPrior()
    config = guidance_config("apfo", t_max=0.98, t_min=0.2, num_timesteps=4, guidance_scale=3.0, step_scale=0.7)
    guidance = make_guidance(prior, config, iterations=8, seed=5)
    monkeypatch.setattr(guidance.source, "train", lambda *a: {})
    latents = torch.randn(2, 4, 8, 8, requires_grad=True)
    text = TextEmbeddings(torch.zeros(2, 3, 4), torch.zeros(2, 3, 4))
    step = 5  # 8 iterations over 4 blocks: 2 steps per timestep -> block 2: t from 0.59 to 0.395
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


def test_apfo_spends_k_steps_per_timestep():
    blocks = [apfo_span(step, 100, 10)[0] for step in range(100)]
    assert blocks == sorted(blocks) and blocks[0] == 0 and blocks[-1] == 9 and blocks.count(3) == 10


@pytest.mark.parametrize("blocks", [1, 2, 7, 20, 100])
def test_apfo_path_ends_at_t_min_for_every_iteration_count(blocks):
    """The last step steps to t_N = t_min, the first starts at t_0 = t_max, and no block is run out of
    order or twice apart; with iterations < N a step spans several blocks (a coarser grid)."""
    for iterations in [1, 2, 3, 5, 6, 19, 20, 23, 31, 37, 62, 99, 101, 150, 250, 300, 5001]:
        spans = [apfo_span(step, iterations, blocks) for step in range(iterations)]
        assert spans[0][0] == 0 and spans[-1][1] == blocks, (iterations, blocks, spans[-1])
        assert all(i < j <= i + max(1, -(-blocks // iterations)) for i, j in spans)
        assert all(a[0] <= b[0] for a, b in zip(spans, spans[1:]))  # never back up the schedule
        if iterations >= blocks:  # every block visited, K or K+1 steps each
            counts = [sum(i == block for i, _ in spans) for block in range(blocks)]
            assert min(counts) >= iterations // blocks and max(counts) <= -(-iterations // blocks)
        else:  # the steps tile the grid: each starts where the previous one ended
            assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))


@pytest.mark.parametrize("iterations", [3, 23, 37, 150])
def test_apfo_guidance_ends_its_stage_at_t_min(iterations):
    guidance = make_guidance(StubPrior(), guidance_config("apfo", t_max=1.0, t_min=0.2, num_timesteps=20),
                             iterations=iterations)
    assert guidance.grid_values[guidance.span(0)[0]] == pytest.approx(1.0)
    assert guidance.grid_values[guidance.span(iterations - 1)[1]] == pytest.approx(0.2)


def test_apfo_constant_weighting_keeps_the_path_length_when_steps_span_blocks():
    dsigma, _ = run_guidance("apfo", 3)  # 3 iterations over 5 blocks
    constant, _ = run_guidance("apfo", 3, apfo_weighting="constant")
    assert sum(info["weight"] for info in dsigma) == pytest.approx(sum(info["weight"] for info in constant), rel=1e-4)


def test_a_k_that_does_not_spend_the_iterations_is_an_actionable_error():
    with pytest.raises(ConfigError, match=r"K = 3 with \d+ schedule blocks .* but the stage has 50: leave K unset"):
        make_guidance(StubPrior(), guidance_config("apfo", schedule="ddim", num_timesteps=20, steps_per_timestep=3),
                      iterations=50)
    guidance = make_guidance(StubPrior(), guidance_config("apfo", num_timesteps=5, steps_per_timestep=4),
                             iterations=20)
    assert guidance.grid_values[guidance.span(19)[1]] == pytest.approx(0.2)


@pytest.mark.parametrize("method", ["sds", "vsd"])
def test_sds_and_vsd_gradients(method, monkeypatch):
    prior = StubPrior()
    guidance = make_guidance(prior, guidance_config(method, t_max=0.98, t_min=0.02, guidance_scale=2.0),
                             iterations=10, seed=3)
    if guidance.source is not None:
        monkeypatch.setattr(guidance.source, "train", lambda *a: {})
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

    def predict_output(self, x_t, index, text, uncond=False, use_lora=False, camera=None):
        if use_lora and torch.is_grad_enabled():
            self.calls.append(float(index.float().mean()) / 999)
        return 0.25 * x_t * (1 + self.lora)


def read_scalars(info: dict) -> dict:
    from dreamflow.device import read_scalars as read

    return read(info)


def run_guidance(method: str, steps: int, **overrides) -> tuple[list[dict], list[float]]:
    prior = RecordingPrior()
    values = {"t_max": 0.98, "t_min": 0.2, **({"num_timesteps": 5} if method == "apfo" else {}), **overrides}
    guidance = make_guidance(prior, guidance_config(method, **values), iterations=steps, seed=0)
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


@pytest.mark.parametrize("config_path", ["config/paper.yaml", "config/pipeline/toy.yaml"])
@pytest.mark.parametrize("method", ["sds", "vsd"])
def test_baselines_draw_stage_1_timesteps_below_apfos_range(config_path, method):
    """SDS and VSD draw t ~ U(0.02, 0.98) in stage 1 (VSD: in its first 20 %), not APFO's [0.2, 1.0]."""
    config = load_config(config_path)
    recipe = config.guidance_for(config.stage1)
    recipe = dataclasses.replace(recipe, **{method: dataclasses.replace(
        recipe.recipe(method), **({"lora": dataclasses.replace(recipe.vsd.lora, **SINGLE)} if method == "vsd" else {}))})
    iterations = config.stage1.iterations
    guidance = make_guidance(StubPrior(), dataclasses.replace(recipe, method=method), iterations)
    early = torch.cat([guidance.sample_index(20, step) for step in range(iterations // 5)]).float() / 999
    # U(0.02, 0.98): 19 % of the draws below 0.2 (APFO's stage-1 range has none)
    assert early.min() < 0.03 and 0.15 < (early < 0.2).float().mean() < 0.23 and early.max() > 0.97
