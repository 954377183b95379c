"""Compile the Solidity sources in ``contracts/src`` into the committed artifacts.

The artifacts (ABI + creation bytecode, one JSON file per contract) live inside the package so
that pip users need no compiler. Only developers run this, from a checkout where
``npm ci --prefix contracts`` installed the pinned ``solc`` (solcjs) and OpenZeppelin;
``contracts/compile.cjs`` hands our standard-JSON input to solcjs and resolves the imports.

Output is deterministic: the metadata hash and CBOR trailer are left out of the bytecode (they
would embed source paths and hashes), settings are fixed here, and JSON is written with sorted
keys, so ``--check`` can demand byte-for-byte equality with the committed files.

    python -m meshops.chain.build            # rewrite meshops/chain/artifacts/*.json
    python -m meshops.chain.build --check    # exit 1 if the committed artifacts are stale
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from meshops.chain.compiled import ARTIFACTS_DIR, CONTRACT_NAMES
from meshops.chain.errors import CompileError

__all__ = ["SETTINGS", "compile_sources", "default_contracts_dir", "render", "standard_input"]

SETTINGS: dict[str, Any] = {
    "optimizer": {"enabled": True, "runs": 200},
    # Cancun: supported by py-evm, anvil and the L2s we target (Base); newer opcodes are not.
    "evmVersion": "cancun",
    "metadata": {"bytecodeHash": "none", "appendCBOR": False},
}
_OUTPUTS = ["abi", "evm.bytecode.object"]
COMPILE_TIMEOUT_S = 300


def default_contracts_dir() -> Path:
    """``contracts/`` of the source checkout this package was imported from."""
    return Path(__file__).resolve().parents[2] / "contracts"


def standard_input(contracts_dir: Path) -> dict[str, Any]:
    """solc's standard-JSON input: our sources inline; imports resolved by solcjs from npm."""
    sources = {
        f"{name}.sol": {"content": (contracts_dir / "src" / f"{name}.sol").read_text("utf-8")}
        for name in CONTRACT_NAMES
    }
    selection = {source: {"*": _OUTPUTS} for source in sources}
    settings = {**SETTINGS, "outputSelection": selection}
    return {"language": "Solidity", "sources": sources, "settings": settings}


def _solcjs(contracts_dir: Path) -> list[str]:
    node = shutil.which("node")
    solc_js = contracts_dir / "node_modules" / "solc" / "soljson.js"
    if node is None:
        raise CompileError("node is not on PATH; install Node.js 20+ to compile the contracts")
    if not solc_js.is_file():
        raise CompileError(
            f"{solc_js} is missing: run `npm ci --prefix {contracts_dir}` "
            "to install the pinned solc"
        )
    return [node, str(contracts_dir / "compile.cjs")]


def compile_sources(contracts_dir: Path | None = None) -> dict[str, dict[str, Any]]:
    """Compile every contract and return its artifact (name, compiler, abi, bytecode)."""
    contracts_dir = contracts_dir or default_contracts_dir()
    command = _solcjs(contracts_dir)
    version = subprocess.run(
        command + ["--version"], input="", capture_output=True, text=True, check=False
    ).stdout.strip()
    try:
        done = subprocess.run(
            command,
            input=json.dumps(standard_input(contracts_dir)),
            capture_output=True,
            text=True,
            timeout=COMPILE_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise CompileError(f"solcjs did not finish within {COMPILE_TIMEOUT_S} s") from exc
    if done.returncode != 0:
        raise CompileError(f"compile.cjs exited with {done.returncode}: {done.stderr.strip()}")
    try:
        output = json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        raise CompileError(f"compile.cjs printed no JSON: {done.stdout[:500]!r}") from exc
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise CompileError("\n".join(e.get("formattedMessage", e["message"]) for e in errors))
    artifacts = {}
    for name in CONTRACT_NAMES:
        compiled = output["contracts"][f"{name}.sol"][name]
        artifacts[name] = {
            "contractName": name,
            "compiler": version,
            "abi": compiled["abi"],
            "bytecode": "0x" + compiled["evm"]["bytecode"]["object"],
        }
    return artifacts


def render(artifact: dict[str, Any]) -> str:
    """The exact text committed for an artifact."""
    return json.dumps(artifact, indent=1, sort_keys=True) + "\n"


def _stale(artifacts: dict[str, dict[str, Any]], target: Path) -> list[str]:
    return [
        name
        for name, artifact in artifacts.items()
        if not (target / f"{name}.json").is_file()
        or (target / f"{name}.json").read_text("utf-8") != render(artifact)
    ]


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: rebuild, or with ``--check`` report stale artifacts."""
    parser = argparse.ArgumentParser(prog="python -m meshops.chain.build", description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    parser.add_argument("--contracts", type=Path, default=None, help="the contracts/ folder")
    args = parser.parse_args(argv)
    artifacts = compile_sources(args.contracts)
    if args.check:
        stale = _stale(artifacts, ARTIFACTS_DIR)
        for name in stale:
            print(f"stale artifact: {ARTIFACTS_DIR / (name + '.json')}", file=sys.stderr)
        return 1 if stale else 0
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    for name, artifact in artifacts.items():
        (ARTIFACTS_DIR / f"{name}.json").write_text(render(artifact), "utf-8")
        print(f"wrote {ARTIFACTS_DIR / (name + '.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
