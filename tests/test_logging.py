import json

from dreamflow.training.logger import RunLogger, WandbSettings, redact


def test_redact_removes_secret_keys_and_token_like_values():
    config = {"wandb": {"api_key": "abc"}, "hf_token": "hf_" + "x" * 30, "note": "key " + "0123456789abcdef" * 2 + "01234567",
              "nested": [{"password": "p"}], "prompt": "a red cube"}
    cleaned = redact(config)
    text = json.dumps(cleaned)
    assert "abc" not in text and "x" * 30 not in text and "0123456789abcdef0123" not in text and '"p"' not in text
    assert cleaned["prompt"] == "a red cube"


def test_offline_wandb_run_never_records_the_api_key(tmp_path, monkeypatch):
    secret = "0123456789abcdef0123456789abcdef01234567"
    monkeypatch.setenv("WANDB_API_KEY", secret)
    logger = RunLogger(tmp_path, WandbSettings(mode="offline", dir=str(tmp_path)),
                       {"prompt": "a red cube", "wandb_api_key": secret, "token": secret})
    logger.log({"loss": 1.0}, step=1)
    logger.finish()
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    for path in runs[0].rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    assert json.loads((tmp_path / "log.jsonl").read_text().splitlines()[0])["loss"] == 1.0


def test_disabled_wandb_writes_only_the_local_log(tmp_path):
    logger = RunLogger(tmp_path, WandbSettings(mode="disabled"))
    logger.log({"loss": 2.0}, step=3)
    logger.finish()
    assert not (tmp_path / "wandb").exists() and (tmp_path / "log.jsonl").exists()
