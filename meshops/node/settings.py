"""Node settings: command-line flags, ``MESHOPS_*`` environment variables, defaults."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from meshops.protocol.constants import DEFAULT_ROOT_TOPIC

__all__ = ["NodeSettings", "parse_broker_url"]


def parse_broker_url(url: str) -> tuple[str, int]:
    """``mqtt://host:port`` (or ``host:port``) as (host, port); ValueError naming the problem."""
    text = url if "://" in url else f"mqtt://{url}"
    parts = urlsplit(text)
    if parts.scheme not in {"mqtt", "tcp"}:
        raise ValueError(f"broker URL {url!r}: scheme must be mqtt:// (TLS is not supported yet)")
    if not parts.hostname:
        raise ValueError(f"broker URL {url!r} has no host")
    try:
        port = parts.port or 1883
    except ValueError as exc:
        raise ValueError(f"broker URL {url!r}: bad port") from exc
    return parts.hostname, port


class NodeSettings(BaseSettings):
    """Everything a node needs to start; env vars ``MESHOPS_<FIELD>`` override defaults."""

    model_config = SettingsConfigDict(env_prefix="MESHOPS_", env_nested_delimiter="__")

    home: Path = Field(default=Path("~/.meshops/node"), description="Keys, config store, logs.")
    alias: str = Field(default="meshops-node", min_length=1, max_length=20)
    broker: str = Field(default="mqtt://127.0.0.1:1883", description="MQTT broker URL.")
    broker_user: str | None = None
    broker_password: str | None = None
    root_topic: str = DEFAULT_ROOT_TOPIC
    supervisor: bool = False
    secured: bool = True
    heartbeat_interval_s: float = Field(default=5.0, gt=0, le=10)
    netmon_interval_s: float = Field(default=5.0, gt=0, le=30)
    replay_window_s: float = Field(default=120.0, gt=0)
    future_skew_s: float = Field(default=10.0, ge=0)
    replay_memory_s: float = Field(
        default=3 * 86400.0,
        gt=0,
        description="How long hashes of messages without a zoned timestamp are remembered.",
    )
    epoch_seconds: int = Field(
        default=86_400, ge=1, description="Availability epoch length (as the rewards contract)."
    )
    epoch_genesis: int = Field(default=0, ge=0, description="Start of epoch 0 (unix seconds).")
    oracle: bool | None = Field(
        default=None, description="Measure availability and sign claims (default: supervisors)."
    )
    oracles: list[str] = Field(
        default_factory=list,
        description="Ethereum addresses of the oracle set (default: this node alone).",
    )
    oracle_threshold: int | None = Field(
        default=None, ge=1, description="Signatures a claim needs (default: a majority)."
    )
    chain_deployment: Path | None = Field(
        default=None,
        description="Deployment record (JSON): its chain id, rewards contract and epoch clock.",
    )

    epoch_retention_days: float = Field(
        default=90.0,
        gt=0,
        description="Days of epoch files oracles keep (at least the last 1000 epochs).",
    )
    models_dir: Path | None = Field(
        default=None, description="Model registry folder (shared by local nodes); <home>/models."
    )

    @model_validator(mode="after")
    def _skew_within_window(self) -> NodeSettings:
        if self.future_skew_s > self.replay_window_s:
            raise ValueError("future_skew_s must not exceed replay_window_s")
        return self

    @field_validator("oracles")
    @classmethod
    def _oracles(cls, value: list[str]) -> list[str]:
        from eth_utils import is_address, to_checksum_address

        bad = [o for o in value if not is_address(o)]
        if bad:
            raise ValueError(f"not Ethereum addresses: {', '.join(map(str, bad))}")
        return sorted({to_checksum_address(o) for o in value})

    @property
    def is_oracle(self) -> bool:
        return self.supervisor if self.oracle is None else self.oracle

    @field_validator("home")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("broker")
    @classmethod
    def _broker(cls, value: str) -> str:
        parse_broker_url(value)
        return value

    @field_validator("alias")
    @classmethod
    def _alias(cls, value: str) -> str:
        if not value.isprintable() or "/" in value or value.strip() != value:
            raise ValueError("alias must be printable, without '/' or surrounding spaces")
        return value

    @property
    def broker_address(self) -> tuple[str, int]:
        return parse_broker_url(self.broker)

    @property
    def models_path(self) -> Path:
        """The model registry: ``models_dir`` if set, else ``<home>/models``."""
        return self.models_dir.expanduser() if self.models_dir else self.home / "models"

    @property
    def key_path(self) -> Path:
        return self.home / "node.pem"

    @property
    def db_path(self) -> Path:
        return self.home / "node.db"

    @property
    def outbox_path(self) -> Path:
        return self.home / "outbox.db"
