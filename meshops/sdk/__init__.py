"""The MeshOps SDK: a synchronous client for scripts, notebooks and the ``meshops`` CLI.

    with Session("mqtt://127.0.0.1:1883") as session:
        node = session.wait_for_node("n1")
        pipeline = session.deploy("n1", "demo", plugins=[PluginSpec("ECHO_01", "e1")])
        for payload in pipeline.payloads(timeout=5):
            print(payload.data)

It speaks the Ratio1/Naeural edge protocol (docs/sdk-interop.md): what works with a MeshOps
node works the same with any node that follows it.
"""

from meshops.sdk.code import function_body
from meshops.sdk.discovery import NodeInfo, Resources
from meshops.sdk.errors import (
    AmbiguousNodeError,
    DeployError,
    NodeError,
    NodeNotAllowedError,
    NodeNotFoundError,
    NodeTimeoutError,
    PipelineNotFoundError,
    RemoteExecutionError,
    SdkError,
    SessionClosedError,
)
from meshops.sdk.keys import DEFAULT_KEY_PATH, load_client_key
from meshops.sdk.payloads import Payload, PayloadStream, Subscription
from meshops.sdk.pipeline import Pipeline
from meshops.sdk.session import Session
from meshops.sdk.specs import InstanceInfo, PipelineInfo, PluginSpec

__all__ = [
    "AmbiguousNodeError",
    "DEFAULT_KEY_PATH",
    "DeployError",
    "InstanceInfo",
    "NodeError",
    "NodeInfo",
    "NodeNotAllowedError",
    "NodeNotFoundError",
    "NodeTimeoutError",
    "Payload",
    "PayloadStream",
    "Pipeline",
    "PipelineInfo",
    "PipelineNotFoundError",
    "PluginSpec",
    "RemoteExecutionError",
    "Resources",
    "SdkError",
    "Session",
    "SessionClosedError",
    "Subscription",
    "function_body",
    "load_client_key",
]
