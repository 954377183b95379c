// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";
import {EnumerableSet} from "@openzeppelin/contracts/utils/structs/EnumerableSet.sol";

/// @title MeshOps oracle controller
/// @notice Holds the oracle set and the number k of distinct oracle signatures that rewards
/// and escrow require. Every signature is EIP-191 (`personal_sign`) over a 32-byte digest,
/// the same scheme a node uses off-chain with its own key.
contract MeshController is Ownable {
    using EnumerableSet for EnumerableSet.AddressSet;

    EnumerableSet.AddressSet private _oracles;

    /// @notice Distinct oracle signatures a message needs (k of n).
    uint256 public threshold;

    event OracleAdded(address indexed oracle);
    event OracleRemoved(address indexed oracle);
    event ThresholdSet(uint256 threshold);

    error InvalidOracle(address oracle);
    error OracleAlreadyAdded(address oracle);
    error UnknownOracle(address oracle);
    /// @dev k must satisfy 1 <= k <= n.
    error InvalidThreshold(uint256 threshold, uint256 oracleCount);
    error NotEnoughSignatures(uint256 given, uint256 required);
    /// @dev Signature number `index` is malformed (length, s or v out of range).
    error InvalidSignature(uint256 index);
    error SignerNotOracle(uint256 index, address signer);
    error DuplicateSigner(uint256 index, address signer);

    constructor(address owner_, address[] memory oracles_, uint256 threshold_) Ownable(owner_) {
        for (uint256 i = 0; i < oracles_.length; i++) {
            _add(oracles_[i]);
        }
        _setThreshold(threshold_);
    }

    function addOracle(address oracle) external onlyOwner {
        _add(oracle);
    }

    /// @notice Remove an oracle; refused when fewer than k oracles would remain.
    function removeOracle(address oracle) external onlyOwner {
        if (!_oracles.remove(oracle)) revert UnknownOracle(oracle);
        if (threshold > _oracles.length()) revert InvalidThreshold(threshold, _oracles.length());
        emit OracleRemoved(oracle);
    }

    function setThreshold(uint256 threshold_) external onlyOwner {
        _setThreshold(threshold_);
    }

    function isOracle(address account) external view returns (bool) {
        return _oracles.contains(account);
    }

    function oracles() external view returns (address[] memory) {
        return _oracles.values();
    }

    /// @notice Revert unless `signatures` hold at least k valid signatures of `digest` by
    /// distinct oracles. Every signature must be valid: a bad one is refused, not skipped,
    /// so a caller learns exactly which one is wrong.
    /// @return signers the recovered oracle addresses, in signature order.
    function verify(bytes32 digest, bytes[] calldata signatures)
        external
        view
        returns (address[] memory signers)
    {
        if (signatures.length < threshold) {
            revert NotEnoughSignatures(signatures.length, threshold);
        }
        bytes32 signed = MessageHashUtils.toEthSignedMessageHash(digest);
        signers = new address[](signatures.length);
        for (uint256 i = 0; i < signatures.length; i++) {
            (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecoverCalldata(signed, signatures[i]);
            if (err != ECDSA.RecoverError.NoError) revert InvalidSignature(i);
            if (!_oracles.contains(signer)) revert SignerNotOracle(i, signer);
            for (uint256 j = 0; j < i; j++) {
                if (signers[j] == signer) revert DuplicateSigner(i, signer);
            }
            signers[i] = signer;
        }
    }

    function _add(address oracle) private {
        if (oracle == address(0)) revert InvalidOracle(oracle);
        if (!_oracles.add(oracle)) revert OracleAlreadyAdded(oracle);
        emit OracleAdded(oracle);
    }

    function _setThreshold(uint256 threshold_) private {
        if (threshold_ == 0 || threshold_ > _oracles.length()) {
            revert InvalidThreshold(threshold_, _oracles.length());
        }
        threshold = threshold_;
        emit ThresholdSet(threshold_);
    }
}
