"""The edge node: settings, durable state, pipelines, commands, heartbeats, network map."""

from meshops.node.node import Node, load_or_create_key
from meshops.node.pipelines import PipelineManager, merge_pipeline
from meshops.node.settings import NodeSettings, parse_broker_url
from meshops.node.store import NodeStore

__all__ = [
    "Node",
    "NodeSettings",
    "NodeStore",
    "PipelineManager",
    "load_or_create_key",
    "merge_pipeline",
    "parse_broker_url",
]
