"""Commands to a node: authorization, then one handler per ``ACTION``.

A command is applied only if it is signed (checked before we get here), names this node in
``EE_ID``, and comes from the node's owner or its allow-list (when secured). Every outcome is
a notification with the protocol's codes, so the SDK's ``deploy()``/``close()`` return at once,
successful or not. A refused sender learns only that it was refused.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from meshops.errors import ConfigError, MeshOpsError, MessageRefused, RefusalReason, ServingError
from meshops.node.availability import ORACLE_SIGNATURE
from meshops.node.messages import ADMIN_PIPELINE, NET_CONFIG, now_text
from meshops.protocol import Command, Message, NotificationCode

if TYPE_CHECKING:
    from meshops.node.node import Node

__all__ = ["CommandHandler"]

log = logging.getLogger(__name__)

Code = NotificationCode


MAX_FAILURE_NOTICES = 50
"""Per refused command: one message must not make the node sign thousands of answers."""

_NODE_EVENTS = {"HEARTBEAT", "PAYLOAD", "NOTIFICATION"}
"""What nodes send; a command carries no such event type (SDK commands carry none)."""


def _instance_keys(config: Any) -> list[tuple[str, str]]:
    """Distinct (SIGNATURE, INSTANCE_ID) pairs a pipeline config names, at most
    ``MAX_FAILURE_NOTICES``, as far as they can be read (for failure notifications)."""
    keys: dict[tuple[str, str], None] = {}
    plugins = config.get("PLUGINS") if isinstance(config, Mapping) else None
    for plugin in plugins if isinstance(plugins, list) else []:
        if not isinstance(plugin, Mapping) or not isinstance(plugin.get("SIGNATURE"), str):
            continue
        for inst in plugin.get("INSTANCES") or []:
            if isinstance(inst, Mapping) and isinstance(inst.get("INSTANCE_ID"), str):
                keys[(plugin["SIGNATURE"].upper()[:100], inst["INSTANCE_ID"][:100])] = None
                if len(keys) >= MAX_FAILURE_NOTICES:
                    return list(keys)
    return list(keys)


class CommandHandler:
    """Applies verified commands to one node."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.applied = 0

    # ---- entry points --------------------------------------------------------------------

    def handle(self, message: Message) -> None:
        """A message on the node's config topic (already verified and decrypted)."""
        node = self.node
        body = message.body
        target = message.raw.get("EE_ID")
        if not node.names_me(target):
            raise MessageRefused(
                RefusalReason.NOT_FOR_ME, f"EE_ID {str(target)[:60]!r} names another node"
            )
        if message.event_type in _NODE_EVENTS:
            raise MessageRefused(RefusalReason.BAD_COMMAND, f"a {message.event_type} is no command")
        action = body.get("ACTION")
        if not node.is_allowed(message.sender):
            node.refuse(RefusalReason.UNAUTHORIZED, f"{message.sender} may not command", "config")
            self._refused(message, action)
            return
        node.check_replay(message)
        handler = _HANDLERS.get(action) if isinstance(action, str) else None
        if handler is None:
            node.refuse(RefusalReason.BAD_COMMAND, f"unknown ACTION {str(action)[:40]!r}", "config")
            node.messages.notify(
                Code.COMM_RECEIVED_BAD_COMMAND,
                f"unknown ACTION {str(action)[:40]!r}",
                session_id=self._session(message),
            )
            return
        handler(self, message, body.get("PAYLOAD"))
        self.applied += 1

    def handle_payload(self, message: Message) -> None:
        """A payload addressed to this node: NET_CONFIG_MONITOR and oracle GET_CLAIMS requests."""
        path = message.path
        data = message.body.get("NET_CONFIG_DATA")
        if path[2] and str(path[2]).upper() == NET_CONFIG and isinstance(data, Mapping):
            if data.get("OP") != "GET_CONFIG":
                return  # another node's SET_CONFIG: nothing for us to do
            if not self.node.is_allowed(message.sender):
                raise MessageRefused(RefusalReason.UNAUTHORIZED, "GET_CONFIG from a stranger")
            self.node.check_replay(message)
            self.node.messages.send_net_config(message.sender)
            return
        if path[2] and str(path[2]).upper() == ORACLE_SIGNATURE:
            # GET_CLAIMS: from anyone (signatures are not secret), so no allow-list and no
            # seen-set; the oracle checks the request and limits how often it answers
            if self.node.oracle is None:
                raise MessageRefused(RefusalReason.BAD_COMMAND, "GET_CLAIMS: not an oracle")
            self.node.oracle.on_request(message)
            return
        raise MessageRefused(RefusalReason.BAD_COMMAND, "payload for this node not understood")

    # ---- helpers -------------------------------------------------------------------------

    @staticmethod
    def _session(message: Message) -> str | None:
        value = message.body.get("SESSION_ID")
        return value if isinstance(value, str) else None

    def _refused(self, message: Message, action: object) -> None:
        """Say no, fast: the failure codes the SDK waits for, and nothing about our state."""
        notify = self.node.messages.notify
        session = self._session(message)
        text = "command refused: sender is not allowed on this node"
        notify(Code.COMM_RECEIVED_BAD_COMMAND, text, session_id=session)
        payload = message.body.get("PAYLOAD")
        if action == Command.UPDATE_CONFIG and isinstance(payload, Mapping):
            name = str(payload.get("NAME"))[:100]
            notify(Code.PIPELINE_FAILED, text, pipeline=name, session_id=session)
            for sig, iid in _instance_keys(payload):
                notify(
                    Code.PLUGIN_CONFIG_FAILED,
                    text,
                    pipeline=name,
                    signature=sig,
                    instance_id=iid,
                    session_id=session,
                )
        elif action in (Command.ARCHIVE_CONFIG, Command.DELETE_CONFIG) and isinstance(payload, str):
            notify(Code.PIPELINE_ARCHIVE_FAILED, text, pipeline=payload[:100], session_id=session)
        elif action in (Command.UPDATE_PIPELINE_INSTANCE, Command.BATCH_UPDATE_PIPELINE_INSTANCE):
            items = payload if isinstance(payload, list) else [payload]
            for item in items[: MAX_FAILURE_NOTICES // 2]:
                if isinstance(item, Mapping):
                    name = str(item.get("NAME"))[:100]
                    notify(Code.PIPELINE_FAILED, text, pipeline=name, session_id=session)
                    notify(
                        Code.PLUGIN_CONFIG_FAILED,
                        text,
                        pipeline=name,
                        signature=str(item.get("SIGNATURE"))[:100],
                        instance_id=str(item.get("INSTANCE_ID"))[:100],
                        session_id=session,
                    )

    def _stamp(self, message: Message, config: dict[str, Any]) -> dict[str, Any]:
        """Who changed the pipeline, and when (kept in the stored config, as the reference)."""
        current = self.node.pipelines.config(str(config.get("NAME"))) or {}
        return {
            **config,
            "INITIATOR_ADDR": current.get("INITIATOR_ADDR", message.sender),
            "INITIATOR_ID": current.get("INITIATOR_ID", message.body.get("INITIATOR_ID")),
            "MODIFIED_BY_ADDR": message.sender,
            "MODIFIED_BY_ID": message.body.get("INITIATOR_ID"),
            "SESSION_ID": self._session(message),
            "LAST_UPDATE_TIME": now_text(),
        }

    # ---- actions -------------------------------------------------------------------------

    def update_config(self, message: Message, payload: Any) -> None:
        session = self._session(message)
        notify = self.node.messages.notify
        if not isinstance(payload, Mapping) or not isinstance(payload.get("NAME"), str):
            notify(
                Code.COMM_RECEIVED_BAD_COMMAND,
                "UPDATE_CONFIG: PAYLOAD must be a pipeline config with a NAME",
                session_id=session,
            )
            raise MessageRefused(RefusalReason.BAD_COMMAND, "UPDATE_CONFIG without a pipeline")
        name = payload["NAME"]
        try:
            changed = self.node.pipelines.apply(
                self._stamp(message, dict(payload)),
                store=lambda merged: self.node.store.save_pipeline(name, merged),
            )
        except MeshOpsError as exc:
            reason = str(exc)
            notify(Code.PIPELINE_FAILED, reason, pipeline=name, session_id=session)
            for sig, iid in _instance_keys(payload):
                notify(
                    Code.PLUGIN_CONFIG_FAILED,
                    reason,
                    pipeline=name,
                    signature=sig,
                    instance_id=iid,
                    session_id=session,
                )
            return
        notify(Code.PIPELINE_OK, f"pipeline {name!r} config OK", pipeline=name, session_id=session)
        # Every instance the command named is confirmed, changed or not: a client that sends
        # an unchanged config (it could not read the running one first) still gets its answer.
        named = [(sig.upper(), iid) for sig, iid in _instance_keys(payload)]
        for sig, iid in dict.fromkeys([*changed, *named]):
            notify(
                Code.PLUGIN_CONFIG_OK,
                f"{sig}/{iid} config OK",
                pipeline=name,
                signature=sig,
                instance_id=iid,
                session_id=session,
            )

    def update_instance(self, message: Message, payload: Any) -> None:
        items = payload if isinstance(payload, list) else [payload]
        for item in items:
            self._one_instance(message, item)

    def _one_instance(self, message: Message, item: Any) -> None:
        session = self._session(message)
        notify = self.node.messages.notify
        if (
            not isinstance(item, Mapping)
            or not all(isinstance(item.get(k), str) for k in ("NAME", "SIGNATURE", "INSTANCE_ID"))
            or not isinstance(item.get("INSTANCE_CONFIG"), Mapping)
        ):
            notify(
                Code.COMM_RECEIVED_BAD_COMMAND,
                "instance update needs NAME, SIGNATURE, INSTANCE_ID and INSTANCE_CONFIG",
                session_id=session,
            )
            raise MessageRefused(RefusalReason.BAD_COMMAND, "malformed instance update")
        name, sig, iid = item["NAME"], item["SIGNATURE"].upper(), item["INSTANCE_ID"]
        config = dict(item["INSTANCE_CONFIG"])
        command = config.pop("INSTANCE_COMMAND", None)
        config.pop("INSTANCE_ID", None)
        where = {"pipeline": name, "signature": sig, "instance_id": iid, "session_id": session}
        try:
            if config:
                self.node.pipelines.apply(
                    self._stamp(
                        message,
                        {
                            "NAME": name,
                            "PLUGINS": [
                                {"SIGNATURE": sig, "INSTANCES": [{"INSTANCE_ID": iid, **config}]}
                            ],
                        },
                    ),
                    store=lambda merged: self.node.store.save_pipeline(name, merged),
                )
            if command is not None:
                params = command.get("COMMAND_PARAMS", {}) if isinstance(command, Mapping) else {}
                self.node.pipelines.instance_command(name, (sig, iid), command, params or {})
        except MeshOpsError as exc:
            notify(Code.PIPELINE_FAILED, str(exc), pipeline=name, session_id=session)
            failed = Code.PLUGIN_INSTANCE_COMMAND_FAILED if command else Code.PLUGIN_CONFIG_FAILED
            notify(failed, str(exc), **where)
            return
        notify(Code.PIPELINE_OK, f"pipeline {name!r} OK", pipeline=name, session_id=session)
        if config:
            notify(Code.PLUGIN_CONFIG_OK, f"{sig}/{iid} config OK", **where)
        # a command's 101/-101 follows from the instance thread when the plugin has run it

    def archive(self, message: Message, payload: Any) -> None:
        session = self._session(message)
        if not isinstance(payload, str):
            raise MessageRefused(
                RefusalReason.BAD_COMMAND, "ARCHIVE_CONFIG: PAYLOAD must be a name"
            )
        found = self.node.pipelines.stop_pipeline(payload)
        stored = self.node.store.delete_pipeline(payload)
        if found or stored:
            self.node.messages.notify(
                Code.PIPELINE_ARCHIVE_OK,
                f"pipeline {payload!r} archived",
                pipeline=payload,
                session_id=session,
            )
        else:
            self.node.messages.notify(
                Code.PIPELINE_ARCHIVE_FAILED,
                f"no pipeline {payload!r}",
                pipeline=payload,
                session_id=session,
            )

    def archive_all(self, message: Message, payload: Any) -> None:
        for name in set(self.node.pipelines.names()) | set(self.node.store.pipelines()):
            self.archive(message, name)

    def pipeline_command(self, message: Message, payload: Any) -> None:
        """``{NAME, PIPELINE_COMMAND: {...}}``: data for an on-demand capture (``STRUCT_DATA``)."""
        if not isinstance(payload, Mapping) or not isinstance(payload.get("NAME"), str):
            raise MessageRefused(RefusalReason.BAD_COMMAND, "PIPELINE_COMMAND needs NAME")
        command = payload.get("PIPELINE_COMMAND")
        if not isinstance(command, Mapping):
            raise MessageRefused(RefusalReason.BAD_COMMAND, "PIPELINE_COMMAND must be an object")
        data = command.get("STRUCT_DATA", command.get("DATA"))
        try:
            if data is None:
                raise ConfigError("PIPELINE_COMMAND: only STRUCT_DATA (or DATA) is understood")
            self.node.pipelines.feed(payload["NAME"], data)
        except MeshOpsError as exc:
            self.node.messages.notify(
                Code.PIPELINE_FAILED,
                str(exc),
                pipeline=payload["NAME"],
                session_id=self._session(message),
            )

    def model_upload(self, message: Message, payload: Any) -> None:
        """``MODEL_UPLOAD``: ``OP`` CHUNK (``UPLOAD_ID, SHA256, SIZE, OFFSET, DATA`` base64)
        or COMMIT (``MANIFEST``, ``UPLOADS``: role -> upload id). Files are verified against
        their hash before they are stored; only ONNX models are taken (never code)."""
        if not isinstance(payload, Mapping) or payload.get("OP") not in ("CHUNK", "COMMIT"):
            raise MessageRefused(RefusalReason.BAD_COMMAND, "MODEL_UPLOAD needs OP CHUNK|COMMIT")
        registry = self.node.models
        try:
            if payload["OP"] == "CHUNK":
                self._model_chunk(payload)
                return
            manifest = payload.get("MANIFEST")
            uploads = payload.get("UPLOADS")
            if not isinstance(manifest, Mapping) or not isinstance(uploads, Mapping):
                raise ServingError("COMMIT needs MANIFEST and UPLOADS objects")
            if manifest.get("backend", "onnx") != "onnx":
                raise ServingError("only onnx models can be sent to a node (no code)")
            stored = {role: registry.finish_upload(str(uid)) for role, uid in uploads.items()}
            declared = manifest.get("files")
            if declared != stored:
                raise ServingError(f"MANIFEST files {declared} differ from what arrived {stored}")
            added = registry.register({**manifest, "builtin": False})
        except (ServingError, KeyError, TypeError, ValueError) as exc:
            if isinstance(payload.get("UPLOAD_ID"), str):
                registry.abort_upload(payload["UPLOAD_ID"])
            self.node.messages.notify(
                Code.MODEL_STORED_FAILED,
                f"MODEL_UPLOAD refused: {exc}",
                pipeline=ADMIN_PIPELINE,
                session_id=self._session(message),
            )
            return
        log.info("node %s: model %s stored (from %s)", self.node.alias, added.ref, message.sender)
        self.node.messages.notify(
            Code.MODEL_STORED_OK,
            f"model {added.ref} stored",
            pipeline=ADMIN_PIPELINE,
            session_id=self._session(message),
            info=added.summary(),
        )

    def _model_chunk(self, payload: Mapping[str, Any]) -> None:
        upload_id, data = payload.get("UPLOAD_ID"), payload.get("DATA")
        offset, size = payload.get("OFFSET"), payload.get("SIZE")
        if not isinstance(upload_id, str) or not isinstance(data, str):
            raise ServingError("CHUNK needs UPLOAD_ID and DATA (base64) strings")
        if not isinstance(offset, int) or not isinstance(size, int):
            raise ServingError("CHUNK needs integer OFFSET and SIZE")
        try:
            chunk = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ServingError(f"CHUNK DATA is not base64: {exc}") from exc
        registry = self.node.models
        registry.begin_upload(upload_id, str(payload.get("SHA256")), size)
        registry.write_chunk(upload_id, offset, chunk)

    def full_heartbeat(self, message: Message, payload: Any) -> None:
        self.node.messages.send_heartbeat()

    def stop(self, message: Message, payload: Any) -> None:
        log.warning("node %s: STOP from %s", self.node.alias, message.sender)
        self.node.request_stop()

    def restart(self, message: Message, payload: Any) -> None:
        log.warning(
            "node %s: RESTART from %s: restarting pipelines", self.node.alias, message.sender
        )
        self.node.pipelines.stop_all()
        self.node.restore_pipelines()


_HANDLERS = {
    Command.UPDATE_CONFIG: CommandHandler.update_config,
    Command.UPDATE_PIPELINE_INSTANCE: CommandHandler.update_instance,
    Command.BATCH_UPDATE_PIPELINE_INSTANCE: CommandHandler.update_instance,
    Command.ARCHIVE_CONFIG: CommandHandler.archive,
    Command.DELETE_CONFIG: CommandHandler.archive,
    Command.ARCHIVE_CONFIG_ALL: CommandHandler.archive_all,
    Command.DELETE_CONFIG_ALL: CommandHandler.archive_all,
    Command.PIPELINE_COMMAND: CommandHandler.pipeline_command,
    Command.FULL_HEARTBEAT: CommandHandler.full_heartbeat,
    Command.STOP: CommandHandler.stop,
    Command.RESTART: CommandHandler.restart,
    Command.MODEL_UPLOAD: CommandHandler.model_upload,
}
